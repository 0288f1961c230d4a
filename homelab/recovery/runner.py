"""How each recovery step runs: the `RecoveryRunner` protocol and `DirectRunner`, which calls the actions itself.

The loop (`homelab.recovery.loop`) decides; a runner performs one step per method. `homelab
recover` uses `DirectRunner` in its own process. The `recover-node` flow uses a runner whose
methods are Prefect tasks (retries on the looks), and each task body is the same
`DirectRunner` method, so a step is written once.

A step that fails raises `HomelabError`; the loop records it and decides from it.

Secrets come from a `SecretReader` (an inventory secret name -> its value), called inside the
step that needs the value: the SSH key and password never leave the step, so neither a task
parameter nor a result ever holds one.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Protocol

from pydantic import SecretStr

from homelab.docker_ops.apply import StepOutcome
from homelab.docker_ops.connect import SSHAccess, open_engine
from homelab.inventory import Inventory, Node
from homelab.recovery.actions import (
    docker_error,
    not_serving,
    probe_node_now,
    restart_containers,
    restart_docker,
    wait_for,
)
from homelab.recovery.plan import RecoveryPolicy
from homelab.recovery.wake import WakeProcesses, wake
from homelab.remote import SSHCredentials, load_private_key, open_shell, ssh_reachable

__all__ = ["DirectRunner", "RecoveryRunner", "SecretReader", "engine_ssh_access", "node_credentials"]

# An inventory secret name -> its value (Vault or a Prefect Secret block behind it, in tasks/access.py).
SecretReader = Callable[[str], SecretStr | None]


class RecoveryRunner(Protocol):
    """The steps of a recovery, one method each; a failed step raises `HomelabError`."""

    def probe_serving(self, node: Node) -> bool:
        """Fact: does any endpoint of the node serve right now?"""
        ...

    def check_docker(self, node: Node) -> str | None:
        """Fact: None when the node's engine answers a ping, else why not."""
        ...

    def check_ssh(self, node: Node) -> str | None:
        """Fact: None when SSH logs in, else why not (a host key problem raises: waking cannot fix it)."""
        ...

    def restart_docker(self, node: Node, policy: RecoveryPolicy) -> str:
        """Operation, not idempotent: restart the engine over SSH; returns what ran and how it ended."""
        ...

    def wake(self, node: Node, processes: WakeProcesses) -> str:
        """Operation, not idempotent: the node's wake action; a detached command is left in `processes`."""
        ...

    def wait_for_ssh(self, node: Node, policy: RecoveryPolicy) -> str | None:
        """Wait (bounded) until SSH logs in; None when it does, else the last failure."""
        ...

    def wait_for_docker(self, node: Node, policy: RecoveryPolicy) -> str | None:
        """Wait (bounded) until the engine answers; None when it does, else the last failure."""
        ...

    def wait_for_serving(self, node: Node, policy: RecoveryPolicy) -> str | None:
        """Wait (bounded) until an endpoint serves; None when one does, else why not."""
        ...

    def restart_containers(self, node: Node) -> list[StepOutcome]:
        """Operation: the stopped containers started one at a time, each behind the health gate."""
        ...


def node_credentials(node: Node, read: SecretReader) -> SSHCredentials:
    """The node's SSH key and password, read now from the secrets its cluster-file entry names."""
    ssh = node.ssh
    if ssh is None:
        return SSHCredentials()
    return SSHCredentials(
        key=read(ssh.key_secret) if ssh.key_secret else None,
        password=read(ssh.password_secret) if ssh.password_secret else None,
    )


def engine_ssh_access(node: Node, credentials: SSHCredentials) -> SSHAccess | None:
    """For an ssh:// engine URL: the node's known_hosts and the same key SSH uses (None without a key)."""
    if node.ssh is None or credentials.key is None:
        return None
    return SSHAccess(
        known_hosts=Path(node.ssh.known_hosts).expanduser(), key=load_private_key(credentials.key.get_secret_value())
    )


class DirectRunner:
    """Each step a plain call of `homelab.recovery.actions`, in this process."""

    def __init__(self, inv: Inventory, read: SecretReader) -> None:
        self.inv, self.read = inv, read

    def _credentials(self, node: Node) -> SSHCredentials:
        return node_credentials(node, self.read)

    def _engine_ssh(self, node: Node) -> SSHAccess | None:
        """The key for an ssh:// engine; other URLs need none (and no secret is read for them)."""
        if node.docker is None or not node.docker.url.startswith("ssh://"):
            return None
        return engine_ssh_access(node, self._credentials(node))

    def probe_serving(self, node: Node) -> bool:
        return any(r.serving for r in probe_node_now(self.inv, node))

    def check_docker(self, node: Node) -> str | None:
        return docker_error(node, self._engine_ssh(node))

    def check_ssh(self, node: Node) -> str | None:
        return ssh_reachable(node, self._credentials(node))

    def restart_docker(self, node: Node, policy: RecoveryPolicy) -> str:
        credentials = self._credentials(node)
        with open_shell(node, credentials) as shell:
            result = restart_docker(shell, node, policy, credentials.password)
        return f"{result.command!r} exited {result.exit_status} in {result.seconds:.2f} s"

    def wake(self, node: Node, processes: WakeProcesses) -> str:
        assert node.wake is not None  # the plan wakes only nodes with wake settings
        secret = self.read(node.wake.command_secret) if node.wake.command_secret else None
        return wake(node.wake, secret, processes)

    def wait_for_ssh(self, node: Node, policy: RecoveryPolicy) -> str | None:
        credentials = self._credentials(node)
        return wait_for(lambda: ssh_reachable(node, credentials), policy.wait_ssh_s, policy.poll_s)

    def wait_for_docker(self, node: Node, policy: RecoveryPolicy) -> str | None:
        access = self._engine_ssh(node)
        return wait_for(lambda: docker_error(node, access), policy.wait_docker_s, policy.poll_s)

    def wait_for_serving(self, node: Node, policy: RecoveryPolicy) -> str | None:
        return wait_for(lambda: not_serving(self.inv, node), policy.wait_serving_s, policy.poll_s)

    def restart_containers(self, node: Node) -> list[StepOutcome]:
        with closing(open_engine(node, ssh=self._engine_ssh(node))) as engine:
            return restart_containers(engine, self.inv, node)
