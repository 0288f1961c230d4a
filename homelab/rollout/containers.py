"""A node's model rollout end to end: desired state from the inventory, facts from the node, plan, apply.

`homelab rollout` calls `roll_out_node`; the Prefect flow calls the same pieces (`plan_node`,
then `apply` with a runner made of tasks).

The plan's order is the rollout's: volumes, then every copy (so a failing copy stops the
rollout before any container was touched), then containers one at a time in start order,
each behind its health gate. The first container that fails its gate is rolled back and the
rollout stops there.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from homelab.docker_ops.apply import EngineRunner, RolloutReport, StepOutcome, StepStatus, apply
from homelab.docker_ops.connect import Engine
from homelab.docker_ops.containers import (
    ContainerSpec,
    container_state,
    desired_containers,
    image_id,
    managed_containers,
)
from homelab.docker_ops.plan import DesiredState, Facts, Plan, plan
from homelab.docker_ops.serial import RolloutSettings
from homelab.docker_ops.sources import ModelSource, ProgressCallback, SourceFile, hash_local_file
from homelab.docker_ops.volumes import node_source_file, volume_exists, volume_files
from homelab.inventory import Inventory, Node, ProbeSettings
from homelab.vram.node_plan import NodeVramPlan

__all__ = [
    "RolloutReport",
    "StepOutcome",
    "StepStatus",
    "desired_state",
    "gather_facts",
    "plan_node",
    "probe_settings_for",
    "roll_out_node",
    "source_facts",
]

log = logging.getLogger(__name__)


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
    files = {
        v: volume_files(engine, v, [f for vol, f in desired.models() if vol == v], settings.helper) for v in volumes
    }
    containers = {s.name: state for s in desired.containers if (state := container_state(engine, s.name)) is not None}
    return Facts(
        volumes=volumes,
        files=files,
        sources=source_facts(engine, desired, settings, progress),
        containers=containers,
        images={spec.image: image_id(engine, spec.image) for spec in desired.containers},
        managed=managed_containers(engine),
    )


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
    vram: NodeVramPlan | None = None,
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
        vram: the node's VRAM plan (`plan_node_vram`): GPU layers where the inventory sets none.
        progress: copy and hash progress.
    """
    vram = vram or NodeVramPlan(node=node.name)
    steps = plan_node(engine, node, sources, settings, vram.gpu_layers, progress)
    if dry_run:
        return RolloutReport(node=node.name, dry_run=True, plan=steps, vram=vram.lines)
    report = apply(steps, EngineRunner(engine, node, probe_settings_for(inv, node), settings, progress))
    return report.model_copy(update={"vram": vram.lines})
