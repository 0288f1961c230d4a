"""The Ollama part of the `rollout` flow: upload, create, unload, preload one at a time, check, as task runs.

The order of events is homelab's own `apply` (the same as `homelab rollout`); this module
hands it a runner whose steps are Prefect tasks, so each step is a task run in the UI with
retries on the safe ones only (see `tasks/ollama.py`). After the steps, `/api/ps` is
checked against the VRAM plan, and a markdown artifact (key `ollama-rollout`) says what
changed, what did not and why, and how each load compares with the plan.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from prefect.utilities.annotations import quote

from homelab.errors import OllamaError
from homelab.inventory import Node
from homelab.ollama.api import RunningModel
from homelab.ollama.apply import OllamaRolloutReport, apply
from homelab.ollama.desired import desired_ollama, ollama_endpoints
from homelab.ollama.plan import CreateModel, DeleteModel, PreloadModel, PullModel, UnloadModel, UploadBlob
from homelab.ollama.settings import OllamaDeploySettings
from homelab.rollout.ollama import ollama_vram_lines
from homelab.vram.node_plan import NodeVramPlan
from tasks.ollama import (
    change_ollama_model,
    check_ollama_loads,
    plan_ollama_rollout,
    preload_ollama_model,
    publish_ollama_rollout_artifact,
    transfer_ollama_model,
    wait_for_ollama_model,
)

__all__ = ["OllamaTaskRunner", "roll_out_ollama"]


@dataclass(frozen=True)
class OllamaTaskRunner:
    """homelab's `OllamaStepRunner`, each step a Prefect task run."""

    node: Node
    settings: OllamaDeploySettings

    def perform(self, step: UploadBlob | PullModel | CreateModel | UnloadModel | DeleteModel) -> str:
        if isinstance(step, UploadBlob | PullModel):
            return transfer_ollama_model(self.node, step, self.settings)
        return change_ollama_model(self.node, step, self.settings)

    def preload(self, step: PreloadModel) -> None:
        preload_ollama_model(self.node, step, self.settings)

    def wait_loaded(self, step: PreloadModel) -> RunningModel:
        return wait_for_ollama_model(self.node, step, self.settings)


def roll_out_ollama(
    target: Node,
    ggufs: Mapping[str, Path],
    vram: NodeVramPlan,
    settings: OllamaDeploySettings,
    *,
    dry_run: bool = False,
    prune: bool = False,
) -> OllamaRolloutReport | None:
    """Plan and (unless `dry_run`) apply the node's Ollama models, then publish the artifact.

    Returns:
        The report, or None when the node has no models to deploy to Ollama.

    Raises:
        OllamaError: a step failed (the artifact says which and why); the rest were not run.
    """
    if not ollama_endpoints(target):
        return None
    desired = desired_ollama(target, ggufs, vram)
    steps = plan_ollama_rollout(target, desired, settings, prune)
    lines = ollama_vram_lines(desired, vram)
    if dry_run:
        report = OllamaRolloutReport(node=target.name, dry_run=True, plan=steps, vram=lines)
    else:
        applied = apply(steps, OllamaTaskRunner(target, settings))
        checks = check_ollama_loads(target, desired, settings) if applied.ok else []
        report = applied.model_copy(update={"vram": lines, "checks": checks})
    publish_ollama_rollout_artifact(quote(report))
    if not report.ok:
        raise OllamaError(f"Ollama rollout on {target.name} failed: {report.failure}")
    return report
