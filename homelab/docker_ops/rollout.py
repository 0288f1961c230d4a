"""A node's model rollout end to end: desired state, facts, and `apply(steps)` with serial start and rollback.

`homelab rollout` runs `rollout_node`-style code directly (`desired_state`, `gather_facts`,
`plan`, `apply`); the Prefect flow runs the same functions one step per task, so retries
can sit on the safe steps only.

Order inside `apply`: volumes, then every copy (so a failing copy stops the rollout before any
container was touched), then containers one at a time in start order, each behind its health
gate. The first container that fails its gate is rolled back and the rollout stops there.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from homelab.docker_ops.connect import Engine
from homelab.docker_ops.containers import (
    ContainerSpec,
    container_state,
    desired_containers,
    image_id,
    managed_containers,
)
from homelab.docker_ops.gate import GateResult
from homelab.docker_ops.plan import ContainerStep, CopyModel, DesiredState, EnsureVolume, Facts, Plan, Step, plan
from homelab.docker_ops.serial import (
    ContainerStepFailed,
    RolloutSettings,
    begin_container_step,
    finish_container_step,
    gate_container_step,
    roll_back_container_step,
)
from homelab.docker_ops.sources import ModelSource, ProgressCallback, SourceFile, hash_local_file
from homelab.docker_ops.volumes import copy_into_volume, ensure_volume, node_source_file, volume_exists, volume_files
from homelab.errors import DockerOpError
from homelab.inventory import Inventory, Node, ProbeSettings

__all__ = [
    "StepStatus",
    "StepOutcome",
    "RolloutReport",
    "desired_state",
    "source_facts",
    "gather_facts",
    "run_volume_step",
    "run_container_step",
    "apply",
    "probe_settings_for",
    "plan_node",
    "roll_out_node",
]

log = logging.getLogger(__name__)


class StepStatus(StrEnum):
    """How a step ended."""

    DONE = "done"
    FAILED = "failed"
    ROLLED_BACK = "rolled back"
    NOT_RUN = "not run"


class StepOutcome(BaseModel):
    """One step as it happened."""

    model_config = ConfigDict(frozen=True)

    summary: str
    status: StepStatus
    detail: str = ""
    seconds: float = 0.0
    gate: GateResult | None = None
    rollback_gate: GateResult | None = Field(None, description="the old container's gate after a rollback")


class RolloutReport(BaseModel):
    """What a rollout found and did: the plan, each step's outcome, and the first failure."""

    model_config = ConfigDict(frozen=True)

    node: str
    dry_run: bool = False
    plan: Plan
    outcomes: list[StepOutcome] = Field(default_factory=list)
    failure: str | None = None

    @property
    def ok(self) -> bool:
        return self.failure is None


def desired_state(
    node: Node,
    sources: Mapping[str, ModelSource],
    settings: RolloutSettings,
    gpu_layers: Mapping[str, int] | None = None,
) -> DesiredState:
    """What the node should run, from the inventory, the model sources and (later) a VRAM plan.

    Args:
        gpu_layers: endpoint name -> GPU layers from `homelab.vram`'s planner, for endpoints
            whose inventory leaves `gpu_layers` unset.
    """
    specs: list[ContainerSpec] = desired_containers(node, settings.containers, gpu_layers)
    needed = {spec.model_file for spec in specs}
    return DesiredState(node=node.name, containers=specs, sources={f: sources[f] for f in sorted(needed)})


def probe_settings_for(inv: Inventory, node: Node) -> dict[str, ProbeSettings]:
    """Each endpoint's effective probe settings, for the health gate."""
    return {endpoint.name: inv.probe_settings(endpoint) for endpoint in node.endpoints}


def source_facts(
    engine: Engine, desired: DesiredState, settings: RolloutSettings, progress: ProgressCallback | None = None
) -> dict[str, SourceFile]:
    """Fact: size and SHA-256 of every model source (local files here, node files in a helper)."""
    found: dict[str, SourceFile] = {}
    for name, source in desired.sources.items():
        if source.local_path is not None:
            found[name] = hash_local_file(source.local_path, name, progress)
        else:
            found[name] = node_source_file(engine, source, settings.helper)
    return found


def gather_facts(
    engine: Engine, desired: DesiredState, settings: RolloutSettings, progress: ProgressCallback | None = None
) -> Facts:
    """Everything `plan` compares, read without changing anything (volume files via read-only helpers)."""
    volumes = [v for v in desired.volumes() if volume_exists(engine, v)]
    files = {v: volume_files(engine, v, [f for vol, f in desired.models() if vol == v], settings.helper) for v in volumes}
    containers = {s.name: state for s in desired.containers if (state := container_state(engine, s.name)) is not None}
    return Facts(
        volumes=volumes,
        files=files,
        sources=source_facts(engine, desired, settings, progress),
        containers=containers,
        images={spec.image: image_id(engine, spec.image) for spec in desired.containers},
        managed=managed_containers(engine),
    )


def run_volume_step(
    engine: Engine, step: EnsureVolume | CopyModel, settings: RolloutSettings, progress: ProgressCallback | None = None
) -> str:
    """Perform a volume or copy step (both idempotent); returns what was done."""
    if isinstance(step, EnsureVolume):
        created = ensure_volume(engine, step.volume)
        return "created" if created else "already there"
    copied = copy_into_volume(engine, step.volume, step.source, step.expected, settings.helper, progress)
    return f"{copied.size_bytes} bytes, sha256 {copied.sha256[:12]} verified"


def run_container_step(
    engine: Engine, step: ContainerStep, node: Node, probe: ProbeSettings, settings: RolloutSettings
) -> StepOutcome:
    """Start one container behind its gate; keep it when healthy, else roll back. Never raises for a bad container."""
    started = time.perf_counter()
    try:
        pending = begin_container_step(engine, step, settings)
    except ContainerStepFailed as exc:
        back = roll_back_container_step(engine, exc.pending, node, probe, settings)
        return _outcome(step, StepStatus.ROLLED_BACK, str(exc), started, None, back)
    gate = gate_container_step(engine, pending, node, probe, settings.gate)
    if gate.healthy:
        finish_container_step(engine, pending, settings)
        return _outcome(step, StepStatus.DONE, gate.why, started, gate, None)
    back = roll_back_container_step(engine, pending, node, probe, settings)
    return _outcome(step, StepStatus.ROLLED_BACK, f"{step.spec.name} failed its health gate: {gate.why}", started, gate, back)


def _outcome(
    step: Step, status: StepStatus, detail: str, started: float, gate: GateResult | None, back: GateResult | None
) -> StepOutcome:
    seconds = round(time.perf_counter() - started, 2)
    return StepOutcome(summary=step.summary(), status=status, detail=detail, seconds=seconds, gate=gate, rollback_gate=back)


def apply(
    engine: Engine,
    plan: Plan,
    node: Node,
    probe: Mapping[str, ProbeSettings],
    settings: RolloutSettings,
    progress: ProgressCallback | None = None,
) -> RolloutReport:
    """Perform the plan's steps in order, one container at a time, stopping at the first failure.

    Args:
        engine: the node's engine.
        plan: from `plan(desired, facts)`.
        node: the inventory node (its endpoints are what the gate probes).
        probe: endpoint name -> probe settings (`probe_settings_for`).
        settings: helper image, container defaults, gate.
        progress: copy progress callback (bytes sent, verification).

    Returns:
        The report; `failure` names the failed step and why (a failed gate's log lines are in
        its outcome). Engine errors during a copy end the rollout as a failure too.
    """
    outcomes: list[StepOutcome] = []
    failure: str | None = None
    for step in plan.steps:
        if failure is not None:
            outcomes.append(StepOutcome(summary=step.summary(), status=StepStatus.NOT_RUN))
            continue
        started = time.perf_counter()
        if isinstance(step, EnsureVolume | CopyModel):
            try:
                detail = run_volume_step(engine, step, settings, progress)
                outcomes.append(_outcome(step, StepStatus.DONE, detail, started, None, None))
            except DockerOpError as exc:
                failure = f"{step.summary()}: {exc}"
                outcomes.append(_outcome(step, StepStatus.FAILED, str(exc), started, None, None))
            continue
        try:
            outcome = run_container_step(engine, step, node, probe[step.spec.endpoint], settings)
        except DockerOpError as exc:  # the engine failed us during the gate or the rollback
            outcome = _outcome(step, StepStatus.FAILED, str(exc), started, None, None)
        outcomes.append(outcome)
        if outcome.status is not StepStatus.DONE:
            failure = outcome.detail
    return RolloutReport(node=plan.node, plan=plan, outcomes=outcomes, failure=failure)


def plan_node(
    engine: Engine,
    node: Node,
    sources: Mapping[str, ModelSource],
    settings: RolloutSettings,
    gpu_layers: Mapping[str, int] | None = None,
    progress: ProgressCallback | None = None,
) -> Plan:
    """Desired state, facts and plan for one node, in one call (changes nothing)."""
    desired = desired_state(node, sources, settings, gpu_layers)
    return plan(desired, gather_facts(engine, desired, settings, progress))


def roll_out_node(
    engine: Engine,
    inv: Inventory,
    node: Node,
    sources: Mapping[str, ModelSource],
    settings: RolloutSettings,
    *,
    dry_run: bool = False,
    gpu_layers: Mapping[str, int] | None = None,
    progress: ProgressCallback | None = None,
) -> RolloutReport:
    """Plan the node's rollout and, unless `dry_run`, apply it: what `homelab rollout` runs.

    Args:
        engine: the node's engine (`open_engine(node)`).
        inv: the inventory (for each endpoint's probe settings).
        node: the node to roll out.
        sources: model file -> where to copy it from (`model_sources`).
        settings: helper image, container defaults, gate.
        dry_run: plan only; the report's outcomes are empty.
        gpu_layers: endpoint -> GPU layers from a VRAM plan, where the inventory sets none.
        progress: copy and hash progress.
    """
    steps = plan_node(engine, node, sources, settings, gpu_layers, progress)
    if dry_run:
        return RolloutReport(node=node.name, dry_run=True, plan=steps)
    return apply(engine, steps, node, probe_settings_for(inv, node), settings, progress)
