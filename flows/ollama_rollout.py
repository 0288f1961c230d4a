"""The Ollama part of the `rollout` flow: homelab's `roll_out_ollama` with a runner whose parts are task runs.

The sequence (plan, upload, create, unload, preload one at a time, `/api/ps` against the plan)
is homelab's own (`homelab.rollout.ollama`), the same as `homelab rollout`; this module only
says how each part runs: as a Prefect task, with retries on the safe ones only (see
`tasks/ollama.py`). When the runner hears the part's report it publishes a markdown artifact
(key `ollama-rollout`): what changed, what did not and why, and how each load compares with
the plan.
"""

from __future__ import annotations

from dataclasses import dataclass

from flows.quoting import quoted
from homelab.inventory import Node
from homelab.ollama.api import RunningModel
from homelab.ollama.apply import OllamaRolloutReport
from homelab.ollama.check import LoadCheck
from homelab.ollama.desired import OllamaDesired
from homelab.ollama.plan import (
    CreateModel,
    DeleteModel,
    OllamaPlan,
    PreloadModel,
    PullModel,
    UnloadModel,
    UploadBlob,
)
from homelab.ollama.settings import OllamaDeploySettings
from tasks.ollama import (
    change_ollama_model,
    check_ollama_loads,
    plan_ollama_rollout,
    preload_ollama_model,
    publish_ollama_rollout_artifact,
    transfer_ollama_model,
    wait_for_ollama_model,
)

__all__ = ["OllamaTaskRunner"]


@dataclass(frozen=True)
class OllamaTaskRunner:
    """homelab's `OllamaRunner`, each part a Prefect task run."""

    node: Node
    settings: OllamaDeploySettings

    def plan(self, desired: OllamaDesired, prune: bool) -> OllamaPlan:
        return plan_ollama_rollout(self.node, desired, self.settings, prune)

    def perform(self, step: UploadBlob | PullModel | CreateModel | UnloadModel | DeleteModel) -> str:
        if isinstance(step, UploadBlob | PullModel):
            return transfer_ollama_model(self.node, step, self.settings)
        return change_ollama_model(self.node, step, self.settings)

    def preload(self, step: PreloadModel) -> None:
        preload_ollama_model(self.node, step, self.settings)

    def wait_loaded(self, step: PreloadModel) -> RunningModel:
        return wait_for_ollama_model(self.node, step, self.settings)

    def check(self, desired: OllamaDesired) -> list[LoadCheck]:
        return check_ollama_loads(self.node, desired, self.settings)

    def finished(self, report: OllamaRolloutReport) -> None:
        publish_ollama_rollout_artifact(quoted(report))
