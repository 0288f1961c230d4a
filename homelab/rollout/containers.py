"""A node's model rollout end to end: desired state from the inventory, facts from the node, plan, apply.

The sequence is written once, in `roll_out_containers`; a `ContainerRunner` says how each
part is done. `EngineRollout` calls homelab on one engine directly (what `homelab rollout`
uses); the Prefect flow passes a runner whose methods are tasks and publishes the report as
an artifact when the runner hears it.

The plan's order is the rollout's: volumes, then every copy (so a failing copy stops the
rollout before any container was touched), then containers one at a time in start order,
each behind its health gate. The first container that fails its gate is rolled back and the
rollout stops there.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from homelab.docker_ops.apply import EngineRunner, RolloutReport, StepOutcome, StepRunner, StepStatus, apply
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
    "ContainerRunner",
    "EngineRollout",
    "RolloutReport",
    "StepOutcome",
    "StepStatus",
    "desired_state",
    "gather_facts",
    "plan_node",
    "probe_settings_for",
    "roll_out_containers",
    "source_facts",
    "split_parts_of",
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
    # A split GGUF's other parts go into the volume beside its first (llama.cpp opens them by name).
    parts = {f: names[1:] for f, names in split_parts_of(node).items() if f in needed}
    needed |= {p for names in parts.values() for p in names}
    return DesiredState(node=node.name, containers=specs, sources={f: sources[f] for f in sorted(needed)}, parts=parts)


def split_parts_of(node: Node) -> dict[str, list[str]]:
    """Model file -> every part's name, for the node's containers whose source is a split GGUF."""
    return {
        e.container.model_file: names
        for e in node.endpoints
        if e.container is not None and e.container.source is not None
        and len(names := e.container.source.part_names()) > 1
    }  # fmt: skip


def probe_settings_for(inv: Inventory, node: Node) -> dict[str, ProbeSettings]:
    """Each endpoint's effective probe settings, for the health gate."""
    return {endpoint.name: inv.probe_settings(endpoint) for endpoint in node.endpoints}


def source_facts(
    engine: Engine, desired: DesiredState, settings: RolloutSettings, progress: ProgressCallback | None = None
) -> dict[str, SourceFile]:
    """Fact: size and SHA-256 of every model source (local files here, node files in a helper)."""
    found: dict[str, SourceFile] = {}
    for name, source in desired.sources.items():
        if source.checked is not None:  # hashed by the fetch that brought it here
            found[name] = source.checked
        elif source.local_path is not None:
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


class ContainerRunner(StepRunner, Protocol):
    """How the containers' part reaches the node: the steps (`StepRunner`), plus planning."""

    def plan(self, sources: Mapping[str, ModelSource], gpu_layers: Mapping[str, int]) -> Plan:
        """Desired state, facts and plan (changes nothing)."""
        ...

    def finished(self, report: RolloutReport) -> None:
        """Hears the part's report, also a dry run's (the flow sweeps the node and publishes it)."""
        ...


@dataclass(frozen=True)
class EngineRollout(EngineRunner):
    """The containers' part on one engine directly."""

    @classmethod
    def on(
        cls,
        engine: Engine,
        inv: Inventory,
        node: Node,
        settings: RolloutSettings,
        progress: ProgressCallback | None = None,
    ) -> EngineRollout:
        """The runner for `node` on its open `engine`, gating with the inventory's probe settings."""
        return cls(engine, node, probe_settings_for(inv, node), settings, progress)

    def plan(self, sources: Mapping[str, ModelSource], gpu_layers: Mapping[str, int]) -> Plan:
        return plan_node(self.engine, self.node, sources, self.settings, gpu_layers, self.progress)

    def finished(self, report: RolloutReport) -> None:
        """The caller renders the returned report; nothing to publish."""


def roll_out_containers(
    runner: ContainerRunner,
    node: Node,
    sources: Mapping[str, ModelSource],
    *,
    dry_run: bool = False,
    vram: NodeVramPlan | None = None,
) -> RolloutReport:
    """Plan the node's containers and, unless `dry_run`, apply the plan.

    Args:
        runner: how each part is done (`EngineRollout.on(engine, inv, node, settings)`, or the
            flow's task-backed runner).
        node: the node to roll out.
        sources: model file -> where to copy it from (`model_sources`).
        dry_run: plan only; the report's outcomes are empty.
        vram: the node's VRAM plan (`plan_node_vram`): GPU layers where the inventory sets none.
    """
    vram = vram or NodeVramPlan(node=node.name)
    steps = runner.plan(sources, vram.gpu_layers)
    if dry_run:
        report = RolloutReport(node=node.name, dry_run=True, plan=steps, vram=vram.lines)
    else:
        report = apply(steps, runner).model_copy(update={"vram": vram.lines})
    runner.finished(report)
    return report
