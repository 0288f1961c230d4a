"""The `recover-node` flow: bring one down node back, or say why it cannot be, and record the incident.

Started by the `homelab.node.down` event the health sweep emits (the trigger in prefect.yaml
passes the node's name), or by hand (`prefect deployment run`).

The loop itself (probe, facts, plan, act, probe again) is `homelab.recovery.loop.recover`,
which `homelab recover NODE` runs without Prefect. This flow gives it task-backed steps
(retries on the looks, each step visible in the UI) and adds what needs Prefect: guards,
because that event repeats on every sweep while the node stays down:
- one recovery per node at a time: a global concurrency limit `recover-node-NODE` (one slot,
  created on first use); a second run that cannot get the slot within `policy.lock_wait_s`
  ends SKIPPED without touching the node;
- a cooldown per node after a recovery that acted (`policy.cooldown_s`, the end marked in a
  Prefect Variable), so an unrecoverable node ends FAILED once and is not restarted or woken
  in a loop; the loop's attempts and waits are bounded by the policy too.

The flow run ends Failed when the node could not be recovered (the message is the reason), and
Completed for RECOVERED, FLAP and SKIPPED; the incident is the return value, an artifact
(`recover-node-NODE`) and rows in the history's incidents tables.
"""

from __future__ import annotations

from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
from prefect.client.schemas.objects import State
from prefect.concurrency.sync import concurrency
from prefect.exceptions import ObjectAlreadyExists
from prefect.states import Completed, Failed
from pydantic import Field

from flows.quoting import quoted
from homelab.docker_ops.apply import StepOutcome
from homelab.errors import RecoveryStepFailed
from homelab.inventory import Inventory, Node, load_inventory
from homelab.recovery.loop import recover
from homelab.recovery.plan import Incident, Outcome, RecoveryPolicy
from homelab.recovery.wake import WakeProcesses
from tasks.alerts import emit_recovery_event
from tasks.recovery import (
    check_node_docker,
    check_node_ssh,
    last_recovery_finished,
    probe_node_serving,
    record_incident,
    restart_node_containers,
    restart_node_docker,
    wait_for_node_docker,
    wait_for_node_serving,
    wait_for_node_ssh,
    wake_node,
)

__all__ = ["DEFAULT_FLOW_POLICY", "FlowRecoveryPolicy", "recover_node"]


class FlowRecoveryPolicy(RecoveryPolicy):
    """The core policy plus what only the flow needs: how long to wait for another run's lock."""

    lock_wait_s: float = Field(5.0, gt=0, description="seconds to wait for a running recovery of the node")


DEFAULT_FLOW_POLICY = FlowRecoveryPolicy()


class _TaskRunner:
    """The loop's steps as tasks of `tasks.recovery` (retries on the looks, run names in the UI).

    A task that did not complete is a failed step, its state's message the reason.
    """

    def __init__(self, inv: Inventory, vault_block: str | None) -> None:
        self.inv, self.vault = quoted(inv), vault_block

    @staticmethod
    def _result(state: State[Any]) -> Any:
        if not state.is_completed():
            raise RecoveryStepFailed(state.message or f"task ended {state.type.value}")
        return state.result()

    def probe_serving(self, node: Node) -> bool:
        return bool(self._result(probe_node_serving(self.inv, node, return_state=True)))

    def check_docker(self, node: Node) -> str | None:
        result: str | None = self._result(check_node_docker(self.inv, node, self.vault, return_state=True))
        return result

    def check_ssh(self, node: Node) -> str | None:
        result: str | None = self._result(check_node_ssh(self.inv, node, self.vault, return_state=True))
        return result

    def restart_docker(self, node: Node, policy: RecoveryPolicy) -> str:
        return str(self._result(restart_node_docker(self.inv, node, policy, self.vault, return_state=True)))

    def wake(self, node: Node, processes: WakeProcesses) -> str:
        return str(self._result(wake_node(self.inv, node, self.vault, quoted(processes), return_state=True)))

    def wait_for_ssh(self, node: Node, policy: RecoveryPolicy) -> str | None:
        result: str | None = self._result(wait_for_node_ssh(self.inv, node, policy, self.vault, return_state=True))
        return result

    def wait_for_docker(self, node: Node, policy: RecoveryPolicy) -> str | None:
        state = wait_for_node_docker(self.inv, node, policy, self.vault, return_state=True)
        result: str | None = self._result(state)
        return result

    def wait_for_serving(self, node: Node, policy: RecoveryPolicy) -> str | None:
        result: str | None = self._result(wait_for_node_serving(self.inv, node, policy, return_state=True))
        return result

    def restart_containers(self, node: Node) -> list[StepOutcome]:
        outcomes: list[StepOutcome] = self._result(
            restart_node_containers(self.inv, node, self.vault, return_state=True)
        )
        return outcomes


def _ensure_limit(name: str) -> None:
    """Create the one-slot global concurrency limit for the node unless it exists."""
    with get_client(sync_client=True) as client:
        try:
            client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=1))
        except ObjectAlreadyExists:
            pass


@flow(
    name="recover-node",
    description="Recover one down node: restart Docker or wake it, then its containers one at a time.",
    persist_result=False,
)
def recover_node(
    node: str,
    inventory: str = "cluster.yaml",
    vault_block: str | None = None,
    policy: FlowRecoveryPolicy = DEFAULT_FLOW_POLICY,
) -> State[Incident]:
    """Recover `node` of the cluster file at `inventory`.

    Args:
        node: the node's name (from the event's `homelab.node` resource label).
        inventory: path of the cluster file, read at run time.
        vault_block: name of a saved Vault Secrets block for the inventory's Vault refs; None
            when the inventory uses Prefect Secret blocks only (or needs no secret).
        policy: attempts, cooldown, waits, and the engine restart command override (over the
            node's `docker.restart_command` and the OS default).

    Returns:
        Completed (RECOVERED, FLAP, SKIPPED) or Failed (FAILED, the reason as message), with the incident.
    """
    path = Path(inventory)
    inv = load_inventory(path)
    target = next((n for n in inv.nodes if n.name == node), None)
    if target is None:
        return Failed(message=f"node {node!r} is not in {inventory}")
    limit = f"recover-node-{node}"
    _ensure_limit(limit)
    with ExitStack() as held:
        try:
            held.enter_context(concurrency(limit, occupy=1, timeout_seconds=policy.lock_wait_s, strict=True))
        except TimeoutError:  # only the wait for the slot: a TimeoutError inside is not swallowed here
            now = datetime.now(UTC)
            why = "another recovery of this node is running"
            incident = Incident(node=node, started_at=now, finished_at=now, outcome=Outcome.SKIPPED, reason=why)
        else:
            last = last_recovery_finished(target.name)
            runner = _TaskRunner(inv, vault_block)
            incident = recover(target, runner, policy, last_finished=last, logger=get_run_logger())
    record_incident(incident, inv.history.url, str(path.resolve().parent))
    emit_recovery_event(incident, target.tier, inv.notify)
    get_run_logger().info("node %s: %s: %s", node, incident.outcome, incident.reason)
    if incident.outcome is Outcome.FAILED:
        return Failed(message=f"node {node}: {incident.reason}", data=incident)
    return Completed(message=f"node {node}: {incident.outcome}: {incident.reason}", data=incident)
