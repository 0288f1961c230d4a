"""A key for the test sshd that reaches the test dockerd: how the tests get an ssh:// engine."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.fixtures.docker_engine import DockerEngine
from tests.fixtures.sshd import SSHServer

__all__ = ["docker_only_key", "fingerprint"]


def docker_only_key(sshd: SSHServer, docker_engine: DockerEngine, root: Path) -> Path:
    """A new key (its private file) that may do one thing on the test sshd: `docker system dial-stdio` to the engine.

    Production nodes need nothing like this (their engine is at the default socket); here the
    forced command points the remote docker CLI at the test engine, and `restrict` takes away
    everything else (pty, forwarding).
    """
    docker_cli = shutil.which("docker")
    if docker_cli is None:
        pytest.skip("the docker CLI is not installed: ssh:// engines run `docker system dial-stdio` on the node")
    if not docker_engine.base_url.startswith("unix://"):
        pytest.skip("the forced command reaches the engine through its local socket")
    key = root / "docker_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True, capture_output=True)
    forced = f'command="DOCKER_HOST={docker_engine.base_url} exec {docker_cli} system dial-stdio",restrict'
    with (sshd.root / "authorized_keys").open("a") as keys:
        keys.write(f"{forced} {key.with_suffix('.pub').read_text().strip()}\n")
    return key


def fingerprint(key: Path) -> str:
    """`SHA256:...` of a key, as sshd logs it when the key is accepted."""
    listed = subprocess.run(["ssh-keygen", "-lf", str(key)], check=True, capture_output=True, text=True).stdout
    return listed.split()[1]
