"""`homelab demo` end to end: the README's main command, run as a user runs it, again and again, then stopped.

The real thing in a temporary folder: llama-servers, the Ollama stand-in, the LiteLLM proxy
(when the gateway extra is installed), an embedded Prefect server and a worker. It runs three
times in the same folder on the same port, as a user runs it again: after `homelab demo
--stop`, and after a run killed (SIGKILL) while its recovery was under way; each must exit 0
with a recovery of its own. What the user is promised is then checked on the last run against
the services themselves, not only against what the command printed: the cluster file
validates, the sweep stored DEGRADED with exactly the nas endpoint down, Prefect's API says
the recovery run was created by the automation and ended RECOVERED, the woken server answers,
the route skipped the down expert, the plan placed the declared GPU's lineup, the report
published its artifacts, the master key is nowhere it must not be; then `homelab demo --stop`
leaves no process behind.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from homelab.health.probe import EndpointState
from homelab.health.sweep import Prognosis
from homelab.inventory import load_inventory
from tests.fixtures.net import free_port

pytestmark = [pytest.mark.llama]

HOMELAB = Path(sys.executable).with_name("homelab")
DEMO_TIMEOUT_S = 480


def _mentioning(needle: str) -> list[int]:
    """Pids of processes whose command line, environment or working directory mentions `needle`."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            text = (
                (proc / "cmdline").read_bytes() + (proc / "environ").read_bytes() + os.readlink(proc / "cwd").encode()
            )
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if needle.encode() in text and state != "Z":
            found.append(int(proc.name))
    return found


@dataclass
class DemoRun:
    """One `homelab demo --json`: when it started, how long it took, what it printed."""

    started: datetime
    wall_s: float
    summary: dict[str, Any]
    progress: str


def _demo_argv(folder: Path, port: int) -> list[str]:
    return [str(HOMELAB), "demo", "--dir", str(folder), "--port", str(port), "--json"]


def _run_demo(folder: Path, port: int, env: dict[str, str]) -> DemoRun:
    started, begun = datetime.now(UTC), time.monotonic()
    done = subprocess.run(
        _demo_argv(folder, port), env=env, capture_output=True, text=True, timeout=DEMO_TIMEOUT_S, check=False
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return DemoRun(started, time.monotonic() - begun, json.loads(done.stdout), done.stderr)


def _kill_demo_when(folder: Path, port: int, env: dict[str, str], progress: str) -> None:
    """Start the demo and SIGKILL it (no chance to clean up) once its progress shows `progress`."""
    stderr = folder.parent / "killed-demo.stderr"
    with stderr.open("w") as sink:
        demo = subprocess.Popen(
            _demo_argv(folder, port), env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=sink
        )
    try:
        deadline = time.monotonic() + DEMO_TIMEOUT_S
        while progress not in stderr.read_text() and demo.poll() is None and time.monotonic() < deadline:
            time.sleep(0.5)
        assert demo.poll() is None, f"the demo ended before {progress!r}: {stderr.read_text()[-4000:]}"
        assert progress in stderr.read_text(), f"no {progress!r} within {DEMO_TIMEOUT_S} s"
    finally:
        demo.send_signal(signal.SIGKILL)
        demo.wait(timeout=30)


def _stop(folder: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(HOMELAB), "demo", "--stop", "--dir", str(folder)], env=env, capture_output=True, text=True, timeout=120
    )


@pytest.fixture(scope="module")
def demos(llama_server_bin: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, list[DemoRun]]]:
    """Three demos in one folder on one port: the first, one after `--stop`, one after a killed run."""
    folder = tmp_path_factory.mktemp("demo") / "state"
    env = {**os.environ, "LLAMA_SERVER": str(llama_server_bin)}
    env.pop("PREFECT_API_URL", None)
    port = free_port()
    runs: list[DemoRun] = []
    try:
        runs.append(_run_demo(folder, port, env))
        assert _stop(folder, env).returncode == 0
        runs.append(_run_demo(folder, port, env))
        # Killed while its recovery runs: a worker mid-flow-run, a cooldown and a concurrency slot about to be set.
        _kill_demo_when(folder, port, env, "recovery: waiting for the run")
        runs.append(_run_demo(folder, port, env))
        print("demo wall times (s): " + ", ".join(f"{r.wall_s:.1f}" for r in runs))
        yield folder, runs
    finally:
        _stop(folder, env)


@pytest.fixture(scope="module")
def demo(demos: tuple[Path, list[DemoRun]]) -> tuple[Path, dict[str, Any], str]:
    """The last of the three demos: its folder, its summary and its progress output."""
    folder, runs = demos
    return folder, runs[-1].summary, runs[-1].progress


def test_three_demos_in_a_row_each_recover_their_own_node(demos: tuple[Path, list[DemoRun]]) -> None:
    _, runs = demos
    assert len(runs) == 3
    for run in runs:
        recovery = run.summary["recovery"]["flow_run"]
        assert recovery["created_by"] == "AUTOMATION"
        assert recovery["state_type"] == "COMPLETED" and "RECOVERED" in recovery["message"]
        assert datetime.fromisoformat(recovery["created"]) >= run.started
        assert run.summary["sweep"]["prognosis"] == Prognosis.DEGRADED
    assert len({r.summary["recovery"]["flow_run"]["id"] for r in runs}) == 3
    assert "stopped the previous demo's" in runs[2].progress  # what the killed run left, stopped first
    assert {r.summary["api_url"] for r in runs} == {runs[0].summary["api_url"]}  # the port came back every time


def test_cluster_file_validates_and_names_the_stand_in(demo: tuple[Path, dict[str, Any], str]) -> None:
    _, summary, _ = demo
    inv = load_inventory(Path(summary["inventory"]))
    assert [n.name for n in inv.nodes] == ["desk", "gpu-box", "nas"]
    assert inv.tiers() == ["primary", "secondary", "nas"]
    assert inv.nodes[1].gpus and inv.experts
    assert "It is not Ollama" in Path(summary["inventory"]).read_text()
    done = subprocess.run([str(HOMELAB), "validate", summary["inventory"]], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr


def test_sweep_is_degraded_with_the_one_endpoint_down(demo: tuple[Path, dict[str, Any], str]) -> None:
    _, summary, progress = demo
    sweep = summary["sweep"]
    assert sweep["prognosis"] == Prognosis.DEGRADED
    assert sweep["flow_run"]["state_type"] == "COMPLETED"
    down = [(e["node"], e["endpoint"]) for e in sweep["endpoints"] if e["state"] == EndpointState.DOWN]
    assert down == [("nas", "small")]
    assert any("nas/small is DOWN" in r for r in sweep["reasons"])
    assert "health-sweep" in sweep["artifact_urls"]
    assert "health sweep: DEGRADED" in progress


def test_recovery_run_was_started_by_the_event_and_recovered(demo: tuple[Path, dict[str, Any], str]) -> None:
    _, summary, _ = demo
    run_id = summary["recovery"]["flow_run"]["id"]
    # Ask Prefect itself, not the summary: who created the run, with which parameters, how it ended.
    run = httpx.get(f"{summary['api_url']}/flow_runs/{run_id}", timeout=10).json()
    assert run["created_by"]["type"] == "AUTOMATION"
    assert run["created_by"]["display_value"] == "recover-node-nas-on-node-down"
    assert run["parameters"]["node"] == "nas"
    automation = httpx.get(f"{summary['api_url']}/automations/{run['created_by']['id']}", timeout=10).json()
    assert automation["trigger"]["expect"] == ["homelab.node.down"]
    events = httpx.post(
        f"{summary['api_url']}/events/filter", json={"filter": {"event": {"name": ["homelab.node.down"]}}}, timeout=10
    ).json()["events"]
    assert {e["resource"]["prefect.resource.id"] for e in events} == {"homelab.node.nas"}
    assert run["state"]["type"] == "COMPLETED"
    assert "RECOVERED" in run["state"]["message"]
    woken = next(s for s in summary["servers"] if s["endpoint"] == "nas/small")
    assert woken["down_on_purpose"] and woken["pid"] is not None
    assert httpx.get(f"{woken['url']}/health", timeout=5).json() == {"status": "ok"}


def test_alerts_reach_the_receiver_down_then_recovered(demo: tuple[Path, dict[str, Any], str]) -> None:
    """Prefect's automations sent the nas incident through the demo's webhook block, once each, in order."""
    _, summary, progress = demo
    subjects = [m["body"]["subject"] for m in summary["alerts"]]
    assert subjects == ["homelab: node nas is down", "homelab: node nas recovered"]
    assert "time to recover" in summary["alerts"][1]["body"]["body"]
    assert all("Flow run: http://127.0.0.1:" in m["body"]["body"] for m in summary["alerts"])  # the UI's link
    assert "alert received homelab: node nas is down" in progress


def test_route_skips_the_down_expert_and_plan_places_the_lineup(demo: tuple[Path, dict[str, Any], str]) -> None:
    _, summary, _ = demo
    decision = summary["route"]["decision"]
    assert summary["route"]["command"].startswith("homelab route ")
    assert (decision["category"], decision["model"], decision["node"]) == ("fast", "quick", "desk")
    assert "skipped nas-fast: nas/small is DOWN" in decision["reason"]
    plan = summary["plan"]["plan"]
    gpus = plan["gpus"]
    assert [(g["slot"]["node"], g["slot"]["name"]) for g in gpus] == [("gpu-box", "RTX 4060 Ti")]
    # Every model of the lineup gets a place (or the CPU, with the reason), and the GPU is never over-committed.
    placed = [p["model"] for p in gpus[0]["placements"]]
    assert placed and sorted(placed + [c["model"] for c in plan["cpu_only"]]) == ["coder", "general"]
    assert all(c["reason"] for c in plan["cpu_only"])
    assert gpus[0]["used_bytes"] <= gpus[0]["slot"]["vram_bytes"] - gpus[0]["slot"]["reserve_bytes"]


def test_report_published_and_ui_serves(demo: tuple[Path, dict[str, Any], str]) -> None:
    _, summary, _ = demo
    assert summary["report"]["flow_run"]["state_type"] == "COMPLETED"
    assert "health-report" in summary["report"]["artifact_urls"]
    page = httpx.get(summary["deployments_url"], headers={"Accept": "text/html"}, timeout=10, follow_redirects=True)
    assert page.status_code == 200 and "<html" in page.text.lower()
    deployments = httpx.post(f"{summary['api_url']}/deployments/filter", json={}, timeout=10).json()
    assert {"health-sweep", "daily-report", "recover-node-nas"} <= {d["name"] for d in deployments}


def test_master_key_stays_secret(demo: tuple[Path, dict[str, Any], str]) -> None:
    folder, summary, progress = demo
    if summary["gateway_url"] is None:
        pytest.skip("the gateway extra is not installed: no LiteLLM, no master key")
    key_file = Path(summary["master_key_file"])
    assert key_file.stat().st_mode & 0o777 == 0o600
    key = key_file.read_text().strip()
    assert (
        httpx.get(
            f"{summary['gateway_url']}/v1/models", headers={"Authorization": f"Bearer {key}"}, timeout=10
        ).status_code
        == 200
    )
    assert key not in json.dumps(summary) and key not in progress
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                assert key.encode() not in (proc / "cmdline").read_bytes()
            except OSError:
                continue
    for path in [*folder.rglob("*.log"), folder / "cluster.yaml", folder / "litellm.yaml", folder / "demo.json"]:
        assert key not in path.read_text(errors="replace"), path


def test_stop_leaves_nothing_running(demo: tuple[Path, dict[str, Any], str]) -> None:
    folder, summary, _ = demo
    assert _mentioning(str(folder)), "the demo's processes should run until stopped"
    done = subprocess.run(
        [str(HOMELAB), "demo", "--stop", "--dir", str(folder)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "stopped server" in done.stdout and "stopped worker" in done.stdout
    deadline = time.monotonic() + 10
    while _mentioning(str(folder)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _mentioning(str(folder)) == []
    for server in summary["servers"]:
        with pytest.raises(httpx.ConnectError):
            httpx.get(server["url"], timeout=2)
