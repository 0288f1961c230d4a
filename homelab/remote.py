"""SSH to a node (paramiko): verified host keys, key or password login, commands with secrets on stdin.

The connector of the recovery operations. Three rules, each for a reason:

- Host keys are checked against a known_hosts file. An unknown key is refused unless the
  inventory turned on trust-on-first-use for the node (then it is appended to the file); a
  changed key is always refused. Both refusals name the SHA256 fingerprint offered, so the
  owner can compare it with `ssh-keygen -lf` on the node before trusting it.
- A secret never stands on a command line: argv is visible to every user of the node (`ps`,
  /proc/PID/cmdline) and lands in shell histories and audit logs. Commands that need a
  password read it from stdin (`sudo -S -p ''`, a PowerShell `[Console]::In.ReadLine()`),
  and `run(..., stdin=secret)` writes it there.
- paramiko's and socket errors are translated here, and only here, into `RemoteError`s that
  name the node and what was being done.
"""

from __future__ import annotations

import base64
import hashlib
import io
import logging
import shlex
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

import paramiko
from paramiko.ssh_exception import NoValidConnectionsError
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from homelab.errors import CommandFailed, HostKeyMismatch, RemoteError
from homelab.inventory import Node

__all__ = [
    "DEFAULT_SSH_TIMEOUTS",
    "CommandResult",
    "RemoteShell",
    "SSHCredentials",
    "SSHTimeouts",
    "fingerprint",
    "load_private_key",
    "open_shell",
    "ssh_reachable",
    "sudo",
]

log = logging.getLogger(__name__)


class SSHTimeouts(BaseModel):
    """How long each phase of an SSH session may take, in seconds."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    connect_s: float = Field(10.0, gt=0, description="TCP connect")
    banner_s: float = Field(10.0, gt=0, description="waiting for the server's SSH banner")
    auth_s: float = Field(15.0, gt=0, description="authentication")
    command_s: float = Field(120.0, gt=0, description="one command, from start to exit status")


DEFAULT_SSH_TIMEOUTS = SSHTimeouts()


@dataclass(frozen=True)
class SSHCredentials:
    """What to log in with: a private key (its text) and/or a password; both masked in repr."""

    key: SecretStr | None = None
    password: SecretStr | None = field(default=None)

    def __repr__(self) -> str:
        return (
            f"SSHCredentials(key={'<key>' if self.key else None}, password={'<password>' if self.password else None})"
        )


class CommandResult(BaseModel):
    """A finished command: what ran (no secret: those went to stdin), how it ended, what it said."""

    model_config = ConfigDict(frozen=True)

    command: str
    exit_status: int
    stdout: str = ""
    stderr: str = ""
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.exit_status == 0


def fingerprint(key: paramiko.PKey) -> str:
    """The OpenSSH-style SHA256 fingerprint (`SHA256:...`, as `ssh-keygen -lf` prints it)."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def _known_name(host: str, port: int) -> str:
    return host if port == 22 else f"[{host}]:{port}"


class _Refuse(paramiko.MissingHostKeyPolicy):
    """An unknown host key is refused, with its fingerprint in the message."""

    def __init__(self, node: str, known_hosts: Path) -> None:
        self.node, self.known_hosts = node, known_hosts

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        raise HostKeyMismatch(
            f"node {self.node}: host key of {hostname} is unknown ({key.get_name()} {fingerprint(key)}), "
            f"not in {self.known_hosts}; check it on the node and add it, or set ssh.trust_on_first_use"
        )


class _TrustOnFirstUse(paramiko.MissingHostKeyPolicy):
    """An unknown host key is accepted once and appended to known_hosts; later it must match."""

    def __init__(self, node: str, known_hosts: Path) -> None:
        self.node, self.known_hosts = node, known_hosts

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        client.get_host_keys().add(hostname, key.get_name(), key)
        self.known_hosts.parent.mkdir(parents=True, exist_ok=True)
        with self.known_hosts.open("a") as out:
            out.write(f"{hostname} {key.get_name()} {key.get_base64()}\n")
        log.warning("node %s: trusted new host key of %s on first use: %s", self.node, hostname, fingerprint(key))


def load_private_key(text: str) -> paramiko.PKey:
    """A private key from its text (OpenSSH or PEM), of any type paramiko reads."""
    errors: list[str] = []
    for kind in (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey):
        try:
            return kind.from_private_key(io.StringIO(text))
        except (paramiko.SSHException, ValueError) as exc:
            errors.append(f"{kind.__name__}: {type(exc).__name__}")
    raise RemoteError(f"the private key secret is not a key paramiko can read ({'; '.join(errors)})")


@contextmanager
def _translated(node: str, doing: str) -> Iterator[None]:
    """The boundary: paramiko and socket errors become `RemoteError`s naming node and action."""
    try:
        yield
    except RemoteError:
        raise
    except paramiko.BadHostKeyException as exc:
        raise HostKeyMismatch(
            f"node {node}: {doing}: host key of {exc.hostname} CHANGED: offered {exc.key.get_name()} "
            f"{fingerprint(exc.key)}, known {fingerprint(exc.expected_key)}; refusing to connect"
        ) from exc
    except paramiko.AuthenticationException as exc:
        raise RemoteError(f"node {node}: {doing}: authentication failed: {exc}") from exc
    except TimeoutError as exc:
        raise RemoteError(f"node {node}: {doing}: timed out") from exc
    except paramiko.SSHException as exc:
        raise RemoteError(f"node {node}: {doing}: SSH error: {exc}") from exc
    except NoValidConnectionsError as exc:
        causes = "; ".join(sorted({_os_reason(e) for e in exc.errors.values()}))
        raise RemoteError(f"node {node}: {doing}: cannot connect: {causes}") from exc
    except OSError as exc:
        raise RemoteError(f"node {node}: {doing}: {exc.strerror or exc}") from exc


def _os_reason(exc: Exception) -> str:
    """A socket error's own words ("Connection refused", not "[Errno 111] Connection refused")."""
    return (exc.strerror if isinstance(exc, OSError) else None) or str(exc)


class RemoteShell:
    """An open SSH session to one node; run commands with `run`, close when done."""

    def __init__(self, node: str, client: paramiko.SSHClient, timeouts: SSHTimeouts) -> None:
        self.node, self._client, self.timeouts = node, client, timeouts

    def run(
        self,
        command: str,
        *,
        stdin: SecretStr | str | None = None,
        check: bool = True,
        timeout_s: float | None = None,
    ) -> CommandResult:
        """Run `command` through the node's shell; `stdin` (a secret, say) is written to its input.

        Args:
            command: the command line; it must not contain a secret (pass that as `stdin`).
            stdin: written followed by a newline, then input is closed.
            check: raise `CommandFailed` on a non-zero exit status.
            timeout_s: overrides `timeouts.command_s`.

        Raises:
            CommandFailed: non-zero exit and `check`; the message has the stderr tail, never stdin.
            RemoteError: the session broke or the command outlived its timeout.
        """
        limit = timeout_s if timeout_s is not None else self.timeouts.command_s
        started = time.perf_counter()
        with _translated(self.node, f"running {command!r}"):
            transport = self._client.get_transport()
            if transport is None or not transport.is_active():
                raise RemoteError(f"node {self.node}: the SSH session is closed")
            channel = transport.open_session(timeout=limit)
            try:
                channel.settimeout(limit)
                channel.exec_command(command)
                if stdin is not None:
                    text = stdin.get_secret_value() if isinstance(stdin, SecretStr) else stdin
                    channel.sendall((text + "\n").encode())
                channel.shutdown_write()
                out, err = _drain(channel, time.monotonic() + limit)
                status = channel.recv_exit_status()
            finally:
                channel.close()
        result = CommandResult(
            command=command, exit_status=status, stdout=out, stderr=err, seconds=round(time.perf_counter() - started, 3)
        )
        log.info("node %s: %r exited %d in %.2f s", self.node, command, status, result.seconds)
        if check and not result.ok:
            tail = (err.strip() or out.strip())[-500:]
            raise CommandFailed(f"node {self.node}: {command!r} exited {status}: {tail}")
        return result

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _drain(channel: paramiko.Channel, deadline: float) -> tuple[str, str]:
    """Read stdout and stderr together until the command exits (neither can fill and block the other)."""
    out, err = bytearray(), bytearray()
    while True:
        if channel.recv_ready():
            out += channel.recv(65536)
        elif channel.recv_stderr_ready():
            err += channel.recv_stderr(65536)
        elif channel.exit_status_ready() and not channel.recv_ready() and not channel.recv_stderr_ready():
            break
        elif time.monotonic() > deadline:
            raise TimeoutError
        else:
            time.sleep(0.01)
    return out.decode(errors="replace"), err.decode(errors="replace")


def open_shell(node: Node, credentials: SSHCredentials, timeouts: SSHTimeouts = DEFAULT_SSH_TIMEOUTS) -> RemoteShell:
    """Log in to the node's SSH (settings from `node.ssh`), verifying its host key.

    Raises:
        HostKeyMismatch: the key is unknown (and trust-on-first-use is off) or has changed.
        RemoteError: unreachable, timed out, or the login was refused.
    """
    if node.ssh is None:
        raise RemoteError(f"node {node.name}: the cluster file gives no ssh settings")
    ssh = node.ssh
    known_hosts = Path(ssh.known_hosts).expanduser()
    client = paramiko.SSHClient()
    try:
        with _translated(node.name, f"connecting to {ssh.user}@{node.host}:{ssh.port}"):
            if known_hosts.is_file():
                client.load_host_keys(str(known_hosts))
            policy = _TrustOnFirstUse if ssh.trust_on_first_use else _Refuse
            client.set_missing_host_key_policy(policy(node.name, known_hosts))
            pkey = load_private_key(credentials.key.get_secret_value()) if credentials.key else None
            client.connect(
                node.host,
                port=ssh.port,
                username=ssh.user,
                pkey=pkey,
                password=credentials.password.get_secret_value() if credentials.password else None,
                allow_agent=False,
                look_for_keys=False,
                timeout=timeouts.connect_s,
                banner_timeout=timeouts.banner_s,
                auth_timeout=timeouts.auth_s,
            )
    except BaseException:
        client.close()
        raise
    return RemoteShell(node.name, client, timeouts)


def sudo(command: list[str] | str, *, with_password: bool) -> str:
    """A command line that runs `command` as root; with a password, sudo reads it from stdin.

    `-S` reads the password from stdin and `-p ''` drops the prompt, so stdout stays the
    command's own; without a password, `-n` fails at once instead of waiting for one.
    """
    line = command if isinstance(command, str) else shlex.join(command)
    return f"sudo -S -p '' {line}" if with_password else f"sudo -n {line}"


def ssh_reachable(node: Node, credentials: SSHCredentials, timeouts: SSHTimeouts = DEFAULT_SSH_TIMEOUTS) -> str | None:
    """Fact: None when the node accepts an SSH login and runs `true`, else why not.

    A host key problem is not "unreachable": it is raised, since retrying or waking the
    node cannot fix it and it may be an attack.

    Raises:
        HostKeyMismatch: as `open_shell`.
    """
    try:
        with open_shell(node, credentials, timeouts) as shell:
            shell.run("true", timeout_s=timeouts.connect_s)
    except HostKeyMismatch:
        raise
    except RemoteError as exc:
        return str(exc)
    return None
