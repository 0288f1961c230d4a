"""The boot path on a real dockerd: after an engine restart, GPU containers wait for homelab to start them one by one.

Issue #16, item 1. Node `gpu1` runs three llama-server containers with restart policy "no"
(the GPU default: the engine must not start them together on boot); node `cpu1`, on the same
engine, runs one with "unless-stopped". The engine is stopped gracefully and started again on
the same data root, as a host reboot does. Then:

- the engine started `cpu1`'s container on its own, and none of `gpu1`'s;
- the health-sweep flow finds `gpu1`'s endpoints DOWN and emits `homelab.node.down`;
- the recover-node flow (Prefect's test harness server) plans "restart containers" and starts
  them in start_order, each only after the previous one passed its health gate: checked
  against the engine's own `start` event times, not against homelab's word.
"""

from __future__ import annotations

import asyncio
import re
import time
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
import yaml
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
from prefect.events.filters import EventFilter, EventNameFilter, EventRelatedFilter
from prefect.events.worker import EventsWorker
from prefect.logging.handlers import APILogWorker

from flows.health_sweep import health_sweep
from flows.recover_node import FlowRecoveryPolicy, recover_node
from homelab.docker_ops.apply import StepStatus
from homelab.docker_ops.connect import open_engine
from homelab.docker_ops.containers import ContainerSettings, container_state, stop_container
from homelab.docker_ops.gate import HealthGate, wait_healthy
from homelab.docker_ops.helper import HelperSettings
from homelab.docker_ops.serial import RolloutSettings
from homelab.docker_ops.sources import model_sources
from homelab.health.probe import EndpointState, Reason
from homelab.history import down_node
from homelab.inventory import Inventory, load_inventory
from homelab.recovery.actions import restart_containers
from homelab.recovery.plan import Incident, Outcome
from homelab.rollout.containers import EngineRollout, roll_out_containers
from homelab.tiny_gguf import write_tiny_llama
from tests.fixtures.docker_engine import BUSYBOX_IMAGE, _Daemon
from tests.fixtures.llama import LLAMA_SERVER_IMAGE
from tests.fixtures.net import LOOPBACK, free_port
from tests.fixtures.private_dockerd import docker_client, restart_dockerd, victim  # noqa: F401 (fixture)
from tests.fixtures.rollout import EndpointPlan, RolloutLab, rollout_lab  # noqa: F401 (fixture)

pytestmark = [pytest.mark.docker, pytest.mark.llama]

# File order differs from start order on purpose: the recovery must follow start_order.
GPU_START_ORDER = {"gamma": 2, "alpha": 0, "beta": 1}
STEADY = "steady"
GATE = HealthGate(interval_s=0.2, max_interval_s=1.0, timeout_s=60.0)
API_WAIT_S = 60.0  # the server stores events and logs in batches, a few seconds apart


def _endpoint(name: str, order: int, policy: str) -> dict[str, Any]:
    return {
        "name": name,
        "kind": "llamacpp",
        "url": f"http://{LOOPBACK}:{free_port()}",
        "models": [{"name": name, "alias": name}],
        "container": {
            "image": LLAMA_SERVER_IMAGE,
            "model_file": f"{name}.gguf",
            "ctx_size": 512,
            "start_order": order,
            "restart_policy": policy,
        },
    }


def _cluster(tmp_path: Path, daemon: _Daemon) -> Path:
    """Two nodes on one engine: GPU-style containers ("no") and a CPU one ("unless-stopped")."""
    gpu = [_endpoint(name, order, "no") for name, order in GPU_START_ORDER.items()]
    nodes = [
        {"name": "gpu1", "tier": "secondary", "host": LOOPBACK, "docker": {"url": daemon.base_url}, "endpoints": gpu},
        {
            "name": "cpu1",
            "tier": "cpu",
            "host": LOOPBACK,
            "docker": {"url": daemon.base_url},
            "endpoints": [_endpoint(STEADY, 0, "unless-stopped")],
        },
    ]
    data = {
        "name": "boot",
        "defaults": {"probe": {"connect_s": 1, "total_s": 3}},
        "nodes": nodes,
        "history": {"url": "sqlite:///history.db"},
    }
    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _roll_out(inv: Inventory, models: Path) -> None:
    """The real rollout of both nodes; each container's restart policy as the file gives it."""
    for node in inv.nodes:
        names = [e.name for e in node.endpoints]
        for seed, name in enumerate(names, start=1):
            write_tiny_llama(models / f"{name}.gguf", seed=seed)
        settings = RolloutSettings(
            helper=HelperSettings(image=BUSYBOX_IMAGE),
            containers=ContainerSettings(extra_args=("-t", "1", "--no-webui")),
            gate=GATE,
        )
        with closing(open_engine(node)) as engine:
            report = roll_out_containers(
                EngineRollout.on(engine, inv, node, settings),
                node,
                model_sources([f"{n}.gguf" for n in names], models_dir=models),
            )
        assert report.ok, report.failure


def _starts(base_url: str, since: float) -> dict[str, list[datetime]]:
    """The engine's own `start` events since `since` (epoch seconds), per container name."""
    with closing(docker_client(base_url)) as client:
        events = client.events(
            since=int(since),
            until=int(time.time()) + 1,
            decode=True,
            filters={"type": ["container"], "event": ["start"]},
        )
        found: dict[str, list[datetime]] = {}
        for event in events:
            at = datetime.fromtimestamp(event["timeNano"] / 1e9, UTC)
            if at.timestamp() >= since:
                found.setdefault(event["Actor"]["Attributes"]["name"], []).append(at)
    return found


async def _node_down_events(flow_run_id: UUID) -> list[Any]:
    """The sweep run's `homelab.node.down` events as the server stored them (what triggers match)."""
    await asyncio.to_thread(EventsWorker.drain_all)
    query = EventFilter(
        event=EventNameFilter(name=["homelab.node.down"]),
        related=EventRelatedFilter(id=[f"prefect.flow-run.{flow_run_id}"]),
    )
    deadline = time.monotonic() + API_WAIT_S
    async with get_client() as client:
        while True:
            page = await client.read_events(filter=query, limit=10)
            if page.events or time.monotonic() > deadline:
                return page.events
            await asyncio.sleep(0.5)


async def _run_logs(flow_run_id: UUID, wanted: str) -> list[str]:
    """The recovery run's log messages once one contains `wanted` (or the wait is over)."""
    await asyncio.to_thread(APILogWorker.drain_all)
    deadline = time.monotonic() + API_WAIT_S
    async with get_client() as client:
        while True:
            logs = await client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))
            messages = [log.message for log in logs]
            if any(wanted in m for m in messages) or time.monotonic() > deadline:
                return messages
            await asyncio.sleep(0.5)


def _gate_passes(incident: Incident) -> dict[str, datetime]:
    """When each container's gate passed, from the incident's "restart containers" record."""
    [record] = [a for a in incident.actions if a.action == "restart containers"]
    return {
        name: datetime.fromisoformat(at)
        for name, at in re.findall(r"(\S+) passed its gate at (\S+?)(?:;|$)", record.detail)
    }


def _assert_one_at_a_time(starts: list[tuple[datetime, str]], passes: dict[str, datetime]) -> None:
    """Each container started before its own gate passed, and after the previous one's; prints the figures."""
    print("\ncontainer        engine start     gate passed      next start - this pass")
    for (at, name), (next_at, next_name) in zip(starts, [*starts[1:], (None, None)], strict=True):
        assert at < passes[name]
        gap = f"{(next_at - passes[name]).total_seconds() * 1000:+.1f} ms" if next_at else ""
        print(f"{name:16} {at.strftime('%H:%M:%S.%f')}  {passes[name].strftime('%H:%M:%S.%f')}  {gap}")
        assert next_at is None or next_at > passes[name], f"{next_name} started before {name} passed its gate"


def test_after_an_engine_restart_gpu_containers_wait_and_recovery_starts_them_one_at_a_time(
    prefect_harness: None,
    victim: _Daemon,
    tmp_path: Path,
) -> None:
    path = _cluster(tmp_path, victim)
    inv = load_inventory(path)
    gpu1, cpu1 = inv.nodes
    (tmp_path / "models").mkdir()
    _roll_out(inv, tmp_path / "models")
    ordered = [f"homelab-{n}" for n in sorted(GPU_START_ORDER, key=GPU_START_ORDER.__getitem__)]

    # 1. A reboot of the engine: the "no" containers stay stopped; only "unless-stopped" comes back.
    restart_began = time.time()
    restart_dockerd(victim)
    booted = time.time()
    with closing(open_engine(gpu1)) as engine:
        states = {name: container_state(engine, name) for name in [*ordered, f"homelab-{STEADY}"]}
        steady = cpu1.endpoints[0]
        assert wait_healthy(engine, f"homelab-{STEADY}", cpu1, steady, inv.probe_settings(steady), GATE).healthy
    # The engine holds each container's policy as the file gives it (the rollout made them so).
    assert {n: (s.status, s.restart_policy) for n, s in states.items() if s} == {
        **dict.fromkeys(ordered, ("exited", "no")),
        f"homelab-{STEADY}": ("running", "unless-stopped"),
    }
    by_engine = _starts(victim.base_url, restart_began)
    assert list(by_engine) == [f"homelab-{STEADY}"], by_engine  # the engine started it, on its own, at boot
    assert by_engine[f"homelab-{STEADY}"][0].timestamp() <= booted

    # 2. The sweep sees it: every gpu1 endpoint refused, the node-down verdict and event.
    sweep = asyncio.run(health_sweep(inventory=str(path), return_state=True))
    report = sweep.result()
    results = [r for r in report.endpoints if r.node == "gpu1"]
    assert [(r.state, r.reason) for r in results] == [(EndpointState.DOWN, Reason.REFUSED)] * 3
    assert [r.serving for r in report.endpoints if r.node == "cpu1"] == [True]  # UP, or SLOW on a busy host
    verdict = down_node(results)
    assert verdict is not None and verdict.node == "gpu1"

    # 3. The recovery flow starts them in start_order, each after the previous one's gate passed.
    recovery_began = time.time()
    policy = FlowRecoveryPolicy(cooldown_s=0, poll_s=0.5)
    state = recover_node(node="gpu1", inventory=str(path), policy=policy, return_state=True)
    incident = state.result(raise_on_failure=False)
    assert isinstance(incident, Incident), incident
    assert incident.outcome is Outcome.RECOVERED, incident.markdown()
    assert [a.action for a in incident.actions] == ["probe", "check docker", "restart containers", "probe"]
    assert incident.reason == "the node serves again after: restart containers"
    messages = asyncio.run(_run_logs(state.state_details.flow_run_id, "attempt 1:"))
    assert "attempt 1: the Docker engine answers; its containers do not serve: restart containers" in messages

    starts = _starts(victim.base_url, restart_began)
    passes = _gate_passes(incident)
    assert list(passes) == ordered, incident.actions
    gpu_starts = sorted((at, name) for name in ordered for at in starts.get(name, []))
    assert [name for _, name in gpu_starts] == ordered, starts  # each started once, in start_order
    assert all(at.timestamp() >= recovery_began for at, _ in gpu_starts)  # none before homelab did it
    _assert_one_at_a_time(gpu_starts, passes)
    print(f"engine restart {booted - restart_began:.1f} s; recovery {incident.time_to_recover_s} s")

    [event] = asyncio.run(_node_down_events(sweep.state_details.flow_run_id))
    assert event.resource["homelab.node"] == "gpu1"


def test_recovery_gives_containers_the_files_restart_policy_before_it_starts_them(rollout_lab: RolloutLab) -> None:
    """Containers made while the file said nothing (a CPU node: unless-stopped) meet a file that now says "no"."""
    lab = rollout_lab
    plans = [EndpointPlan("one", "one.gguf", start_order=0), EndpointPlan("two", "two.gguf", start_order=1)]
    for seed, plan in enumerate(plans):
        lab.write_model(plan.model_file, seed=seed)
    old = lab.inventory(plans)
    data = lab.cluster(plans)
    for endpoint in data["nodes"][0]["endpoints"]:
        endpoint["container"]["restart_policy"] = "no"
    new = Inventory.model_validate(data)
    one, two = (f"{lab.prefix}{p.name}" for p in plans)
    with closing(lab.engine(old.nodes[0])) as engine:
        sources = model_sources([p.model_file for p in plans], models_dir=lab.models_dir)
        assert roll_out_containers(
            EngineRollout.on(engine, old, old.nodes[0], lab.settings()), old.nodes[0], sources
        ).ok
        stop_container(engine, one, 10)  # as after a reboot; `two` runs, as the engine's policy made it
        two_before = container_state(engine, two)
        outcomes = restart_containers(engine, new, new.nodes[0], lab.settings())
        after = {name: container_state(engine, name) for name in (one, two)}
    assert [(o.summary, o.status) for o in outcomes] == [
        (f"update restart policy of {one}: unless-stopped -> no (exited)", StepStatus.DONE),
        (f"update restart policy of {two}: unless-stopped -> no (running)", StepStatus.DONE),
    ]
    assert all(o.gate is not None and o.gate.healthy for o in outcomes)
    assert {n: (s.status, s.restart_policy) for n, s in after.items() if s} == {
        one: ("running", "no"),
        two: ("running", "no"),
    }
    assert two_before is not None and after[two] is not None
    assert after[two].started_at == two_before.started_at  # updated in place: the running server was not restarted
