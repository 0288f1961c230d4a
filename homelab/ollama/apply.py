"""Performing an Ollama plan: steps in order, models preloaded one at a time, stop at the first failure.

The order of events lives here once, in `apply`; *how* each step is performed comes from an
`OllamaStepRunner`. `ApiRunner` calls the endpoints directly (what `homelab rollout` uses); the
Prefect flow passes a runner whose methods are tasks, so retries sit on the safe steps only
(upload, pull, waiting for `/api/ps`).

Preloads are strictly serial, for the reason llama.cpp containers start one at a time: two
models loading at once race for the same free VRAM, and each sizes its offload on memory
the other is about to take. A preload returns only once `/api/ps` lists the model.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from pydantic import Field

from homelab.docker_ops.apply import StepOutcome, StepsReport, StepStatus
from homelab.docker_ops.sources import ProgressCallback
from homelab.errors import OllamaError
from homelab.ollama.api import OllamaAPI, RunningModel
from homelab.ollama.check import LoadCheck
from homelab.ollama.plan import (
    CreateModel,
    DeleteModel,
    OllamaPlan,
    OllamaStep,
    PreloadModel,
    PullModel,
    UnloadModel,
    UploadBlob,
)
from homelab.ollama.settings import LoadWait, OllamaDeploySettings

__all__ = ["ApiRunner", "OllamaRolloutReport", "OllamaStepRunner", "apply", "perform", "wait_loaded"]

log = logging.getLogger(__name__)
_MIB = 1 << 20


class OllamaRolloutReport(StepsReport[OllamaPlan]):
    """The Ollama part of a rollout, with the loads checked against the plan after the steps."""

    checks: list[LoadCheck] = Field(default_factory=list, description="/api/ps against the plan, after the steps")


class OllamaStepRunner(Protocol):
    """How each kind of step is performed (directly, or as Prefect tasks); each returns its outcome's detail."""

    def perform(self, step: UploadBlob | PullModel | CreateModel | UnloadModel | DeleteModel) -> str: ...

    def preload(self, step: PreloadModel) -> None: ...

    def wait_loaded(self, step: PreloadModel) -> RunningModel: ...


def perform(
    api: OllamaAPI, step: UploadBlob | PullModel | CreateModel | UnloadModel | DeleteModel,
    progress: ProgressCallback | None = None,
) -> str:  # fmt: skip
    """One step that is a single call to the endpoint; the detail for the report."""
    if isinstance(step, UploadBlob):
        sent = api.upload_blob(Path(step.local_path), step.digest, progress)
        return f"{sent} bytes, sha256 {step.digest.removeprefix('sha256:')[:12]} verified by the node"
    if isinstance(step, PullModel):
        return f"pulled ({len(api.pull(step.tag, progress))} progress lines)"
    if isinstance(step, CreateModel):
        return f"created ({len(api.create(step.request))} progress lines)"
    if isinstance(step, UnloadModel):
        api.unload(step.model)
        return "unloaded"
    api.delete(step.model)
    return "deleted"


def wait_loaded(api: OllamaAPI, model: str, wait: LoadWait) -> RunningModel:
    """Poll `/api/ps` until it lists `model` (only looks: safe to retry).

    Raises:
        OllamaError: not listed within `wait.timeout_s`.
    """
    deadline = time.monotonic() + wait.timeout_s
    while True:
        found = api.running().get(model)
        if found is not None:
            return found
        if time.monotonic() >= deadline:
            raise OllamaError(f"{api.where}: {model} was loaded but is not in /api/ps after {wait.timeout_s:g} s")
        time.sleep(wait.interval_s)


@dataclass(frozen=True)
class ApiRunner:
    """Performs steps by calling the endpoints directly."""

    apis: Mapping[str, OllamaAPI]
    settings: OllamaDeploySettings
    progress: ProgressCallback | None = None

    def perform(self, step: UploadBlob | PullModel | CreateModel | UnloadModel | DeleteModel) -> str:
        return perform(self.apis[step.endpoint], step, self.progress)

    def preload(self, step: PreloadModel) -> None:
        self.apis[step.endpoint].load(step.model, step.keep_alive)

    def wait_loaded(self, step: PreloadModel) -> RunningModel:
        return wait_loaded(self.apis[step.endpoint], step.model, self.settings.load_wait)


def _one(step: OllamaStep, runner: OllamaStepRunner) -> StepOutcome:
    started = time.perf_counter()
    try:
        if isinstance(step, PreloadModel):
            runner.preload(step)
            found = runner.wait_loaded(step)
            detail = f"in /api/ps, size_vram {found.size_vram / _MIB:.1f} MiB of {found.size / _MIB:.1f} MiB"
        else:
            detail = runner.perform(step)
        status = StepStatus.DONE
    except OllamaError as exc:
        detail, status = str(exc), StepStatus.FAILED
    seconds = round(time.perf_counter() - started, 2)
    return StepOutcome(summary=step.summary(), status=status, detail=detail, seconds=seconds)


def apply(plan: OllamaPlan, runner: OllamaStepRunner) -> OllamaRolloutReport:
    """Perform the plan's steps in order, stopping at the first that fails (the rest are NOT_RUN).

    Nothing is rolled back: every step leaves the node consistent on its own (a failed upload
    keeps nothing, a failed create keeps the old model), and a re-run plans what is still missing.
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
            failure = f"{step.summary()}: {outcome.detail}"
            log.warning("node %s: %s", plan.node, failure)
    return OllamaRolloutReport(node=plan.node, plan=plan, outcomes=outcomes, failure=failure)
