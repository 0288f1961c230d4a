"""The whole loop on a real Prefect server with a worker: sweep -> node.down -> Prefect starts recover-node -> green.

Nothing here calls the recovery: the deployment is made by `prefect deploy` from the
repository's prefect.yaml (cluster file, vault block and the test node's restart command set as
its parameters), a process worker serves it, and two sweeps report the killed node down twice.
Prefect's automation starts a run per event; exactly one of them acts, the other is turned away
by the per-node limit or the cooldown. A sweep afterwards is green, and the secrets are in no
argv, no remote record, no log, parameter or artifact, and not in the server's database file.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import hvac
import pytest
import yaml

from tests.fixtures.docker_engine import _Daemon
from tests.fixtures.net import stop_process
from tests.fixtures.openbao import OpenBaoServer
from tests.fixtures.prefect_server import PrefectServer
from tests.recovery_sshd import RecordingSSHD
from tests.test_recovery_e2e import (  # noqa: F401
    SUDO_PASSWORD,
    _ArgvWatch,
    _restart_script,
    _roll_out_two_models,
    node_sshd,
    victim,
)

pytestmark = [pytest.mark.docker, pytest.mark.llama]

REPO = Path(__file__).resolve().parents[1]
VAULT_BLOCK = "homelab-vault-served"
RUNS_TIMEOUT_S = 240.0


def _prefect(env: dict[str, str], *args: str) -> None:
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


def _python(env: dict[str, str], code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def _sweep(env: dict[str, str], cluster: Path) -> str:
    code = (
        "import asyncio\nfrom flows.health_sweep import health_sweep\n"
        f"print(asyncio.run(health_sweep(inventory={str(cluster)!r})).cluster.prognosis)\n"
    )
    return _python(env, code).strip().splitlines()[-1]


@contextmanager
def _worker(own_prefect_server: PrefectServer, tmp_path: Path) -> Iterator[None]:
    """A process worker on the `homelab` pool, polling every second, for the block's duration."""
    env = {**os.environ, **own_prefect_server.env, "PREFECT_WORKER_QUERY_SECONDS": "1"}
    log = (tmp_path / "worker.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "prefect", "worker", "start", "--pool", "homelab", "--type", "process"],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        yield
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        stop_process(proc, timeout_s=20)
        log.close()


def _runs(api: str, deployment_id: str) -> list[dict[str, Any]]:
    body = {"flow_runs": {"deployment_id": {"any_": [deployment_id]}}}
    runs: list[dict[str, Any]] = httpx.post(f"{api}/flow_runs/filter", json=body, timeout=10).json()
    return runs


def test_sweep_event_recovery_served_by_worker(
    own_prefect_server: PrefectServer,
    openbao: OpenBaoServer,
    victim: _Daemon,
    node_sshd: RecordingSSHD,
    tmp_path: Path,
) -> None:
    env = {**os.environ, **own_prefect_server.env}
    api = own_prefect_server.api_url
    key_text = node_sshd.client_key.read_text()
    key_marker = key_text.splitlines()[2]
    root = hvac.Client(url=openbao.url, token=openbao.root_token)
    root.secrets.kv.v2.create_or_update_secret(path="homelab/gpu2", secret={"ssh_key": key_text, "sudo": SUDO_PASSWORD})
    # The block is saved on the server by another process, the token passed through the environment.
    _python(
        {**env, "HL_TEST_TOKEN": openbao.root_token},
        "import os\nfrom pydantic import SecretStr\nfrom blocks import VaultSecrets\n"
        f"VaultSecrets(url={openbao.url!r}, token=SecretStr(os.environ['HL_TEST_TOKEN']))"
        f".save({VAULT_BLOCK!r}, overwrite=True)\n",
    )

    cluster, _ = _roll_out_two_models(tmp_path, victim, node_sshd)

    config = yaml.safe_load((REPO / "prefect.yaml").read_text())
    config["deployments"] = [d for d in config["deployments"] if d["name"] == "recover-node"]
    config["deployments"][0]["parameters"] = {
        "inventory": str(cluster),
        "vault_block": VAULT_BLOCK,
        "policy": {"restart_command": str(_restart_script(tmp_path, victim)), "wait_docker_s": 60, "poll_s": 0.5},
    }
    prefect_file = tmp_path / "prefect.yaml"
    prefect_file.write_text(yaml.safe_dump(config, sort_keys=False))
    _prefect(env, "work-pool", "create", "homelab", "--type", "process", "--overwrite")
    _prefect(env, "deploy", "--prefect-file", str(prefect_file), "--name", "recover-node")
    deployment = httpx.get(f"{api}/deployments/name/recover-node/recover-node", timeout=10).json()
    before = {r["id"] for r in _runs(api, deployment["id"])}

    marks: dict[str, datetime] = {}
    with _ArgvWatch([SUDO_PASSWORD, key_marker]) as watch, _worker(own_prefect_server, tmp_path):
        time.sleep(5)  # the worker is up and polling, as it would be in a real setup
        marks["dockerd killed"] = datetime.now(UTC)
        victim.process.send_signal(signal.SIGTERM)
        victim.process.wait(timeout=60)
        # Two sweeps, two down events for the same node: two runs, one recovery.
        assert _sweep(env, cluster) == "CRITICAL"
        marks["first sweep done (node.down emitted)"] = datetime.now(UTC)
        assert _sweep(env, cluster) == "CRITICAL"
        deadline = time.monotonic() + RUNS_TIMEOUT_S
        runs: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            runs = [r for r in _runs(api, deployment["id"]) if r["id"] not in before]
            if len(runs) >= 2 and all(r["state_type"] in {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"} for r in runs):
                break
            time.sleep(1)
        healthy = _sweep(env, cluster)
        marks["following sweep green"] = datetime.now(UTC)
    log_tail = (tmp_path / "worker.log").read_text()[-3000:]
    messages = sorted(r["state"]["message"] or "" for r in runs)
    assert len(runs) == 2, (runs, log_tail)
    assert [r["parameters"]["node"] for r in runs] == ["gpu2", "gpu2"]
    assert sum("RECOVERED" in m for m in messages) == 1, (messages, log_tail)
    assert sum("SKIPPED" in m for m in messages) == 1, messages
    assert healthy == "OPERATIONAL"

    assert watch.hits == [] and watch.samples > 10
    assert SUDO_PASSWORD not in node_sshd.recorded() and key_marker not in node_sshd.recorded()
    texts = [
        httpx.post(
            f"{api}/logs/filter", json={"logs": {"flow_run_id": {"any_": [r["id"] for r in runs]}}}, timeout=10
        ).text
    ]
    texts.append(httpx.post(f"{api}/artifacts/filter", json={}, timeout=10).text)
    texts.append(str(runs))
    for text in texts:
        assert SUDO_PASSWORD not in text and key_marker not in text
    for db_file in own_prefect_server.home.glob("prefect.db*"):
        data = db_file.read_bytes()
        assert SUDO_PASSWORD.encode() not in data and key_marker.encode() not in data, db_file
    artifact = httpx.post(
        f"{api}/artifacts/filter", json={"artifacts": {"key": {"any_": ["recover-node-gpu2"]}}}, timeout=10
    ).json()
    acting = next(r for r in runs if "RECOVERED" in (r["state"]["message"] or ""))
    marks["recover-node run created by the trigger"] = datetime.fromisoformat(acting["created"])
    marks["recover-node run started by the worker"] = datetime.fromisoformat(acting["start_time"])
    marks["recover-node run ended"] = datetime.fromisoformat(acting["end_time"])
    t0 = marks["dockerd killed"]
    total = (marks["following sweep green"] - t0).total_seconds()
    print(f"\nkilled dockerd -> following sweep green, served by a worker: {total:.1f} s")
    previous = t0
    for name, at in sorted(marks.items(), key=lambda kv: kv[1]):
        step = (at - previous).total_seconds()
        print(f"  +{(at - t0).total_seconds():6.1f} s  {name}  (step {step:.1f} s, {100 * step / total:.0f}%)")
        previous = at
    print(next(a["data"] for a in artifact if "RECOVERED" in a["data"]))
