"""The `recover-node` flow: bring one down node back, or say why it cannot be, and record the incident.

Started by the `homelab.node.down` event the health sweep emits (the trigger in prefect.yaml
passes the node's name), or by hand (`homelab recover NODE`, `prefect deployment run`).

Guards, because that event repeats on every sweep while the node stays down:
- one recovery per node at a time: a global concurrency limit `recover-node-NODE` (one slot,
  created on first use); a second run that cannot get the slot within `policy.lock_wait_s`
  ends SKIPPED without touching the node;
- a cooldown per node after a recovery that acted (`policy.cooldown_s`), so an unrecoverable
  node ends FAILED once and is not restarted or woken in a loop;
- bounded attempts (`policy.max_attempts`) and bounded waits.

The flow run ends Failed when the node could not be recovered (the message is the reason), and
Completed for RECOVERED, FLAP and SKIPPED; the incident is the return value, an artifact
(`recover-node-NODE`) and rows in the history's incidents tables.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
from prefect.concurrency.sync import concurrency
from prefect.exceptions import ObjectAlreadyExists
from prefect.states import Completed, Failed, State
from prefect.utilities.annotations import quote
from pydantic import Field

from homelab.docker_ops.apply import StepStatus
from homelab.inventory import Inventory, Node, load_inventory
from homelab.recovery.plan import (
    Action,
    ActionRecord,
    Incident,
    NodeFacts,
    Outcome,
    RecoveryPlan,
    RecoveryPolicy,
    cooldown_left_s,
    plan_recovery,
    wake_only,
)
from homelab.recovery.wake import WakeProcesses
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

__all__ = ["DEFAULT_FLOW_POLICY", "FlowRecoveryPolicy", "main", "recover_node"]


class FlowRecoveryPolicy(RecoveryPolicy):
    """The core policy plus what only the flow needs: how long to wait for another run's lock."""

    lock_wait_s: float = Field(5.0, gt=0, description="seconds to wait for a running recovery of the node")


DEFAULT_FLOW_POLICY = FlowRecoveryPolicy()


class _Log:
    """The incident's action list, filled as steps run."""

    def __init__(self) -> None:
        self.actions: list[ActionRecord] = []

    def _record(self, action: str, at: datetime, started: float, ok: bool, detail: Any) -> None:
        seconds = round(time.perf_counter() - started, 3)
        self.actions.append(ActionRecord(action=action, at=at, seconds=seconds, ok=ok, detail=str(detail or "")))

    def run(self, action: str, call: Callable[[], Any], judge: Callable[[Any], str | None]) -> tuple[bool, Any]:
        """Run a step (a task call with return_state); `judge` turns its result into a failure text or None.

        Returns:
            (True, result) when it succeeded, else (False, why).
        """
        at, started = datetime.now(UTC), time.perf_counter()
        state: State[Any] = call()
        if state.is_completed():
            result = state.result()
            failure = judge(result)
        else:
            result, failure = None, state.message or f"task ended {state.type.value}"
        self._record(action, at, started, failure is None, failure or _detail(result))
        return failure is None, result if failure is None else failure

    def fact(self, action: str, call: Callable[[], Any]) -> tuple[bool, Any]:
        """Run a check whose result is None (passed) or why it failed; a failed check is data, not an error.

        Returns:
            (True, result) when the check ran (the record says whether it passed), else (False, why).
        """
        at, started = datetime.now(UTC), time.perf_counter()
        state: State[Any] = call()
        if not state.is_completed():
            why = state.message or f"task ended {state.type.value}"
            self._record(action, at, started, False, why)
            return False, why
        result = state.result()
        self._record(action, at, started, result is None, result)
        return True, result


def _no_failure(_: Any) -> None:
    return None


def _as_failure(result: Any) -> str | None:
    return result if isinstance(result, str) else None


def _containers_failure(outcomes: Any) -> str | None:
    bad = [o for o in outcomes if o.status is not StepStatus.DONE and o.status is not StepStatus.NOT_RUN]
    return f"{bad[0].summary}: {bad[0].detail}" if bad else None


def _detail(result: Any) -> str:
    """What the record of a step that succeeded says: its text; for container starts, when each gate passed.

    The gate times are the incident's evidence that the containers started one at a time (the
    next one only after the one before served), to compare with the engine's own start events.
    """
    if isinstance(result, list):  # restart containers' outcomes
        passed = [o.gate for o in result if o.gate is not None and o.gate.healthy]
        return "; ".join(f"{g.container} passed its gate at {g.finished_at.isoformat()}" for g in passed)
    return result if isinstance(result, str) else ""


class _Run:
    """What every step of one recovery run needs: the file, the node, the policy, the secrets block, the wake processes."""

    def __init__(
        self, inv: Inventory, node: Node, policy: RecoveryPolicy, vault: str | None, wakes: WakeProcesses
    ) -> None:
        self.inv, self.node, self.policy, self.vault, self.wakes = inv, node, policy, vault, wakes
        self.log = _Log()

    def step(self, action: Action) -> str | None:
        """Run one planned step; returns why it failed, or None."""
        q, node, policy, vault = quote(self.inv), self.node, self.policy, self.vault
        calls: dict[Action, tuple[Callable[[], Any], Callable[[Any], str | None]]] = {
            Action.RESTART_DOCKER: (
                lambda: restart_node_docker(q, node, policy, vault, return_state=True),
                _no_failure,
            ),
            Action.WAIT_DOCKER: (lambda: wait_for_node_docker(q, node, policy, vault, return_state=True), _as_failure),
            Action.WAKE: (lambda: wake_node(q, node, vault, quote(self.wakes), return_state=True), _no_failure),
            Action.WAIT_SSH: (lambda: wait_for_node_ssh(q, node, policy, vault, return_state=True), _as_failure),
            Action.RESTART_CONTAINERS: (
                lambda: restart_node_containers(q, node, vault, return_state=True),
                _containers_failure,
            ),
            Action.WAIT_SERVING: (lambda: wait_for_node_serving(q, node, policy, return_state=True), _as_failure),
        }
        call, judge = calls[action]
        ok, result = self.log.run(action.value, call, judge)
        return None if ok else f"{action.value} failed: {result}"

    def steps(self, plan: RecoveryPlan) -> tuple[Action | None, str | None]:
        """Run the plan's steps until one fails; returns that step and why, or (None, None)."""
        for action in plan.steps:
            failure = self.step(action)
            if failure is not None:
                return action, failure
        return None, None

    def serving(self) -> bool:
        ok, serving = self.log.run(
            "probe", lambda: probe_node_serving(quote(self.inv), self.node, return_state=True), _no_failure
        )
        return bool(ok and serving)

    def facts(self, restart_failed: str | None) -> NodeFacts | str:
        """The engine and SSH checks (none for a wake-only node) as facts, or why a check itself failed."""
        q, node, vault = quote(self.inv), self.node, self.vault
        docker: str | None = None
        ssh: str | None = None
        if not wake_only(node):  # else there is no login or engine of its own to check
            got, docker = self.log.fact("check docker", lambda: check_node_docker(q, node, vault, return_state=True))
            if not got:
                return f"the Docker engine check failed: {docker}"
        if docker is not None:
            got, ssh = self.log.fact("check ssh", lambda: check_node_ssh(q, node, vault, return_state=True))
            if not got:  # a host key problem: waking or restarting cannot fix it
                return f"SSH check failed: {ssh}"
        return NodeFacts(serving=False, ssh_error=ssh, docker_error=docker, restart_failed=restart_failed)


def _restart_failed(plan: RecoveryPlan, failed_at: Action | None) -> bool:
    """The plan restarted the engine, and the restart or the wait for the engine after it failed."""
    return Action.RESTART_DOCKER in plan.steps and failed_at in (Action.RESTART_DOCKER, Action.WAIT_DOCKER)


def _attempts(run: _Run) -> tuple[Outcome, str, int]:
    """Probe, decide, act, up to `max_attempts` rounds; returns outcome, reason and rounds used.

    A failed engine restart is a fact for the rest of the run: the plan escalates to the wake
    action at once, in the same round, and later rounds do not restart the engine again.
    """
    logger = get_run_logger()
    reason, restart_failed = "not attempted", None
    for attempt in range(1, run.policy.max_attempts + 1):
        if run.serving():
            acted = any(a.action not in {"probe", "check ssh", "check docker"} for a in run.log.actions)
            return (
                (Outcome.RECOVERED, "the node serves again", attempt)
                if acted
                else (Outcome.FLAP, "the node serves again before anything was done (a flap)", attempt)
            )
        facts = run.facts(restart_failed)
        if isinstance(facts, str):
            return Outcome.FAILED, facts, attempt
        plan = plan_recovery(run.node, facts)
        while True:
            logger.info("attempt %d: %s: %s", attempt, plan.why, ", ".join(plan.steps) or "no steps")
            if plan.outcome is Outcome.FAILED:
                return Outcome.FAILED, plan.why, attempt
            failed_at, failure = run.steps(plan)
            if failure is None or not _restart_failed(plan, failed_at):
                break
            restart_failed = failure
            plan = plan_recovery(run.node, facts.model_copy(update={"restart_failed": failure}))
        if failure is not None:
            reason = failure
        elif run.serving():
            return Outcome.RECOVERED, f"the node serves again after: {', '.join(plan.steps)}", attempt
        else:
            reason = f"{plan.why}; the steps ran but the node still does not serve"
    return Outcome.FAILED, f"not recovered after {run.policy.max_attempts} attempts: {reason}", run.policy.max_attempts


def _ensure_limit(name: str) -> None:
    """Create the one-slot global concurrency limit for the node unless it exists."""
    with get_client(sync_client=True) as client:
        try:
            client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=1))
        except ObjectAlreadyExists:
            pass


def _recover(inv: Inventory, node: Node, policy: RecoveryPolicy, vault: str | None) -> Incident:
    """The run's rounds, between the cooldown check and the incident; a detached wake command ends with it."""
    started = datetime.now(UTC)
    last = last_recovery_finished(node.name)
    left = cooldown_left_s(last, policy)
    with WakeProcesses() as wakes:
        run = _Run(inv, node, policy, vault, wakes)
        if left > 0:
            outcome, reason, attempts = (
                Outcome.SKIPPED,
                f"cooling down: the last recovery ended {last}, {left:.0f} s left",
                0,
            )
        else:
            outcome, reason, attempts = _attempts(run)
    return Incident(
        node=node.name,
        started_at=started,
        finished_at=datetime.now(UTC),
        outcome=outcome,
        reason=reason,
        attempts=attempts,
        actions=run.log.actions,
    )


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
            incident = _recover(inv, target, policy, vault_block)
    record_incident(incident, inv.history.url, str(path.resolve().parent))
    get_run_logger().info("node %s: %s: %s", node, incident.outcome, incident.reason)
    if incident.outcome is Outcome.FAILED:
        return Failed(message=f"node {node}: {incident.reason}", data=incident)
    return Completed(message=f"node {node}: {incident.outcome}: {incident.reason}", data=incident)


def main(argv: list[str] | None = None) -> int:
    """`python -m flows.recover_node NODE`: one recovery in this process (what `homelab recover` runs).

    Prints the incident as markdown; exits 0 unless the node could not be recovered (1).
    """
    import argparse

    parser = argparse.ArgumentParser(prog="python -m flows.recover_node", description=main.__doc__)
    parser.add_argument("node")
    parser.add_argument("--inventory", default="cluster.yaml")
    parser.add_argument("--vault-block", default=None)
    parser.add_argument(
        "--restart-command",
        default=None,
        help="for this run, replaces the node's docker.restart_command and the OS default",
    )
    args = parser.parse_args(argv)
    policy = FlowRecoveryPolicy(restart_command=args.restart_command)
    state = recover_node(
        node=args.node, inventory=args.inventory, vault_block=args.vault_block, policy=policy, return_state=True
    )
    incident = state.result(raise_on_failure=False)
    print(incident.markdown() if isinstance(incident, Incident) else state.message)
    return 1 if state.is_failed() else 0


if __name__ == "__main__":
    raise SystemExit(main())
