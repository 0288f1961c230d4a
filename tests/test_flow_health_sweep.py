"""The `health-sweep` flow on a real Prefect server against real loopback endpoints.

What a user sees is read back from the Prefect API: task run states and messages, the
artifact, the events (as automations would match them), the registered deployment.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
import yaml
from prefect import get_client
from prefect.cli.deploy._models import PrefectYamlModel
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterKey,
    FlowRunFilter,
    FlowRunFilterId,
)
from prefect.client.schemas.objects import StateType
from prefect.events.filters import EventFilter, EventNameFilter, EventRelatedFilter
from prefect.events.worker import EventsWorker
from prefect.flows import load_flow_from_entrypoint
from prefect.settings import get_current_settings
from prefect.states import State

from flows.health_sweep import health_sweep
from homelab.history import open_history
from tasks.health import ARTIFACT_KEY
from tests.fixtures.endpoint_fleet import EndpointFleet, endpoint_fleet  # noqa: F401 (fixture)

ROOT = Path(__file__).parent.parent
EVENTS_TIMEOUT_S = 60  # the server's event persister writes in batches, every few seconds

pytestmark = pytest.mark.usefixtures("prefect_harness")


def write_cluster(tmp_path: Path, ports: dict[str, dict[str, int]]) -> Path:
    """A cluster file: node -> endpoint -> port, all llama.cpp servers on loopback."""
    nodes = [
        {
            "name": node,
            "tier": "gpu" if node == "gpu" else "cpu",
            "host": "127.0.0.1",
            "endpoints": [
                {"name": name, "kind": "llamacpp", "url": f"http://127.0.0.1:{port}"}
                for name, port in endpoints.items()
            ],
        }
        for node, endpoints in ports.items()
    ]
    cluster = {
        "nodes": nodes,
        "defaults": {"probe": {"connect_s": 1, "total_s": 1.5, "slow_ms": 800}},
        "history": {"url": "sqlite:///history/sweeps.db"},
    }
    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump(cluster))
    return path


async def run_sweep(cluster: Path) -> tuple[State[Any], UUID]:
    state = await health_sweep(str(cluster), return_state=True)
    return state, state.state_details.flow_run_id


async def task_states(flow_run_id: UUID, expected: set[str]) -> dict[str, tuple[StateType, str]]:
    """Final state and message per task run name, once every `expected` run has finished.

    The client reports task runs to the server as events, which the server records a moment
    later; so this polls.
    """
    await asyncio.to_thread(EventsWorker.drain_all)
    deadline = time.monotonic() + EVENTS_TIMEOUT_S
    async with get_client() as client:
        while True:
            runs = await client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
            states = {
                run.name: (run.state.type, run.state.message or "")
                for run in runs
                if run.state and run.state.is_final()
            }
            if expected <= states.keys() or time.monotonic() > deadline:
                return states
            await asyncio.sleep(0.5)


async def events_of(flow_run_id: UUID, names: list[str], expected: int) -> list[Any]:
    """Events related to a flow run, once at least `expected` of them are stored."""
    await asyncio.to_thread(EventsWorker.drain_all)
    query = EventFilter(
        event=EventNameFilter(name=names),
        related=EventRelatedFilter(id=[f"prefect.flow-run.{flow_run_id}"]),
    )
    deadline = time.monotonic() + EVENTS_TIMEOUT_S
    async with get_client() as client:
        while True:
            page = await client.read_events(filter=query, limit=50)
            if len(page.events) >= expected or time.monotonic() > deadline:
                return page.events
            await asyncio.sleep(0.5)


async def test_a_down_node_fails_its_task_and_the_sweep_is_recorded(
    tmp_path: Path, endpoint_fleet: EndpointFleet
) -> None:
    ports = {
        "gpu": {"coder": endpoint_fleet.start("ok"), "general": endpoint_fleet.start("slow")},
        "nas": {"small": endpoint_fleet.start("refused"), "hung": endpoint_fleet.start("blackhole")},
    }
    state, flow_run_id = await run_sweep(write_cluster(tmp_path, ports))

    assert state.is_completed(), state
    tasks = await task_states(flow_run_id, {"node-gpu", "node-nas"})
    assert [state for name, state in tasks.items() if name.startswith("probe-cluster")] == [(StateType.COMPLETED, "")]
    assert tasks["node-gpu"] == (StateType.COMPLETED, "2 of 2 endpoints serve")
    assert tasks["node-nas"] == (
        StateType.FAILED,
        "node nas is down: all 2 endpoints failed (small refused, hung timeout)",
    )

    with open_history("sqlite:///history/sweeps.db", relative_to=tmp_path) as history:
        [sweep] = history.recent_sweeps(5)
        stored = {(r.node, r.endpoint): r.state.value for r in history.sweep_results(sweep.id)}
    assert stored == {
        ("gpu", "coder"): "UP",
        ("gpu", "general"): "SLOW",
        ("nas", "small"): "DOWN",
        ("nas", "hung"): "DOWN",
    }
    assert sweep.prognosis == "DEGRADED"

    async with get_client() as client:
        [artifact] = await client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[ARTIFACT_KEY])),
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])),
        )
    table = json.loads(artifact.data) if isinstance(artifact.data, str) else artifact.data
    assert [(row["node"], row["endpoint"], row["state"], row["reason"]) for row in table] == [
        ("gpu", "coder", "UP", "ok"),
        ("gpu", "general", "SLOW", "slow"),
        ("nas", "small", "DOWN", "refused"),
        ("nas", "hung", "DOWN", "timeout"),
    ]
    assert artifact.description.startswith(f"**DEGRADED**: sweep {sweep.id}, 4 endpoints")

    events = await events_of(flow_run_id, ["homelab.node.down", "homelab.endpoint.down"], expected=3)
    by_name = sorted((e.event, e.resource.id) for e in events)
    assert by_name == [
        ("homelab.endpoint.down", "homelab.endpoint.nas.hung"),
        ("homelab.endpoint.down", "homelab.endpoint.nas.small"),
        ("homelab.node.down", "homelab.node.nas"),
    ]
    [node_down] = [e for e in events if e.event == "homelab.node.down"]
    assert node_down.resource["homelab.node"] == "nas"
    assert node_down.resource["homelab.tier"] == "cpu"
    assert node_down.payload["new"] is True
    assert node_down.payload["sweep_id"] == sweep.id


async def test_an_endpoint_that_comes_back_emits_recovered(tmp_path: Path, endpoint_fleet: EndpointFleet) -> None:
    back_port = endpoint_fleet.start("refused")
    cluster = write_cluster(tmp_path, {"gpu": {"coder": endpoint_fleet.start("ok"), "general": back_port}})
    first_state, first_run = await run_sweep(cluster)
    assert first_state.is_completed()
    endpoint_fleet.start("ok", port=back_port)
    second_state, second_run = await run_sweep(cluster)
    assert second_state.is_completed()

    first = await events_of(first_run, ["homelab.endpoint.down"], expected=1)
    second = await events_of(second_run, ["homelab.endpoint.recovered", "homelab.endpoint.down"], expected=1)
    assert [(e.event, e.resource.id) for e in first] == [("homelab.endpoint.down", "homelab.endpoint.gpu.general")]
    assert [(e.event, e.resource.id) for e in second] == [
        ("homelab.endpoint.recovered", "homelab.endpoint.gpu.general")
    ]
    recovered = second[0]
    assert (recovered.resource["homelab.node"], recovered.resource["homelab.tier"]) == ("gpu", "gpu")
    assert (recovered.payload["previous"], recovered.payload["state"]) == ("DOWN", "UP")
    assert (await task_states(second_run, {"node-gpu"}))["node-gpu"][0] is StateType.COMPLETED


def test_prefect_yaml_declares_the_health_sweep_deployment() -> None:
    raw = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    [deployment] = [d for d in PrefectYamlModel.model_validate(raw).deployments if d.name == "health-sweep"]
    assert deployment.work_pool is not None and deployment.work_pool.name == "homelab"
    assert set(deployment.parameters) == {"inventory"}
    flow = load_flow_from_entrypoint(str(ROOT / deployment.entrypoint))
    assert flow.name == "health-sweep"
    assert set(flow.parameters.properties) == set(deployment.parameters)


async def test_prefect_deploy_registers_the_schedule(tmp_path: Path) -> None:
    async with get_client() as client:
        await client.create_work_pool(WorkPoolCreate(name="homelab", type="process"), overwrite=True)
    env = {**os.environ, "PREFECT_API_URL": str(get_current_settings().api.url), "PREFECT_HOME": str(tmp_path)}
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "prefect", "--no-prompt", "deploy", "--name", "health-sweep"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    async with get_client() as client:
        deployment = await client.read_deployment_by_name("health-sweep/health-sweep")
    assert deployment.parameters == {"inventory": "cluster.yaml"}
    assert deployment.work_pool_name == "homelab"
    assert set(deployment.tags) == {"homelab", "health"}
    [schedule] = deployment.schedules
    assert schedule.schedule.interval.total_seconds() == 300
