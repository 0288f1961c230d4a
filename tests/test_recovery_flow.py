"""The recover-node flow on Prefect's test harness: flap, an unrecoverable node, the cooldown, one run per node.

The node here is unreachable on purpose (dead loopback ports), so the flow must climb the
ladder (engine dead, SSH dead, wake by a Wake-on-LAN packet that a loopback UDP listener
catches), give up after its bounded attempts with the reason, and not act again during the
cooldown. With a real (recording) sshd: a failed engine restart escalates to the wake at once
and is not repeated. The engine-restart path through a real sshd and dockerd is in
test_recovery_e2e.py, the Windows escalation end to end in test_recovery_windows.py.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prefect.blocks.system import Secret
from prefect.states import State

from flows.recover_node import FlowRecoveryPolicy, recover_node
from homelab.history import open_history
from homelab.recovery.plan import Incident, Outcome
from homelab.recovery.wake import magic_packet
from tests.fixtures.net import LOOPBACK, free_port
from tests.fixtures.ollama import StandInServer
from tests.recovery_sshd import RecordingSSHD, start_recording_sshd

MAC = "02:00:5e:10:00:01"
FAST = FlowRecoveryPolicy(
    max_attempts=2, cooldown_s=600, wait_ssh_s=1.0, wait_docker_s=1.0, poll_s=0.2, lock_wait_s=1.0
)


@pytest.fixture
def wol_listener() -> Iterator[tuple[int, list[bytes]]]:
    """A UDP listener on 127.0.0.1 collecting every datagram (the 'LAN' the magic packet goes to)."""
    received: list[bytes] = []
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((LOOPBACK, 0))
    sock.settimeout(0.2)
    stop = threading.Event()

    def listen() -> None:
        while not stop.is_set():
            try:
                received.append(sock.recvfrom(2048)[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    try:
        yield sock.getsockname()[1], received
    finally:
        stop.set()
        thread.join()
        sock.close()


def _cluster(tmp_path: Path, node: dict[str, Any]) -> Path:
    path = tmp_path / "cluster.yaml"
    data = {"name": "recovery-test", "nodes": [node], "history": {"url": "sqlite:///history.db"}}
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _dead_node(name: str, tmp_path: Path, wake: dict[str, Any] | None = None) -> dict[str, Any]:
    node: dict[str, Any] = {
        "name": name,
        "tier": "gpu",
        "host": LOOPBACK,
        "ssh": {"user": "root", "port": free_port(), "known_hosts": str(tmp_path / "known_hosts")},
        "docker": {"url": f"unix://{tmp_path}/no-docker.sock"},
        "endpoints": [{"name": "llm", "kind": "llamacpp", "url": f"http://{LOOPBACK}:{free_port()}"}],
    }
    if wake:
        node["wake"] = wake
    return node


def _run(path: Path, node: str, policy: FlowRecoveryPolicy = FAST) -> tuple[State[Any], Incident]:
    state = recover_node(node=node, inventory=str(path), policy=policy, return_state=True)
    incident = state.result(raise_on_failure=False)
    assert isinstance(incident, Incident), incident
    return state, incident


def test_unrecoverable_node_fails_bounded_then_cools_down(
    prefect_harness: None, tmp_path: Path, wol_listener: tuple[int, list[bytes]]
) -> None:
    port, received = wol_listener
    path = _cluster(tmp_path, _dead_node("deadbox", tmp_path, {"mac": MAC, "broadcast": LOOPBACK, "port": port}))
    state, incident = _run(path, "deadbox")
    assert state.is_failed()
    assert incident.outcome is Outcome.FAILED
    assert incident.attempts == 2
    assert incident.reason.startswith("not recovered after 2 attempts: wait for ssh failed: still failing after 1 s")
    assert "deadbox" in (state.message or "")
    # One wake per attempt, never retried, and the packet is the real thing.
    assert [a.action for a in incident.actions].count("wake") == 2
    assert received == [magic_packet(MAC)] * 2
    assert not any(a.action == "restart docker" for a in incident.actions)

    # The next down event (the sweep repeats it) finds the node cooling down: nothing is done.
    again, skipped = _run(path, "deadbox")
    assert again.is_completed()
    assert skipped.outcome is Outcome.SKIPPED and "cooling down" in skipped.reason
    assert skipped.actions == [] and len(received) == 2

    with open_history("sqlite:///history.db", relative_to=tmp_path) as history, history.engine.connect() as conn:
        rows = conn.exec_driver_sql("select node, closed_at, summary from incidents").all()
        actions = conn.exec_driver_sql("select action, outcome from incident_actions").all()
    assert rows == [("deadbox", None, incident.outcome.value + ": " + incident.reason)]
    assert ("wake", "ok") in actions and ("outcome", "FAILED") in actions


def test_no_wake_settings_fails_at_once(prefect_harness: None, tmp_path: Path) -> None:
    path = _cluster(tmp_path, _dead_node("handsneeded", tmp_path))
    state, incident = _run(path, "handsneeded")
    assert state.is_failed() and incident.outcome is Outcome.FAILED
    assert "no wake settings; it needs hands" in incident.reason
    assert incident.attempts == 1


def test_flap_is_recorded_and_nothing_done(
    prefect_harness: None, tmp_path: Path, ollama_standin: StandInServer
) -> None:
    node = _dead_node("flappy", tmp_path)
    node["endpoints"] = [{"name": "ollama", "kind": "ollama", "url": ollama_standin.url}]
    state, incident = _run(_cluster(tmp_path, node), "flappy")
    assert state.is_completed()
    assert incident.outcome is Outcome.FLAP
    assert [a.action for a in incident.actions] == ["probe"]


def test_unknown_node(prefect_harness: None, tmp_path: Path) -> None:
    path = _cluster(tmp_path, _dead_node("known", tmp_path))
    state = recover_node(node="other", inventory=str(path), policy=FAST, return_state=True)
    assert state.is_failed() and "not in" in (state.message or "")


def test_two_down_events_at_once_make_one_recovery(
    prefect_harness: None, tmp_path: Path, wol_listener: tuple[int, list[bytes]]
) -> None:
    port, received = wol_listener
    path = _cluster(tmp_path, _dead_node("twice", tmp_path, {"mac": MAC, "broadcast": LOOPBACK, "port": port}))
    slow = FAST.model_copy(update={"max_attempts": 1, "wait_ssh_s": 4.0})
    results: list[Incident] = []

    def one() -> None:
        results.append(_run(path, "twice", slow)[1])

    threads = [threading.Thread(target=one) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    outcomes = sorted(i.outcome for i in results)
    assert outcomes == [Outcome.FAILED, Outcome.SKIPPED]
    skipped = next(i for i in results if i.outcome is Outcome.SKIPPED)
    assert skipped.reason in {"another recovery of this node is running"} or "cooling down" in skipped.reason
    assert len(received) == 1


@pytest.fixture
def recording_sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RecordingSSHD]:
    server = start_recording_sshd(tmp_path_factory.mktemp("flow-sshd"), "unused-sudo-password")
    try:
        yield server
    finally:
        server.stop()


def _engine_dead_node(name: str, tmp_path: Path, sshd: RecordingSSHD, wake: dict[str, Any] | None) -> dict[str, Any]:
    """SSH answers (the recording sshd, key from a Prefect Secret block), the engine does not."""
    Secret(value=sshd.client_key.read_text()).save(f"{name}-key", overwrite=True)
    node = _dead_node(name, tmp_path, wake)
    node["ssh"] = {"user": sshd.user, "port": sshd.port, "known_hosts": str(sshd.known_hosts), "key_secret": "key"}
    return node


def _with_key(path: Path, name: str) -> Path:
    data = yaml.safe_load(path.read_text())
    data["secrets"] = {"key": {"block": f"{name}-key"}}
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_failed_restart_without_wake_settings_needs_hands(
    prefect_harness: None, tmp_path: Path, recording_sshd: RecordingSSHD
) -> None:
    # No sudo password in the file: `sudo -n` refuses, so the engine restart fails.
    path = _with_key(_cluster(tmp_path, _engine_dead_node("nowake", tmp_path, recording_sshd, None)), "nowake")
    state, incident = _run(path, "nowake")
    assert state.is_failed() and incident.attempts == 1
    assert incident.reason.startswith("the engine restart failed (restart docker failed: ")
    assert incident.reason.endswith("and the node has no wake settings; it needs hands")
    assert [a.action for a in incident.actions] == ["probe", "check docker", "check ssh", "restart docker"]
    assert recording_sshd.commands_log.read_text().count("systemctl restart docker") == 1


def test_failed_restart_is_not_repeated_and_a_failing_wake_says_why(
    prefect_harness: None, tmp_path: Path, recording_sshd: RecordingSSHD
) -> None:
    refused = tmp_path / "rdp-refused"
    refused.write_text("#!/bin/sh\necho 'ERROR: connection refused' >&2\nexit 131\n")
    refused.chmod(0o755)
    wake = {"command": str(refused), "detach": True}
    path = _with_key(_cluster(tmp_path, _engine_dead_node("winbox", tmp_path, recording_sshd, wake)), "winbox")
    state, incident = _run(path, "winbox")
    assert state.is_failed() and incident.attempts == 2
    # Round 1: restart, escalate to the wake at once; round 2 starts from the wake (the failed
    # restart is a fact of the run).
    assert [a.action for a in incident.actions] == [
        "probe",
        "check docker",
        "check ssh",
        "restart docker",
        "wake",
        "probe",
        "check docker",
        "check ssh",
        "wake",
    ]
    assert recording_sshd.commands_log.read_text().count("systemctl restart docker") == 1
    assert incident.reason.startswith("not recovered after 2 attempts: wake failed: ")
    assert incident.reason.endswith(f"wake command {refused} exited 131 within 2 s: ERROR: connection refused")
