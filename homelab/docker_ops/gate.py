"""The health gate: after a container starts, wait until its endpoint serves before anything else starts.

Why one at a time: llama.cpp servers initialise CUDA and allocate their VRAM as they load.
Several starting together on one GPU race for memory (one gets out-of-memory, or each falls
back to fewer layers than planned), and concurrent CUDA context creation in several processes
has been seen to deadlock drivers. Starting the next container only after the previous one
answers its health check keeps each load alone on the GPU and makes its VRAM use measurable.

The check is `homelab.health.probe.probe_endpoint`, the same one sweeps use: for llama-server,
`/health` must answer 200 `{"status": "ok"}` (503 while the model loads) and `/v1/models` must list
the model. A container that exits while being waited for fails the gate at once.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import time
from collections.abc import Coroutine
from datetime import UTC, datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from homelab.docker_ops.connect import Engine
from homelab.docker_ops.containers import container_state, log_tail
from homelab.health.http import open_probe_client
from homelab.health.probe import EndpointState, Reason, probe_endpoint
from homelab.inventory import Endpoint, Node, ProbeSettings

__all__ = ["DEFAULT_HEALTH_GATE", "GateProbe", "GateResult", "HealthGate", "wait_healthy"]

log = logging.getLogger(__name__)
T = TypeVar("T")


class HealthGate(BaseModel):
    """How long to wait for a started container to serve.

    Probes are `interval_s` apart at first, the pause doubling after each failed probe up to
    `max_interval_s` (a model that takes a minute to load is not asked 600 times). The wait
    ends at whichever comes first: `attempts` probes or `timeout_s` seconds.
    """

    model_config = ConfigDict(frozen=True)

    interval_s: float = Field(0.5, gt=0, description="seconds between the first probes")
    max_interval_s: float = Field(5.0, gt=0, description="longest pause between probes")
    timeout_s: float = Field(300.0, gt=0, description="seconds a container may take to serve")
    attempts: int = Field(200, gt=0, description="most probes before giving up")
    log_lines: int = Field(20, gt=0, description="log lines kept from a container that failed")

    @model_validator(mode="after")
    def _ordered(self) -> HealthGate:
        if self.interval_s > self.max_interval_s:
            raise ValueError(f"interval_s ({self.interval_s}) must not exceed max_interval_s ({self.max_interval_s})")
        return self


DEFAULT_HEALTH_GATE = HealthGate()


class GateProbe(BaseModel):
    """One look at the container during the wait."""

    model_config = ConfigDict(frozen=True)

    at: datetime
    state: EndpointState
    reason: Reason
    detail: str = ""


class GateResult(BaseModel):
    """How the wait for one container ended; `log_tail` is filled when it failed."""

    model_config = ConfigDict(frozen=True)

    container: str
    endpoint: str
    healthy: bool
    started_at: datetime
    finished_at: datetime
    probes: list[GateProbe] = Field(default_factory=list)
    why: str = ""
    log_tail: list[str] = Field(default_factory=list)

    @property
    def waited_s(self) -> float:
        return (self.finished_at - self.started_at).total_seconds()


def _run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine from sync code, also when the caller's thread already has a loop running."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


def _restarts(engine: Engine, name: str) -> int:
    state = container_state(engine, name)
    return state.restart_count if state else 0


def _exited(engine: Engine, name: str, restarts_before: int) -> str | None:
    """Why the container is not running any more, or None while it runs."""
    state = container_state(engine, name)
    if state is None:
        return "the container disappeared"
    if state.status in {"exited", "dead"}:
        return f"the container exited with code {state.exit_code}"
    if state.restart_count > restarts_before or state.status == "restarting":
        # Its restart policy brings it back, only to fail again: waiting longer changes nothing.
        return f"the container exited with code {state.exit_code} and the engine keeps restarting it"
    return None


async def _wait(
    engine: Engine, name: str, node: Node, endpoint: Endpoint, settings: ProbeSettings, gate: HealthGate
) -> tuple[bool, str, list[GateProbe]]:
    probes: list[GateProbe] = []
    deadline = time.monotonic() + gate.timeout_s
    pause = gate.interval_s
    restarts_before = _restarts(engine, name)  # an old container brought back may have restarted before
    async with open_probe_client() as client:
        for attempt in range(1, gate.attempts + 1):
            result = await probe_endpoint(client, node, endpoint, settings)
            probes.append(
                GateProbe(at=result.checked_at, state=result.state, reason=result.reason, detail=result.detail)
            )
            log.info("gate %s: probe %d: %s %s %s", name, attempt, result.state, result.reason, result.detail)
            if result.serving:
                return True, f"serving after {attempt} probe{'s' if attempt > 1 else ''}", probes
            if (why := _exited(engine, name, restarts_before)) is not None:
                return False, why, probes
            if time.monotonic() + pause > deadline:
                return (
                    False,
                    f"not serving within {gate.timeout_s:g} s: {result.reason} {result.detail}".rstrip(),
                    probes,
                )
            await asyncio.sleep(pause)
            pause = min(pause * 2, gate.max_interval_s)
    return False, f"not serving after {gate.attempts} probes: {result.reason} {result.detail}".rstrip(), probes


def wait_healthy(
    engine: Engine, name: str, node: Node, endpoint: Endpoint, settings: ProbeSettings, gate: HealthGate
) -> GateResult:
    """Wait until the started container `name` serves `endpoint`, or the gate gives up.

    Safe to retry: it only looks. Never raises for an unhealthy container; the result says
    why, with the container's last log lines.

    Args:
        engine: the node's engine (to notice a container that exited).
        name: the container just started.
        node: its node (for the probe result).
        endpoint: the endpoint it serves; its URL is probed.
        settings: the endpoint's probe timeouts.
        gate: pauses and limits.
    """
    started_at = datetime.now(UTC)
    healthy, why, probes = _run(_wait(engine, name, node, endpoint, settings, gate))
    tail = [] if healthy else log_tail(engine, name, gate.log_lines)
    level = logging.INFO if healthy else logging.WARNING
    log.log(level, "gate %s: %s: %s", name, "passed" if healthy else "failed", why)
    return GateResult(
        container=name,
        endpoint=endpoint.name,
        healthy=healthy,
        started_at=started_at,
        finished_at=datetime.now(UTC),
        probes=probes,
        why=why,
        log_tail=tail,
    )
