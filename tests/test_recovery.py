"""Recovery decisions (pure): the ladder, the cooldown, the restart command, the incident record."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from homelab.inventory import Container, DockerSettings, Endpoint, Node, SSHSettings, Wake
from homelab.recovery.plan import (
    NON_IDEMPOTENT,
    Action,
    ActionRecord,
    Incident,
    NodeFacts,
    Outcome,
    RecoveryPolicy,
    cooldown_left_s,
    default_restart_command,
    plan_recovery,
)

SSH = SSHSettings(user="ops")
WOL = Wake(mac="aa:bb:cc:dd:ee:ff", broadcast="127.0.0.1")
PLAIN = Node(name="gpu2", tier="t", host="127.0.0.1", ssh=SSH)
WAKEABLE = Node(name="gpu2", tier="t", host="127.0.0.1", ssh=SSH, wake=WOL)
WINDOWS = Node(
    name="mark-ii",
    tier="t",
    host="127.0.0.1",
    os="windows",
    ssh=SSH,
    wake=Wake(command="xfreerdp /v:127.0.0.1 /u:ops /from-stdin", command_secret="rdp", detach=True),
)
# Nothing to log into, nothing in containers: waking is all there is.
NATIVE = Node(
    name="nas",
    tier="t",
    host="127.0.0.1",
    wake=Wake(command="/bin/true"),
    endpoints=[Endpoint(name="llm", kind="llamacpp", url="http://127.0.0.1:9")],
)
CONTAINED = Node(
    name="gpu3",
    tier="t",
    host="127.0.0.1",
    wake=WOL,
    endpoints=[
        Endpoint(
            name="llm", kind="llamacpp", url="http://127.0.0.1:9", container=Container(image="i", model_file="m.gguf")
        )
    ],
)


@pytest.mark.parametrize(
    ("node", "facts", "steps", "outcome", "why"),
    [
        (PLAIN, NodeFacts(serving=True), [], Outcome.FLAP, "flap"),
        (PLAIN, NodeFacts(serving=False), [Action.RESTART_CONTAINERS], None, "engine answers"),
        (
            PLAIN,
            NodeFacts(serving=False, docker_error="refused"),
            [Action.RESTART_DOCKER, Action.WAIT_DOCKER, Action.RESTART_CONTAINERS],
            None,
            "SSH works but the Docker engine does not answer \\(refused\\)",
        ),
        (
            PLAIN,
            NodeFacts(serving=False, docker_error="x", ssh_error="timed out"),
            [],
            Outcome.FAILED,
            "no wake settings",
        ),
        (
            WAKEABLE,
            NodeFacts(serving=False, docker_error="x", ssh_error="timed out"),
            [Action.WAKE, Action.WAIT_SSH, Action.WAIT_DOCKER, Action.RESTART_CONTAINERS],
            None,
            "SSH is dead \\(timed out\\): wake",
        ),
        # sshd died but the engine answers: the containers are the problem, not the machine.
        (WAKEABLE, NodeFacts(serving=False, ssh_error="refused"), [Action.RESTART_CONTAINERS], None, "engine answers"),
        (NATIVE, NodeFacts(serving=False), [Action.WAKE, Action.WAIT_SERVING], None, "no SSH and no containers"),
        (NATIVE, NodeFacts(serving=True), [], Outcome.FLAP, "flap"),
        (
            NATIVE.model_copy(update={"wake": None}),
            NodeFacts(serving=False),
            [],
            Outcome.FAILED,
            "no wake settings; it needs hands",
        ),
        # Containers to start: the engine ladder, whatever the SSH settings.
        (CONTAINED, NodeFacts(serving=False), [Action.RESTART_CONTAINERS], None, "engine answers"),
        # The restart was tried in this run and failed: the wake action is the next rung.
        (
            WAKEABLE,
            NodeFacts(serving=False, docker_error="refused", restart_failed="restart docker failed: exit 1"),
            [Action.WAKE, Action.WAIT_DOCKER, Action.RESTART_CONTAINERS],
            None,
            "^the engine restart failed \\(restart docker failed: exit 1\\): wake the machine$",
        ),
        (
            WINDOWS,
            NodeFacts(serving=False, docker_error="refused", restart_failed="wait for docker failed: still failing"),
            [Action.WAKE, Action.WAIT_DOCKER, Action.RESTART_CONTAINERS],
            None,
            "wake the machine \\(the sign-in starts Docker Desktop\\)",
        ),
        (
            PLAIN,
            NodeFacts(serving=False, docker_error="refused", restart_failed="exit 1"),
            [],
            Outcome.FAILED,
            "engine restart failed \\(exit 1\\) and the node has no wake settings; it needs hands",
        ),
        # The engine came up late after all: its containers, no wake.
        (
            WAKEABLE,
            NodeFacts(serving=False, restart_failed="exit 1"),
            [Action.RESTART_CONTAINERS],
            None,
            "engine answers",
        ),
        # SSH died too: the full wake ladder, SSH waited for.
        (
            WAKEABLE,
            NodeFacts(serving=False, docker_error="x", ssh_error="timed out", restart_failed="exit 1"),
            [Action.WAKE, Action.WAIT_SSH, Action.WAIT_DOCKER, Action.RESTART_CONTAINERS],
            None,
            "SSH is dead",
        ),
    ],
    ids=[
        "flap",
        "containers",
        "engine",
        "dead-no-wake",
        "dead-wake",
        "sshd-only",
        "native",
        "native-flap",
        "native-no-wake",
        "contained-no-ssh",
        "restart-failed-wake",
        "restart-failed-windows",
        "restart-failed-no-wake",
        "restart-failed-engine-late",
        "restart-failed-ssh-dead",
    ],
)
def test_ladder(node: Node, facts: NodeFacts, steps: list[Action], outcome: Outcome | None, why: str) -> None:
    plan = plan_recovery(node, facts)
    assert plan.steps == steps
    assert plan.outcome is outcome
    assert re.search(why, plan.why)


def test_non_idempotent_flags() -> None:
    assert {Action.RESTART_DOCKER, Action.WAKE} == NON_IDEMPOTENT


def test_cooldown() -> None:
    policy = RecoveryPolicy(cooldown_s=600)
    now = datetime(2026, 1, 1, 12, tzinfo=UTC)
    assert cooldown_left_s(None, policy, now) == 0
    assert cooldown_left_s(now - timedelta(seconds=100), policy, now) == 500
    assert cooldown_left_s(now - timedelta(seconds=700), policy, now) == 0


def test_restart_command_per_os_and_override() -> None:
    assert default_restart_command(PLAIN) == "systemctl restart docker"
    windows = default_restart_command(WINDOWS)
    # Docker Desktop is started by the scheduled task, in the desktop session, never from SSH's own.
    assert "Stop-Process -Name 'Docker Desktop','com.docker.backend'" in windows
    assert windows.endswith('schtasks /Run /TN homelab-docker-desktop; exit $LASTEXITCODE"')
    assert "Start-Process" not in windows
    assert (
        default_restart_command(PLAIN, RecoveryPolicy(restart_command="service docker restart"))
        == "service docker restart"
    )


def test_restart_command_precedence() -> None:
    """The run's override, then the node's docker.restart_command, then the OS default."""
    own = WINDOWS.model_copy(update={"docker": DockerSettings(restart_command="schtasks /Run /TN my-docker")})
    assert default_restart_command(own) == "schtasks /Run /TN my-docker"
    assert default_restart_command(own, RecoveryPolicy(restart_command="echo once")) == "echo once"
    assert default_restart_command(WINDOWS.model_copy(update={"docker": DockerSettings()})) == default_restart_command(
        WINDOWS
    )


def test_incident_time_to_recover_and_markdown() -> None:
    start = datetime(2026, 1, 1, 12, tzinfo=UTC)
    action = ActionRecord(action="restart docker", at=start, seconds=1.5, ok=True, detail="exit 0 | fine")
    recovered = Incident(
        node="gpu2",
        started_at=start,
        finished_at=start + timedelta(seconds=42),
        outcome=Outcome.RECOVERED,
        reason="serves again",
        attempts=1,
        actions=[action],
    )
    assert recovered.time_to_recover_s == 42
    text = recovered.markdown()
    assert "# Node gpu2: RECOVERED" in text and "42.0 s" in text and "exit 0 \\| fine" in text
    failed = recovered.model_copy(update={"outcome": Outcome.FAILED})
    assert failed.time_to_recover_s is None


def test_policy_bounds() -> None:
    with pytest.raises(ValueError):
        RecoveryPolicy(max_attempts=0)
    with pytest.raises(ValueError):
        RecoveryPolicy(wait_ssh_s=0)
