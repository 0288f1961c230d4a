"""prefect.yaml's recover-node trigger on a real Prefect server: a sweep that finds a node down starts a recovery run.

The deployment is created by `prefect deploy` from the repository's own prefect.yaml (only the
cluster file path is changed), the health-sweep flow runs in another process and emits its real
`homelab.node.down` event, and Prefect's automation creates the recover-node run with the node's
name as its parameter. No worker runs here, so the run stays scheduled: what is checked is
that Prefect, not a loop of ours, decided to recover that node.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.fixtures.net import LOOPBACK, free_port
from tests.fixtures.prefect_server import PrefectServer

REPO = Path(__file__).resolve().parents[1]
WAIT_FOR_RUN_S = 90.0


def _prefect(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "prefect", "--no-prompt", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def _deploy_recover_node(env: dict[str, str], tmp_path: Path, cluster: Path) -> None:
    config = yaml.safe_load((REPO / "prefect.yaml").read_text())
    config["deployments"] = [d for d in config["deployments"] if d["name"] == "recover-node"]
    config["deployments"][0]["parameters"]["inventory"] = str(cluster)
    prefect_file = tmp_path / "prefect.yaml"
    prefect_file.write_text(yaml.safe_dump(config, sort_keys=False))
    _prefect(env, "work-pool", "create", "homelab", "--type", "process", "--overwrite")
    _prefect(env, "deploy", "--prefect-file", str(prefect_file), "--name", "recover-node")


def _runs(api: str, deployment_id: str) -> list[dict[str, Any]]:
    body = {"flow_runs": {"deployment_id": {"any_": [deployment_id]}}}
    answer = httpx.post(f"{api}/flow_runs/filter", json=body, timeout=10)
    answer.raise_for_status()
    runs: list[dict[str, Any]] = answer.json()
    return runs


def _events(api: str) -> list[tuple[str, str]]:
    answer = httpx.post(
        f"{api}/events/filter", json={"filter": {"event": {"prefix": ["homelab.", "prefect.automation"]}}}, timeout=10
    )
    return [(e["event"], e["resource"]["prefect.resource.id"]) for e in answer.json().get("events", [])]


def test_node_down_event_starts_recover_node(own_prefect_server: PrefectServer, tmp_path: Path) -> None:
    env = {**os.environ, **own_prefect_server.env}
    cluster = tmp_path / "cluster.yaml"
    cluster.write_text(
        yaml.safe_dump(
            {
                "nodes": [
                    {
                        "name": "deadbox",
                        "tier": "gpu",
                        "host": LOOPBACK,
                        "endpoints": [{"name": "llm", "kind": "llamacpp", "url": f"http://{LOOPBACK}:{free_port()}"}],
                    }
                ],
                "history": {"url": "sqlite:///history.db"},
            }
        )
    )
    _deploy_recover_node(env, tmp_path, cluster)
    deployment = httpx.get(
        f"{own_prefect_server.api_url}/deployments/name/recover-node/recover-node", timeout=10
    ).json()
    automations = httpx.post(f"{own_prefect_server.api_url}/automations/filter", json={}, timeout=10).json()
    assert [a["name"] for a in automations] == ["recover-node-on-node-down"]
    assert automations[0]["trigger"]["expect"] == ["homelab.node.down"]

    sweep = (
        "import asyncio; from flows.health_sweep import health_sweep; "
        f"asyncio.run(health_sweep(inventory={str(cluster)!r}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", sweep], cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]

    deadline = time.monotonic() + WAIT_FOR_RUN_S
    runs: list[dict[str, Any]] = []
    while time.monotonic() < deadline and not runs:
        runs = _runs(own_prefect_server.api_url, deployment["id"])
        time.sleep(1)
    assert len(runs) == 1, (
        f"no recover-node run; events seen: {_events(own_prefect_server.api_url)}\n"
        + (own_prefect_server.home / "server.log").read_text()[-4000:]
    )
    assert runs[0]["parameters"]["node"] == "deadbox"
    assert runs[0]["parameters"]["inventory"] == str(cluster)


def test_cli_recover_reports_failed_node(own_prefect_server: PrefectServer, tmp_path: Path) -> None:
    env = {**os.environ, **own_prefect_server.env}
    cluster = tmp_path / "cluster.yaml"
    node = {
        "name": "handsneeded",
        "tier": "gpu",
        "host": LOOPBACK,
        "ssh": {"user": "root", "port": free_port(), "known_hosts": str(tmp_path / "known_hosts")},
        "docker": {"url": f"unix://{tmp_path}/none.sock"},
        "endpoints": [{"name": "llm", "kind": "llamacpp", "url": f"http://{LOOPBACK}:{free_port()}"}],
    }
    cluster.write_text(yaml.safe_dump({"nodes": [node], "history": {"url": "sqlite:///history.db"}}))
    homelab = Path(sys.executable).parent / "homelab"
    done = subprocess.run(
        [str(homelab), "recover", "handsneeded", "-i", str(cluster)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 1, done.stderr[-2000:]
    assert "# Node handsneeded: FAILED" in done.stdout
    assert "no wake settings; it needs hands" in done.stdout
