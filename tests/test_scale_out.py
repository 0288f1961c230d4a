"""Scale-out on loopback: a Prefect server on PostgreSQL, and a worker per node, each running its own node's recovery.

The shape of docs/scale-out.md, with 127.0.0.1 for every machine: the server is `prefect server
start` on a real PostgreSQL; the main machine runs `homelab up -i cluster.yaml --queue default`
against it (PREFECT_API_URL set, so no server of its own: blocks, deployments, a worker for the
scheduled flows); each node runs `homelab up --worker-only --queue node-NODE`. A real health
sweep finds both nodes down, Prefect's per-node automations start one recovery deployment per
node, and each run must be executed by that node's worker: its work queue, the worker label
Prefect puts on the run, the run id in that worker's log (and not the other's), and the
`recover-node-NODE` artifact the run itself wrote.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

from tests.fixtures.postgres import PostgresServer
from tests.fixtures.prefect_server import running_prefect_server
from tests.stack_util import api, cluster_file, homelab, user_env

NODES = ["alpha", "beta"]
FINAL = {"COMPLETED", "FAILED", "CRASHED"}
# A sweep run, the automation, then each recovery run in a fresh process on two busy cores.
RECOVERY_WAIT_S = 300.0


def _up(*args: str, env: dict[str, str], cwd: Path) -> dict[str, Any]:
    done = homelab("up", *args, "--json", env=env, cwd=cwd)
    assert done.returncode == 0, done.stderr[-4000:]
    status: dict[str, Any] = json.loads(done.stdout)
    return status


def _recovery_runs(api_url: str, deployment_ids: dict[str, str]) -> dict[str, list[dict[str, Any]]]:
    runs = api(api_url, "flow_runs/filter", {"flow_runs": {"deployment_id": {"any_": list(deployment_ids.values())}}})
    by_node: dict[str, list[dict[str, Any]]] = {node: [] for node in deployment_ids}
    for run in runs:
        node = next(n for n, d in deployment_ids.items() if d == run["deployment_id"])
        by_node[node].append(run)
    return by_node


def _wait_for(check: Callable[[], bool], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not check():
        time.sleep(2)


def test_each_node_worker_runs_its_own_nodes_recovery(
    postgres_server: PostgresServer, postgres_url: Callable[[str], str], tmp_path: Path
) -> None:
    database = postgres_url("prefect_scale_out").replace("+psycopg", "+asyncpg")
    (tmp_path / "server").mkdir()
    with running_prefect_server(tmp_path / "server", {"PREFECT_SERVER_DATABASE_CONNECTION_URL": database}) as server:
        env = user_env(tmp_path / "prefect-home", PREFECT_API_URL=server.api_url)
        cluster_file(tmp_path, NODES)
        state_dirs = {"main": tmp_path / "main", **{n: tmp_path / f"node-{n}" for n in NODES}}
        try:
            main = _up(
                "-i",
                "cluster.yaml",
                "--queue",
                "default",
                "--state-dir",
                str(state_dirs["main"]),
                env=env,
                cwd=tmp_path,
            )
            assert main["embedded"] is False and main["server"] is None and main["started"] == ["worker"]
            workers = {
                node: _up(
                    "--worker-only",
                    "--queue",
                    f"node-{node}",
                    "--worker-name",
                    f"worker-{node}",
                    "--state-dir",
                    str(state_dirs[node]),
                    env=env,
                    cwd=tmp_path,
                )["worker"]
                for node in NODES
            }
            _check_on_postgres(postgres_server)
            _run_and_check_recoveries(server.api_url, workers)
        finally:
            for state_dir in state_dirs.values():
                homelab("down", "--state-dir", str(state_dir), env=env, cwd=tmp_path, timeout_s=120)


def _check_on_postgres(pg: PostgresServer) -> None:
    """The deployments `up` made live in PostgreSQL, not in some SQLite file."""
    with psycopg.connect(host=pg.host, port=pg.port, user=pg.user, dbname="prefect_scale_out") as conn:
        names = {row[0] for row in conn.execute("SELECT name FROM deployment")}
        queues = {row[0] for row in conn.execute("SELECT name FROM work_queue")}
    assert {f"recover-node-{n}" for n in NODES} <= names and "health-sweep" in names
    assert {f"node-{n}" for n in NODES} <= queues


def _run_and_check_recoveries(api_url: str, workers: dict[str, dict[str, Any]]) -> None:
    deployments = {d["name"]: d["id"] for d in api(api_url, "deployments/filter", {})}
    recover_ids = {node: deployments[f"recover-node-{node}"] for node in NODES}
    sweep = api(api_url, f"deployments/{deployments['health-sweep']}/create_flow_run", {})

    def each_node_recovered() -> bool:
        runs = _recovery_runs(api_url, recover_ids)
        return all(any(r["state_type"] in FINAL for r in runs[n]) for n in NODES)

    _wait_for(each_node_recovered, RECOVERY_WAIT_S)
    sweep_run = api(api_url, f"flow_runs/{sweep['id']}")
    runs = _recovery_runs(api_url, recover_ids)
    assert all(runs.values()), (
        f"recoveries per node: { {n: len(r) for n, r in runs.items()} }; sweep {sweep_run['state_type']}"
    )
    logs = {node: Path(workers[node]["log"]).read_text() for node in NODES}
    for node, node_runs in runs.items():
        other = next(n for n in NODES if n != node)
        done = [r for r in node_runs if r["state_type"] in FINAL]
        assert done, f"no finished recovery of {node}: {[r['state_type'] for r in node_runs]}"
        for run in done:
            assert run["work_queue_name"] == f"node-{node}"
            assert run["labels"]["prefect.worker.name"] == f"worker-{node}"
            assert run["parameters"]["node"] == node
            assert run["id"] in logs[node] and run["id"] not in logs[other]
        first = min(done, key=lambda r: r["start_time"])
        assert first["state"]["message"].startswith(f"node {node}: "), first["state"]
        artifacts = api(api_url, "artifacts/filter", {"artifacts": {"flow_run_id": {"any_": [first["id"]]}}})
        assert [a["key"] for a in artifacts] == [f"recover-node-{node}"]
