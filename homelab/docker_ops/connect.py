"""Connector to a node's Docker engine: one client per node, and the one place docker-py errors become ours.

The inventory names the engine by URL: `unix://` (the local socket), `tcp://`, or `ssh://user@host`.
For `ssh://`, docker-py's paramiko transport runs `docker system dial-stdio` on the node, so the
node needs the docker CLI; host keys are checked against a known_hosts file and an unknown or
changed key is refused (never added on first sight).

Every docker-py, requests, paramiko or socket error that reaches homelab passes through
`Engine.errors`, which turns it into a `DockerOpError` naming the node, the URL and what was being done.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import AbstractContextManager, closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import docker
import docker.errors
import paramiko
import requests.exceptions
from docker.transport import SSHHTTPAdapter
from pydantic import BaseModel, ConfigDict, Field

from homelab.errors import DockerOpError
from homelab.inventory import Node

__all__ = [
    "DEFAULT_DOCKER_TIMEOUTS",
    "DockerTimeouts",
    "Engine",
    "SSHAccess",
    "engine_url",
    "open_engine",
]

log = logging.getLogger(__name__)

DEFAULT_ENGINE_URL = "unix:///var/run/docker.sock"
# docker-py's ssh transport is mounted under this prefix; requests to the engine go to it.
_SSH_MOUNT = "http+docker://ssh"
# Spoken before the engine's own version is known; every engine since Docker 18.09 accepts it.
_BOOTSTRAP_API_VERSION = "1.39"


class DockerTimeouts(BaseModel):
    """How long to wait for an engine.

    `connect_s` bounds the first contact (socket, SSH handshake, version query), so a dead node
    is reported quickly; `operation_s` bounds each later API call, and must cover hashing a
    large model inside a helper container (a 30 GB file takes minutes on a slow CPU).
    """

    model_config = ConfigDict(frozen=True)

    connect_s: float = Field(10.0, gt=0, description="seconds for the first contact")
    operation_s: float = Field(3600.0, gt=0, description="seconds one API call may take")


DEFAULT_DOCKER_TIMEOUTS = DockerTimeouts()


@dataclass(frozen=True)
class SSHAccess:
    """How to log in for an `ssh://` engine URL.

    Attributes:
        known_hosts: the file the node's host key must be in (OpenSSH format).
        key: the private key; None tries the SSH agent and ~/.ssh keys, as `ssh` would.
    """

    known_hosts: Path
    key: paramiko.PKey | None = None

    def __repr__(self) -> str:
        return f"SSHAccess(known_hosts={str(self.known_hosts)!r}, key={'<key>' if self.key else None})"


@dataclass(frozen=True)
class Engine:
    """A node's Docker engine: the client, and the names its errors are reported under."""

    client: docker.DockerClient
    node: str
    url: str

    def errors(self, doing: str) -> AbstractContextManager[None]:
        """Translate any engine or transport error raised inside into a `DockerOpError`.

        Args:
            doing: what was being done, for the message ("creating volume models").
        """
        return _translated(self.node, self.url, doing)

    def close(self) -> None:
        """Close the client and its connections (an SSH session for ssh:// engines)."""
        self.client.close()


@contextmanager
def _translated(node: str, url: str, doing: str) -> Iterator[None]:
    """The boundary: docker-py, requests, paramiko and socket errors become `DockerOpError`."""
    try:
        yield
    except DockerOpError:
        raise
    except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
        raise DockerOpError(f"node {node} ({url}): {doing}: {_explain(exc)}") from exc
    except (paramiko.SSHException, OSError) as exc:
        raise DockerOpError(f"node {node} ({url}): {doing}: {_explain(exc)}") from exc


def _explain(exc: BaseException) -> str:
    """The engine's own words when it gave some, else the innermost error's."""
    if isinstance(exc, docker.errors.APIError) and exc.explanation:
        return str(exc.explanation)
    inner: BaseException = exc
    for _ in range(8):  # the chain is short; the bound guards against a cycle
        below = inner.__cause__ or inner.__context__
        if below is None:
            break
        inner = below
    text = str(exc)
    return text if inner is exc or str(inner) in text else f"{text} ({inner})"


def engine_url(node: Node) -> str:
    """The engine URL of a node: its `docker.url`, else the local socket."""
    return node.docker.url if node.docker is not None else DEFAULT_ENGINE_URL


class _VerifiedSSHAdapter(SSHHTTPAdapter):  # type: ignore[misc]
    """docker-py's paramiko transport, with host keys from a given file and an explicit key.

    docker-py's own adapter reads only ~/.ssh/known_hosts and ~/.ssh/config; the inventory
    names the known_hosts file per node, and keys come from the secrets store.
    """

    def __init__(self, base_url: str, access: SSHAccess, node: Node, timeouts: DockerTimeouts) -> None:
        self._access, self._node, self._timeouts = access, node, timeouts
        super().__init__(base_url, timeout=timeouts.operation_s, shell_out=False)

    def get_connection(self, url: str, proxies: Any = None) -> Any:
        # docker-py keys its connection pools by the whole request URL, so every API path opens
        # an SSH session of its own and keeps it; sshd refuses the eleventh (MaxSessions 10,
        # docker/compose#6463). One pool for all paths reuses a session per idle connection.
        return super().get_connection(_SSH_MOUNT, proxies)

    def _create_paramiko_client(self, base_url: str) -> None:
        parts = urlsplit(base_url)
        ssh = self._node.ssh
        self.ssh_client = paramiko.SSHClient()
        self.ssh_client.load_host_keys(str(self._access.known_hosts))
        self.ssh_client.set_missing_host_key_policy(paramiko.RejectPolicy())
        self.ssh_params: dict[str, Any] = {
            "hostname": parts.hostname,
            "port": parts.port or (ssh.port if ssh else 22),
            "username": parts.username or (ssh.user if ssh else None),
            "pkey": self._access.key,
            "allow_agent": self._access.key is None,
            "look_for_keys": self._access.key is None,
            "timeout": self._timeouts.connect_s,
            "banner_timeout": self._timeouts.connect_s,
            "auth_timeout": self._timeouts.connect_s,
        }


def _ssh_client(url: str, node: Node, access: SSHAccess | None, timeouts: DockerTimeouts) -> docker.DockerClient:
    """A client whose requests travel through a verified paramiko session to the node."""
    if access is None:
        known = Path(node.ssh.known_hosts if node.ssh else "~/.ssh/known_hosts").expanduser()
        access = SSHAccess(known_hosts=known)
    adapter = _VerifiedSSHAdapter(url, access, node, timeouts)  # logs in here; a refused key raises here
    # use_ssh_client=True with a pinned version builds a client that has not connected yet;
    # its shell-out adapter is then replaced by the verified paramiko one before any request.
    client = docker.DockerClient(
        base_url=url, use_ssh_client=True, version=_BOOTSTRAP_API_VERSION, timeout=int(timeouts.connect_s)
    )
    client.api.mount(_SSH_MOUNT, adapter)
    client.api._custom_adapter = adapter  # docker-py reads raw streams (exec, attach) through it
    return client


def open_engine(
    node: Node,
    *,
    ssh: SSHAccess | None = None,
    timeouts: DockerTimeouts = DEFAULT_DOCKER_TIMEOUTS,
) -> Engine:
    """Connect to the node's engine and agree on an API version; fails fast when it does not answer.

    Args:
        node: the inventory node; its `docker.url` says where the engine listens.
        ssh: host-key file and key for `ssh://` URLs; default: the node's `ssh.known_hosts`
            and the agent or ~/.ssh keys.
        timeouts: first-contact and per-operation limits.

    Returns:
        The engine; close it when done.

    Raises:
        DockerOpError: the engine does not answer, or the SSH login or host key check failed;
            the message names the node and the URL.
    """
    url = engine_url(node)
    with _translated(node.name, url, "the Docker engine does not answer"):
        if url.startswith("ssh://"):
            client = _ssh_client(url, node, ssh, timeouts)
            with _closing_on_error(client):
                # The pinned bootstrap version is replaced by the engine's own, as "auto" would.
                client.api._version = client.version(api_version=False)["ApiVersion"]
        else:
            # "auto" asks the engine for its version right here: a dead engine fails now.
            client = docker.DockerClient(base_url=url, version="auto", timeout=timeouts.connect_s)
    client.api.timeout = timeouts.operation_s
    log.debug("connected to %s at %s (API %s)", node.name, url, client.api.api_version)
    return Engine(client=client, node=node.name, url=url)


@contextmanager
def _closing_on_error(client: docker.DockerClient) -> Iterator[None]:
    try:
        yield
    except BaseException:
        with closing(client):
            raise
