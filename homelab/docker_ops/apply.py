"""Performing a plan: steps in order, containers one at a time behind their gates, rollback at the first failure.

The order of events lives here once, in `apply`; *how* each step is performed comes from a
`StepRunner`. `EngineRunner` calls homelab's functions directly (what `homelab rollout` uses);
the Prefect flow passes a runner whose methods are tasks, so retries can sit on the safe
steps only (volume, copy, gate, finish) and never on the unsafe ones (begin, roll back).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Generic, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from homelab.docker_ops.connect import Engine
from homelab.docker_ops.gate import GateResult
from homelab.docker_ops.plan import (
    ContainerStep,
    CopyModel,
    EnsureVolume,
    Plan,
    StartContainer,
    Step,
    UpdateRestartPolicy,
)
from homelab.docker_ops.serial import (
    Pending,
    RolloutSettings,
    begin_container_step,
    finish_container_step,
    gate_container_step,
    roll_back_container_step,
)
from homelab.docker_ops.sources import ProgressCallback
from homelab.docker_ops.volumes import copy_into_volume, ensure_volume
from homelab.errors import ContainerStepFailed, DockerOpError
from homelab.inventory import Node, ProbeSettings

__all__ = ["EngineRunner", "RolloutReport", "StepOutcome", "StepRunner", "StepStatus", "StepsReport", "apply"]


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


PlanT = TypeVar("PlanT", bound=BaseModel)


class StepsReport(BaseModel, Generic[PlanT]):
    """What one part of a rollout found and did: the plan, each step's outcome, and the first failure."""

    model_config = ConfigDict(frozen=True)

    node: str
    dry_run: bool = False
    plan: PlanT
    vram: list[str] = Field(default_factory=list, description="where the VRAM plan put each model")
    outcomes: list[StepOutcome] = Field(default_factory=list)
    failure: str | None = None

    @property
    def ok(self) -> bool:
        return self.failure is None


class RolloutReport(StepsReport[Plan]):
    """The containers' part of a rollout."""


class StepRunner(Protocol):
    """How each kind of step is performed (directly, or as Prefect tasks)."""

    def volume_step(self, step: EnsureVolume | CopyModel) -> str: ...

    def begin(self, step: ContainerStep) -> Pending: ...

    def gate(self, pending: Pending) -> GateResult: ...

    def finish(self, pending: Pending) -> None: ...

    def roll_back(self, pending: Pending) -> GateResult | None: ...


@dataclass(frozen=True)
class EngineRunner:
    """Performs steps by calling homelab directly on one engine."""

    engine: Engine
    node: Node
    probe: Mapping[str, ProbeSettings]
    settings: RolloutSettings
    progress: ProgressCallback | None = None

    def volume_step(self, step: EnsureVolume | CopyModel) -> str:
        if isinstance(step, EnsureVolume):
            return "created" if ensure_volume(self.engine, step.volume) else "already there"
        copied = copy_into_volume(
            self.engine, step.volume, step.source, step.expected, self.settings.helper, self.progress
        )
        return f"{copied.size_bytes} bytes, sha256 {copied.sha256[:12]} verified"

    def begin(self, step: ContainerStep) -> Pending:
        return begin_container_step(self.engine, step, self.settings)

    def gate(self, pending: Pending) -> GateResult:
        probe = self.probe[pending.step.spec.endpoint]
        return gate_container_step(self.engine, pending, self.node, probe, self.settings.gate)

    def finish(self, pending: Pending) -> None:
        finish_container_step(self.engine, pending, self.settings)

    def roll_back(self, pending: Pending) -> GateResult | None:
        probe = self.probe[pending.step.spec.endpoint]
        return roll_back_container_step(self.engine, pending, self.node, probe, self.settings)


def _outcome(
    step: Step,
    status: StepStatus,
    detail: str,
    started: float,
    gate: GateResult | None = None,
    back: GateResult | None = None,
) -> StepOutcome:
    seconds = round(time.perf_counter() - started, 2)
    return StepOutcome(
        summary=step.summary(), status=status, detail=detail, seconds=seconds, gate=gate, rollback_gate=back
    )


def _roll_back(runner: StepRunner, pending: Pending, why: str) -> GateResult | None:
    """Roll back; should that fail too, the error says both what failed and why the rollback was needed."""
    try:
        return runner.roll_back(pending)
    except DockerOpError as exc:
        raise DockerOpError(f"{why}; rolling back failed too: {exc}") from exc


def _container(step: ContainerStep, runner: StepRunner, started: float) -> StepOutcome:
    """Start one container behind its gate; keep it when healthy, else roll back."""
    try:
        pending = runner.begin(step)
    except ContainerStepFailed as exc:
        why = f"{step.spec.name} could not be started: {exc}"
        return _outcome(step, StepStatus.ROLLED_BACK, why, started, None, _roll_back(runner, exc.pending, why))
    gate = runner.gate(pending)
    if gate.healthy:
        runner.finish(pending)
        return _outcome(step, StepStatus.DONE, gate.why, started, gate)
    why = f"{step.spec.name} failed its health gate: {gate.why}"
    back = _roll_back(runner, pending, why)
    # Starting a stopped container or changing its restart policy leaves nothing to undo: it just failed.
    status = StepStatus.FAILED if isinstance(step, StartContainer | UpdateRestartPolicy) else StepStatus.ROLLED_BACK
    return _outcome(step, status, why, started, gate, back)


def _one(step: Step, runner: StepRunner) -> StepOutcome:
    started = time.perf_counter()
    try:
        if isinstance(step, EnsureVolume | CopyModel):
            return _outcome(step, StepStatus.DONE, runner.volume_step(step), started)
        return _container(step, runner, started)
    except DockerOpError as exc:  # a copy failed, or the engine failed us during a gate or rollback
        return _outcome(step, StepStatus.FAILED, str(exc), started)


def apply(plan: Plan, runner: StepRunner) -> RolloutReport:
    """Perform the plan's steps in order, stopping at the first that does not end DONE.

    Containers start strictly one after the other: a container step returns only once its
    container passed its gate (or was rolled back), and only then does the next begin.

    Returns:
        The report; `failure` says which step failed and why (a failed gate's outcome carries
        the container's last log lines); the steps after it are NOT_RUN.
    """
    outcomes: list[StepOutcome] = []
    failure: str | None = None
    for step in plan.steps:
        if failure is not None:
            outcomes.append(StepOutcome(summary=step.summary(), status=StepStatus.NOT_RUN))
            continue
        outcome = _one(step, runner)
        outcomes.append(outcome)
        if outcome.status is not StepStatus.DONE:
            failure = (
                outcome.detail if outcome.status is StepStatus.ROLLED_BACK else f"{step.summary()}: {outcome.detail}"
            )
    return RolloutReport(node=plan.node, plan=plan, outcomes=outcomes, failure=failure)
