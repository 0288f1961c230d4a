"""Node recovery decisions: what to do for a down node given what was observed, and the incident record.

Pure, as pyinfra's operations are: `plan_recovery` reads facts (does the node serve again, does
SSH log in, does the Docker engine answer) and returns the steps to take, each flagged
idempotent or not, or the reason nothing can be done. `homelab.recovery.loop` asks it each
round and runs the steps through a runner (`homelab.recovery.runner`: plain calls of
`homelab.recovery.actions`, or the `recover-node` flow's tasks, retries only on idempotent
ones), and records an `Incident`.

The ladder, cheapest first:
- the node serves again: a flap; record it and stop;
- SSH works, the engine does not: restart the engine (see `default_restart_command`), wait for
  it, start the containers one at a time behind their health gates;
- the restart was tried and failed (the command failed, or the engine did not answer in time):
  escalate to the node's wake action, then wait for the engine and start the containers. On a
  Windows node that is the RDP session that signs the user in, which starts Docker Desktop
  (`homelab.recovery.windows`); without wake settings, it needs hands;
- SSH works, the engine answers: the containers are down; start them one at a time;
- SSH is dead: wake the machine (Wake-on-LAN or a wake command), wait for SSH and the engine,
  then the containers; without wake settings, the node cannot be recovered from here;
- the cluster file gives no SSH and the node runs no containers (an appliance, a desktop whose
  servers run natively): nothing can be logged into or restarted, so waking it is the only
  step; then wait until it serves.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum

from pydantic import Field

from homelab.frozen import Frozen
from homelab.inventory import Node
from homelab.recovery.windows import WINDOWS_RESTART_DOCKER

__all__ = [
    "DEFAULT_RECOVERY_POLICY",
    "NON_IDEMPOTENT",
    "Action",
    "ActionRecord",
    "Incident",
    "NodeFacts",
    "Outcome",
    "RecoveryPlan",
    "RecoveryPolicy",
    "cooldown_left_s",
    "default_restart_command",
    "plan_recovery",
    "wake_only",
]

LINUX_RESTART_DOCKER = "systemctl restart docker"


class Action(StrEnum):
    """One recovery step."""

    RESTART_DOCKER = "restart docker"
    WAIT_DOCKER = "wait for docker"
    WAKE = "wake"
    WAIT_SSH = "wait for ssh"
    RESTART_CONTAINERS = "restart containers"
    WAIT_SERVING = "wait until it serves"


# Doing these twice is not doing them once: a second engine restart kills containers the first
# one's restart brought back; a second wake can reset a BMC mid-boot. No retries on them.
NON_IDEMPOTENT = frozenset({Action.RESTART_DOCKER, Action.WAKE})


class Outcome(StrEnum):
    """How a recovery run ended."""

    RECOVERED = "RECOVERED"
    FLAP = "FLAP"
    FAILED = "FAILED"
    SKIPPED = "SKIPPED"


class RecoveryPolicy(Frozen):
    """Limits of one recovery run; every wait is bounded, so a dead node ends FAILED, not in a loop."""

    max_attempts: int = Field(2, ge=1, le=10, description="rounds of facts, plan and steps before giving up")
    cooldown_s: float = Field(900.0, ge=0, description="after a recovery of a node, seconds before the next one")
    wait_ssh_s: float = Field(300.0, gt=0, description="seconds a woken machine may take to accept SSH")
    wait_docker_s: float = Field(120.0, gt=0, description="seconds a restarted engine may take to answer")
    wait_serving_s: float = Field(300.0, gt=0, description="seconds a woken wake-only node may take to serve")
    poll_s: float = Field(2.0, gt=0, description="seconds between checks while waiting")
    restart_command: str | None = Field(
        None,
        description="for this run, replaces the node's docker.restart_command and the OS default; "
        "on Linux run through sudo, password on stdin",
    )


DEFAULT_RECOVERY_POLICY = RecoveryPolicy()


class NodeFacts(Frozen):
    """What was observed about a down node; an error text means the check failed, None means it passed."""

    serving: bool
    ssh_error: str | None = None
    docker_error: str | None = None
    restart_failed: str | None = Field(None, description="the engine restart was tried in this run and failed: why")


class RecoveryPlan(Frozen):
    """Steps to take in order, or (no steps) why nothing can or need be done."""

    steps: list[Action] = Field(default_factory=list)
    why: str
    outcome: Outcome | None = Field(None, description="set when the plan ends the run without steps")


class ActionRecord(Frozen):
    """One thing the recovery did (or checked), when, how long, and how it ended."""

    action: str
    at: datetime
    seconds: float
    ok: bool
    detail: str = ""


class Incident(Frozen):
    """One recovery run of one node: what happened, how it ended and why."""

    node: str
    started_at: datetime
    finished_at: datetime
    outcome: Outcome
    reason: str
    attempts: int = 0
    actions: list[ActionRecord] = Field(default_factory=list)

    @property
    def time_to_recover_s(self) -> float | None:
        """Seconds from the start to the node serving again; None unless RECOVERED."""
        if self.outcome is not Outcome.RECOVERED:
            return None
        return round((self.finished_at - self.started_at).total_seconds(), 2)

    def markdown(self) -> str:
        """The incident as the Prefect artifact shows it (no secret ever enters an incident)."""
        ttr = self.time_to_recover_s
        lines = [
            f"# Node {self.node}: {self.outcome}",
            "",
            f"- why: {self.reason}",
            f"- started: {self.started_at.isoformat()}, finished: {self.finished_at.isoformat()}",
            f"- attempts: {self.attempts}",
            f"- time to recover: {f'{ttr:.1f} s' if ttr is not None else 'n/a'}",
            "",
            "| at | action | result | seconds | detail |",
            "|---|---|---|---|---|",
        ]
        for a in self.actions:
            detail = a.detail.replace("|", "\\|").replace("\n", " ")[:300]
            result = "ok" if a.ok else "FAILED"
            lines.append(f"| {a.at.strftime('%H:%M:%S')} | {a.action} | {result} | {a.seconds:.2f} | {detail} |")
        return "\n".join(lines)


def default_restart_command(node: Node, policy: RecoveryPolicy = DEFAULT_RECOVERY_POLICY) -> str:
    """The command that restarts the node's Docker engine, first given wins.

    1. the run's `policy.restart_command` (`homelab recover --restart-command`): a one-off;
    2. the node's `docker.restart_command` in the cluster file;
    3. the OS default: `systemctl restart docker` on Linux; on Windows, Docker Desktop's
       processes stopped and the scheduled task that starts it in the desktop session run.
    """
    if policy.restart_command:
        return policy.restart_command
    if node.docker is not None and node.docker.restart_command:
        return node.docker.restart_command
    return WINDOWS_RESTART_DOCKER if node.os == "windows" else LINUX_RESTART_DOCKER


def wake_only(node: Node) -> bool:
    """True when waking is all recovery can do: no SSH settings and no containers to restart.

    Its SSH and engine facts say nothing then (no login is configured; the engine URL would be
    the controller's own socket), so they are neither checked nor waited for.
    """
    return node.ssh is None and not any(e.container for e in node.endpoints)


def plan_recovery(node: Node, facts: NodeFacts) -> RecoveryPlan:
    """The steps for a down node, from what was observed (see the module docstring for the ladder)."""
    if facts.serving:
        return RecoveryPlan(why="the node serves again (a flap): nothing to do", outcome=Outcome.FLAP)
    if wake_only(node):
        if node.wake is None:
            why = "the cluster file gives no SSH, no containers and no wake settings; it needs hands"
            return RecoveryPlan(why=why, outcome=Outcome.FAILED)
        why = "no SSH and no containers in the cluster file: wake the machine and wait until it serves"
        return RecoveryPlan(steps=[Action.WAKE, Action.WAIT_SERVING], why=why)
    if facts.docker_error is None:
        why = "the Docker engine answers; its containers do not serve"
        return RecoveryPlan(steps=[Action.RESTART_CONTAINERS], why=why)
    if facts.ssh_error is None and facts.restart_failed is not None:
        return _escalate(node, facts.restart_failed)
    if facts.ssh_error is None:
        why = f"SSH works but the Docker engine does not answer ({facts.docker_error})"
        return RecoveryPlan(steps=[Action.RESTART_DOCKER, Action.WAIT_DOCKER, Action.RESTART_CONTAINERS], why=why)
    if node.wake is None:
        why = f"SSH is dead ({facts.ssh_error}) and the node has no wake settings; it needs hands"
        return RecoveryPlan(why=why, outcome=Outcome.FAILED)
    why = f"SSH is dead ({facts.ssh_error}): wake the machine"
    steps = [Action.WAKE, Action.WAIT_SSH, Action.WAIT_DOCKER, Action.RESTART_CONTAINERS]
    return RecoveryPlan(steps=steps, why=why)


def _escalate(node: Node, restart_failed: str) -> RecoveryPlan:
    """The engine restart failed: the machine's wake action is the next rung (on Windows, signing the user in).

    No WAIT_SSH: SSH answered a moment ago; the engine is what must come up.
    """
    if node.wake is None:
        why = f"the engine restart failed ({restart_failed}) and the node has no wake settings; it needs hands"
        return RecoveryPlan(why=why, outcome=Outcome.FAILED)
    how = " (the sign-in starts Docker Desktop)" if node.os == "windows" else ""
    why = f"the engine restart failed ({restart_failed}): wake the machine{how}"
    return RecoveryPlan(steps=[Action.WAKE, Action.WAIT_DOCKER, Action.RESTART_CONTAINERS], why=why)


def cooldown_left_s(last_finished: datetime | None, policy: RecoveryPolicy, now: datetime | None = None) -> float:
    """Seconds until the node may be recovered again (0 when it may now).

    Why a cooldown: the sweep emits `homelab.node.down` on every sweep while a node stays down,
    and each event starts a recovery; without one, an unrecoverable node would have its engine
    restarted or be woken every five minutes forever.
    """
    if last_finished is None:
        return 0.0
    now = now or datetime.now(UTC)
    return max(0.0, policy.cooldown_s - (now - last_finished).total_seconds())
