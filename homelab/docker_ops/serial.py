"""One container step at a time: start the new container, let the gate judge it, then keep it or roll back.

The old container is never removed before its replacement is healthy. It is stopped (it holds
the port and, on a GPU node, the VRAM the new one needs) and renamed `NAME-previous`; the old
model file waits as `.MODEL.previous`. When the new container fails its gate, it is removed,
the old file and container come back under their own names, and the old container is
started and gated again so the report can say it serves.

Each function here is one unit a flow can run as a task: `begin_container_step` and
`roll_back_container_step` are not idempotent (no retries); `finish_container_step` is.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from homelab.docker_ops.connect import Engine
from homelab.docker_ops.containers import (
    ContainerSettings,
    container_state,
    create_container,
    previous_container_name,
    remove_container,
    rename_container,
    start_container,
    stop_container,
    update_restart_policy,
)
from homelab.docker_ops.gate import GateResult, HealthGate, wait_healthy
from homelab.docker_ops.helper import HelperSettings, ensure_image
from homelab.docker_ops.plan import (
    ContainerStep,
    CreateContainer,
    ReplaceContainer,
    StartContainer,
    UpdateRestartPolicy,
)
from homelab.docker_ops.volumes import activate_model, forget_previous, restore_model
from homelab.errors import ContainerStepFailed, DockerOpError
from homelab.inventory import Node, ProbeSettings

__all__ = [
    "DEFAULT_ROLLOUT_SETTINGS",
    "Pending",
    "RolloutSettings",
    "begin_container_step",
    "finish_container_step",
    "gate_container_step",
    "roll_back_container_step",
]

log = logging.getLogger(__name__)


class RolloutSettings(BaseModel):
    """Everything about a rollout that is not in the inventory: helper image, container defaults, gate."""

    model_config = ConfigDict(frozen=True)

    helper: HelperSettings = HelperSettings()
    containers: ContainerSettings = ContainerSettings()
    gate: HealthGate = HealthGate()


DEFAULT_ROLLOUT_SETTINGS = RolloutSettings()


class Pending(BaseModel):
    """What a container step has done so far: exactly what a rollback must undo."""

    model_config = ConfigDict(frozen=True)

    step: ContainerStep = Field(discriminator="kind")
    old_kept: bool = Field(False, description="the old container waits, stopped, as NAME-previous")
    model_activated: bool = Field(False, description="the new model file is in place, the old one kept")
    new_created: bool = False


@dataclass
class _Progress:
    """Mutable while a step runs; frozen into `Pending` when it ends, either way."""

    step: ContainerStep
    old_kept: bool = False
    model_activated: bool = False
    new_created: bool = False

    def freeze(self) -> Pending:
        return Pending(
            step=self.step, old_kept=self.old_kept, model_activated=self.model_activated, new_created=self.new_created
        )


def _set_old_aside(engine: Engine, progress: _Progress, settings: RolloutSettings) -> None:
    """Stop the running container and keep it as NAME-previous (a leftover one from a killed run goes first)."""
    spec = progress.step.spec
    previous = previous_container_name(spec.name)
    if isinstance(progress.step, CreateContainer):
        # NAME is missing but NAME-previous exists: a killed rollout set it aside; keep it for rollback.
        progress.old_kept = container_state(engine, previous) is not None
        return
    remove_container(engine, previous)
    stop_container(engine, spec.name, settings.containers.stop_timeout_s)
    rename_container(engine, spec.name, previous)
    progress.old_kept = True


def _moved_in(step: ContainerStep) -> list[str]:
    """The verified copies a step moves over their final names: its model file, a split's other parts."""
    if not isinstance(step, CreateContainer | ReplaceContainer):
        return []
    return ([step.spec.model_file] if step.activate_model else []) + step.activate_parts


def begin_container_step(engine: Engine, step: ContainerStep, settings: RolloutSettings) -> Pending:
    """Start the step's container (after setting the old one aside and activating its model).

    Not idempotent: no retries. Returns once the container is started; judge it with
    `gate_container_step`.

    Raises:
        ContainerStepFailed: something failed on the way; its `pending` goes to `roll_back_container_step`.
    """
    progress = _Progress(step=step)
    spec = step.spec
    try:
        if isinstance(step, CreateContainer | ReplaceContainer):
            ensure_image(engine, spec.image)  # a pull, if one is needed, happens while the old one still serves
            _set_old_aside(engine, progress, settings)
            for model_file in _moved_in(step):
                activate_model(engine, spec.volume, model_file, settings.helper)
                progress.model_activated = True
            remove_container(engine, spec.name)  # a created-but-never-started leftover
            create_container(engine, spec, step.model_sha256, node=engine.node)
            progress.new_created = True
        elif isinstance(step, UpdateRestartPolicy):
            update_restart_policy(engine, spec.name, spec.restart_policy)
        start_container(engine, spec.name)  # a running container (an update) is left as it is
    except DockerOpError as exc:
        raise ContainerStepFailed(str(exc), progress.freeze()) from exc
    done = "updated" if isinstance(step, UpdateRestartPolicy) else "started"
    log.info("node %s: %s %s (%s)", engine.node, done, spec.name, step.reason)
    return progress.freeze()


def gate_container_step(
    engine: Engine, pending: Pending, node: Node, probe: ProbeSettings, gate: HealthGate
) -> GateResult:
    """Wait for the started container to serve its endpoint (only looks: safe to retry)."""
    spec = pending.step.spec
    endpoint = next(e for e in node.endpoints if e.name == spec.endpoint)
    return wait_healthy(engine, spec.name, node, endpoint, probe, gate)


def finish_container_step(engine: Engine, pending: Pending, settings: RolloutSettings) -> None:
    """The new container is healthy: drop the old container and the old model file (idempotent)."""
    spec = pending.step.spec
    if pending.old_kept:
        remove_container(engine, previous_container_name(spec.name))
    for model_file in _moved_in(pending.step) if pending.model_activated else []:
        forget_previous(engine, spec.volume, model_file, settings.helper)


def roll_back_container_step(
    engine: Engine, pending: Pending, node: Node, probe: ProbeSettings, settings: RolloutSettings
) -> GateResult | None:
    """Undo a failed step: remove the new container, bring back the old model file and container.

    Not idempotent: no retries. The old container is started and gated again.

    Returns:
        The old container's gate, or None when there was no old container to bring back.
    """
    spec = pending.step.spec
    if isinstance(pending.step, StartContainer | UpdateRestartPolicy):
        return None  # the container was already there, made by the same spec: nothing to restore
    if pending.new_created:
        remove_container(engine, spec.name)
    for model_file in _moved_in(pending.step) if pending.model_activated else []:
        restore_model(engine, spec.volume, model_file, settings.helper)  # a file not moved in has no .previous
    if pending.old_kept:
        rename_container(engine, previous_container_name(spec.name), spec.name)
    elif isinstance(pending.step, CreateContainer):
        return None  # nothing existed before
    # The old container is under its own name again (or never left it, when setting it aside
    # failed half-way); starting a running container changes nothing.
    start_container(engine, spec.name)
    log.warning("node %s: rolled back %s to its previous container", engine.node, spec.name)
    return gate_container_step(engine, pending, node, probe, settings.gate)
