"""`homelab up` / `homelab down` on a machine with nothing running: the real embedded Prefect server,
`prefect deploy`, a real process worker; then `down` stops exactly those processes.

The user here has no Prefect settings at all (every PREFECT_* variable removed), so the analytics
switches found in the started processes were set by `up` itself.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from homelab.errors import DeployConfigError
from homelab_app.stack import PROJECT_DIR, StackOptions, up
from homelab_app.stack.services import check_port_free, port_free
from tests.fixtures.net import LOOPBACK, free_port
from tests.stack_util import HOMELAB, api, cluster_file, homelab, user_env

NODES = ["alpha", "beta"]
OFFLINE = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_UI_SHOW_PROMOTIONAL_CONTENT": "false",
    "PREFECT_CLOUD_ENABLE_ORCHESTRATION_TELEMETRY": "false",
    "DO_NOT_TRACK": "1",
}


@dataclass
class Stack:
    workdir: Path
    env: dict[str, str]
    status: dict[str, Any]

    @property
    def api_url(self) -> str:
        return str(self.status["api_url"])


def _up(workdir: Path, env: dict[str, str], port: int) -> dict[str, Any]:
    done = homelab("up", "--port", str(port), "--json", env=env, cwd=workdir)
    assert done.returncode == 0, done.stderr[-4000:]
    status: dict[str, Any] = json.loads(done.stdout)
    return status


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """`homelab up` in a fresh working directory holding a two-node cluster file."""
    workdir = tmp_path_factory.mktemp("stack")
    cluster_file(workdir, NODES)
    env = user_env(workdir / "user-prefect-home")
    try:
        yield Stack(workdir, env, _up(workdir, env, free_port()))
    finally:
        homelab("down", env=env, cwd=workdir)


def _running(pid: int) -> bool:
    # Orphans are reaped by init a moment later; a zombie has stopped.
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def _environ(pid: int) -> dict[str, str]:
    return dict(psutil.Process(pid).environ())


def test_up_serves_ui_and_api_on_loopback(stack: Stack) -> None:
    assert stack.status["embedded"] is True
    assert stack.status["started"] == ["server", "worker"]
    page = httpx.get(stack.status["ui_url"], timeout=10)
    assert page.status_code == 200 and "<!DOCTYPE html>" in page.text[:200]
    assert api(stack.api_url, "health") is True
    server = psutil.Process(stack.status["server"]["pid"])
    listening = [c.laddr for c in server.net_connections("tcp") if c.status == psutil.CONN_LISTEN]
    assert listening and all(addr.ip == LOOPBACK for addr in listening)
    assert (stack.workdir / ".homelab" / "prefect" / "prefect.db").is_file()


def test_started_processes_send_nothing_off_the_machine(stack: Stack) -> None:
    for role in ("server", "worker"):
        env = _environ(stack.status[role]["pid"])
        assert {k: env.get(k) for k in OFFLINE} == OFFLINE, role


def test_deployments_scheduled_and_recovery_per_node(stack: Stack) -> None:
    deployments = {d["name"]: d for d in api(stack.api_url, "deployments/filter", {})}
    expected = {"health-sweep", "sample-vram", "daily-report", "rollout", *(f"recover-node-{n}" for n in NODES)}
    assert set(deployments) == expected
    schedules = {name: [s["schedule"] for s in d["schedules"]] for name, d in deployments.items()}
    assert [(s["interval"], s["timezone"]) for s in schedules["health-sweep"]] == [(300.0, "UTC")]
    assert schedules["sample-vram"][0]["interval"] == 60.0
    assert schedules["daily-report"][0]["cron"] == "15 6 * * *"
    assert schedules["rollout"] == []
    inventory = str((stack.workdir / "cluster.yaml").resolve())
    for node in NODES:
        recover = deployments[f"recover-node-{node}"]
        assert recover["work_queue_name"] == f"node-{node}"
        assert recover["parameters"]["node"] == node
        assert recover["parameters"]["inventory"] == inventory
        # The worker finds the flows in this checkout.
        [step] = recover["pull_steps"]
        assert step["prefect.deployments.steps.set_working_directory"]["directory"] == str(PROJECT_DIR)
    automations = {a["name"]: a for a in api(stack.api_url, "automations/filter", {})}
    assert set(automations) == {f"recover-node-{n}-on-node-down" for n in NODES}
    assert automations["recover-node-alpha-on-node-down"]["trigger"]["match"] == {
        "prefect.resource.id": "homelab.node.alpha"
    }


def test_up_reports_each_deployment_its_flow_queue_and_schedule(stack: Stack) -> None:
    """What `homelab up` shows after deploying, read back through Prefect's client."""
    reported = {d["name"]: d for d in stack.status["deployments"]}
    assert set(reported) == {
        "health-sweep",
        "sample-vram",
        "daily-report",
        "rollout",
        *(f"recover-node-{n}" for n in NODES),
    }
    assert reported["health-sweep"]["schedules"] == ["every 300 s"]
    assert reported["daily-report"]["schedules"] == ["cron 15 6 * * * (UTC)"]
    assert reported["rollout"]["schedules"] == []
    for node in NODES:
        recover = reported[f"recover-node-{node}"]
        assert (recover["flow"], recover["work_queue"], recover["paused"]) == ("recover-node", f"node-{node}", False)


def test_worker_is_online(stack: Stack) -> None:
    workers = api(stack.api_url, "work_pools/homelab/workers/filter", {})
    assert [w["status"] for w in workers] == ["ONLINE"]
    assert psutil.Process(stack.status["worker"]["pid"]).is_running()


def test_up_again_reuses_server_and_worker(stack: Stack) -> None:
    port = int(stack.api_url.rsplit(":", 1)[1].split("/")[0])
    again = _up(stack.workdir, stack.env, port)
    assert again["started"] == [] and again["reused"] == ["server", "worker"]
    assert again["server"]["pid"] == stack.status["server"]["pid"]
    assert again["worker"]["pid"] == stack.status["worker"]["pid"]
    assert len(api(stack.api_url, "work_pools/homelab/workers/filter", {})) == 1


def test_down_stops_what_up_started_and_nothing_else(stack: Stack) -> None:
    bystander = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True, stdin=subprocess.DEVNULL
    )
    try:
        done = homelab("down", env=stack.env, cwd=stack.workdir, timeout_s=120)
        assert done.returncode == 0, done.stderr
        server, worker = stack.status["server"]["pid"], stack.status["worker"]["pid"]
        assert f"stopped worker (pid {worker})" in done.stdout
        assert f"stopped server (pid {server})" in done.stdout
        assert not _running(server) and not _running(worker)
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{stack.api_url}/health", timeout=5)
        assert bystander.poll() is None
        assert "nothing to stop" in homelab("down", env=stack.env, cwd=stack.workdir, timeout_s=60).stdout
    finally:
        bystander.kill()
        bystander.wait()


def test_port_in_use_is_named(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind((LOOPBACK, 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = homelab("up", "--port", str(port), env=user_env(tmp_path / "home"), cwd=tmp_path, timeout_s=120)
    assert done.returncode == 1
    assert f"port {port} on 127.0.0.1 is in use by another program; choose another with --port" in done.stderr
    assert not (tmp_path / ".homelab" / "stack.json").exists()


def test_a_port_whose_server_just_stopped_is_free_again() -> None:
    """The server's side of a connection it closed waits in TIME_WAIT for a minute: that blocks a
    plain bind, but not the next server's (uvicorn binds with SO_REUSEADDR), so it is no reason
    to refuse the port when a demo or `up` runs again at once."""
    listener = socket.create_server((LOOPBACK, 0))
    port = listener.getsockname()[1]
    client = socket.create_connection((LOOPBACK, port))
    conn, _ = listener.accept()
    conn.close()  # the server closes first, as uvicorn does after an answer
    client.close()
    listener.close()
    assert port_free(port)
    check_port_free(port)


def _server_on(port: int) -> psutil.Process | None:
    """The `prefect server start` process on `port` (the port is this test's own, so the process is too)."""
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = proc.info["cmdline"] or []
        if "server" in cmdline and "start" in cmdline and str(port) in cmdline:
            return proc
    return None


def test_up_killed_while_its_server_starts_has_recorded_it_for_down(tmp_path: Path) -> None:
    port = free_port()
    env = user_env(tmp_path / "home")
    up_proc = subprocess.Popen(
        [str(HOMELAB), "up", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    server = None
    try:
        deadline = time.monotonic() + 120
        while (server := _server_on(port)) is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert server is not None, "homelab up did not start a server within 120 s"
        time.sleep(1.0)  # spawned and exec'd; a fresh server needs far longer than this to serve
        up_proc.kill()
        up_proc.wait(timeout=30)
        done = homelab("down", env=env, cwd=tmp_path, timeout_s=120)
        assert done.returncode == 0, done.stderr
        assert f"stopped server (pid {server.pid})" in done.stdout
        assert not _running(server.pid)
    finally:
        up_proc.kill()
        up_proc.wait(timeout=30)
        if server is not None and _running(server.pid):
            os.killpg(server.pid, signal.SIGKILL)  # the server leads a session of its own (spawn)


def test_server_that_exits_at_start_shows_its_log(tmp_path: Path) -> None:
    env = user_env(
        tmp_path / "home", PREFECT_SERVER_DATABASE_CONNECTION_URL=f"sqlite+aiosqlite:///{tmp_path}/no/such/dir/x.db"
    )
    done = homelab("up", "--port", str(free_port()), env=env, cwd=tmp_path, timeout_s=300)
    assert done.returncode == 1
    assert "the Prefect server exited while starting" in done.stderr
    assert "unable to open database file" in done.stderr


def test_broken_prefect_yaml_fails_before_anything_starts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = tmp_path / "checkout"
    project.mkdir()
    (project / "prefect.yaml").write_text("deployments:\n  - name: health-sweep\n    entrypoint: [\n")
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    with pytest.raises(DeployConfigError, match=r"prefect.yaml:\d+: YAML syntax error"):
        up(StackOptions(workdir=tmp_path, project_dir=project, port=free_port()))
    assert not (tmp_path / ".homelab" / "stack.json").exists()
