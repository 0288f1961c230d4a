"""The recovery loop of one down node: probe, facts, plan, act, probe again, until it serves or attempts run out.

Written once, here; how each step runs is a runner's business (`homelab.recovery.runner`).
`homelab recover` runs it with `DirectRunner`; the `recover-node` flow with task-backed steps,
and adds only what needs Prefect: the per-node lock, the cooldown mark, the artifact, the
run's state.

Each round: if the node serves, the run ends RECOVERED (something was done) or FLAP (nothing
was). Else the facts (engine, then SSH when the engine is dead) go to `plan_recovery`, and its
steps run until one fails. A failed engine restart is a fact for the rest of the run: the
plan escalates to the wake action at once, in the same round, and later rounds do not
restart the engine again. Every step and check is recorded in the `Incident`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from homelab.docker_ops.apply import StepStatus
from homelab.errors import HomelabError
from homelab.inventory import Node
from homelab.recovery.plan import (
    DEFAULT_RECOVERY_POLICY,
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
from homelab.recovery.runner import RecoveryRunner
from homelab.recovery.wake import WakeProcesses

__all__ = ["Logger", "recover"]

log = logging.getLogger(__name__)

# Where the loop says what it decided: this module's logger, or the flow run's.
Logger = logging.Logger | logging.LoggerAdapter[Any]
_CHECKS = frozenset({"probe", "check ssh", "check docker"})


class _Record:
    """The incident's action list, filled as steps run."""

    def __init__(self) -> None:
        self.actions: list[ActionRecord] = []

    def _add(self, action: str, at: datetime, started: float, ok: bool, detail: Any) -> None:
        seconds = round(time.perf_counter() - started, 3)
        self.actions.append(ActionRecord(action=action, at=at, seconds=seconds, ok=ok, detail=str(detail or "")))

    def step(self, action: str, call: Callable[[], Any], judge: Callable[[Any], str | None]) -> tuple[bool, Any]:
        """Run a step; `judge` turns its result into a failure text or None.

        Returns:
            (True, result) when it succeeded, else (False, why).
        """
        at, started = datetime.now(UTC), time.perf_counter()
        failure: str | None
        try:
            result = call()
        except HomelabError as exc:
            result, failure = None, str(exc)
        else:
            failure = judge(result)
        self._add(action, at, started, failure is None, failure or _detail(result))
        return failure is None, result if failure is None else failure

    def fact(self, action: str, call: Callable[[], str | None]) -> tuple[bool, str | None]:
        """Run a check whose result is None (passed) or why it failed; a failed check is data, not an error.

        Returns:
            (True, result) when the check ran (the record says whether it passed), else (False, why).
        """
        at, started = datetime.now(UTC), time.perf_counter()
        try:
            result = call()
        except HomelabError as exc:
            self._add(action, at, started, False, exc)
            return False, str(exc)
        self._add(action, at, started, result is None, result)
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
    """One recovery run of one node: its runner, policy, wake processes, record and logger."""

    def __init__(
        self, node: Node, runner: RecoveryRunner, policy: RecoveryPolicy, wakes: WakeProcesses, logger: Logger
    ) -> None:
        self.node, self.runner, self.policy, self.wakes, self.logger = node, runner, policy, wakes, logger
        self.record = _Record()

    def step(self, action: Action) -> str | None:
        """Run one planned step; returns why it failed, or None."""
        r, node, policy = self.runner, self.node, self.policy
        calls: dict[Action, tuple[Callable[[], Any], Callable[[Any], str | None]]] = {
            Action.RESTART_DOCKER: (lambda: r.restart_docker(node, policy), _no_failure),
            Action.WAIT_DOCKER: (lambda: r.wait_for_docker(node, policy), _as_failure),
            Action.WAKE: (lambda: r.wake(node, self.wakes), _no_failure),
            Action.WAIT_SSH: (lambda: r.wait_for_ssh(node, policy), _as_failure),
            Action.RESTART_CONTAINERS: (lambda: r.restart_containers(node), _containers_failure),
            Action.WAIT_SERVING: (lambda: r.wait_for_serving(node, policy), _as_failure),
        }
        call, judge = calls[action]
        ok, result = self.record.step(action.value, call, judge)
        return None if ok else f"{action.value} failed: {result}"

    def steps(self, plan: RecoveryPlan) -> tuple[Action | None, str | None]:
        """Run the plan's steps until one fails; returns that step and why, or (None, None)."""
        for action in plan.steps:
            failure = self.step(action)
            if failure is not None:
                return action, failure
        return None, None

    def serving(self) -> bool:
        ok, serving = self.record.step("probe", lambda: self.runner.probe_serving(self.node), _no_failure)
        return bool(ok and serving)

    def facts(self, restart_failed: str | None) -> NodeFacts | str:
        """The engine and SSH checks (none for a wake-only node) as facts, or why a check itself failed."""
        node, runner = self.node, self.runner
        docker: str | None = None
        ssh: str | None = None
        if not wake_only(node):  # else there is no login or engine of its own to check
            got, docker = self.record.fact("check docker", lambda: runner.check_docker(node))
            if not got:
                return f"the Docker engine check failed: {docker}"
        if docker is not None:
            got, ssh = self.record.fact("check ssh", lambda: runner.check_ssh(node))
            if not got:  # a host key problem: waking or restarting cannot fix it
                return f"SSH check failed: {ssh}"
        return NodeFacts(serving=False, ssh_error=ssh, docker_error=docker, restart_failed=restart_failed)


def _restart_failed(plan: RecoveryPlan, failed_at: Action | None) -> bool:
    """The plan restarted the engine, and the restart or the wait for the engine after it failed."""
    return Action.RESTART_DOCKER in plan.steps and failed_at in (Action.RESTART_DOCKER, Action.WAIT_DOCKER)


def _attempts(run: _Run) -> tuple[Outcome, str, int]:
    """Probe, decide, act, up to `max_attempts` rounds; returns outcome, reason and rounds used."""
    reason, restart_failed = "not attempted", None
    for attempt in range(1, run.policy.max_attempts + 1):
        if run.serving():
            if any(a.action not in _CHECKS for a in run.record.actions):
                return Outcome.RECOVERED, "the node serves again", attempt
            return Outcome.FLAP, "the node serves again before anything was done (a flap)", attempt
        facts = run.facts(restart_failed)
        if isinstance(facts, str):
            return Outcome.FAILED, facts, attempt
        plan = plan_recovery(run.node, facts)
        while True:
            run.logger.info("attempt %d: %s: %s", attempt, plan.why, ", ".join(plan.steps) or "no steps")
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


def recover(
    node: Node,
    runner: RecoveryRunner,
    policy: RecoveryPolicy = DEFAULT_RECOVERY_POLICY,
    *,
    last_finished: datetime | None = None,
    logger: Logger = log,
) -> Incident:
    """Recover `node`, or say why it cannot be; the incident says what was done.

    A wake command left running (`wake.detach`) is stopped when the run ends.

    Args:
        node: the down node, from the cluster file.
        runner: how each step runs (`DirectRunner`, or the flow's tasks).
        policy: attempts, cooldown, waits, the engine restart command override.
        last_finished: when the last recovery of the node that acted ended; within
            `policy.cooldown_s` of it the run is SKIPPED and nothing is touched.
        logger: where each round's decision is logged.

    Returns:
        The incident: RECOVERED, FLAP, FAILED (with why) or SKIPPED.
    """
    started = datetime.now(UTC)
    left = cooldown_left_s(last_finished, policy)
    with WakeProcesses() as wakes:
        run = _Run(node, runner, policy, wakes, logger)
        if left > 0:
            why = f"cooling down: the last recovery ended {last_finished}, {left:.0f} s left"
            outcome, reason, attempts = Outcome.SKIPPED, why, 0
        else:
            outcome, reason, attempts = _attempts(run)
    return Incident(
        node=node.name,
        started_at=started,
        finished_at=datetime.now(UTC),
        outcome=outcome,
        reason=reason,
        attempts=attempts,
        actions=run.record.actions,
    )
