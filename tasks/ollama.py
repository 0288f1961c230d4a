"""Prefect tasks of the Ollama rollout: each opens a client to the step's endpoint, makes one homelab call, returns.

Retries sit only on steps that are safe to repeat (STYLE §5): planning and checking only look;
an upload is verified by the node, and a cut one keeps nothing, so sending it again is clean;
a pull resumes; waiting for `/api/ps` only looks. Creating, loading, unloading and deleting
change the node, so they run once and a failure stops the rollout with its reason.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing, contextmanager

from prefect import task
from prefect.artifacts import create_markdown_artifact

from homelab.inventory import Node
from homelab.ollama.api import OllamaAPI, RunningModel, open_ollama_client
from homelab.ollama.apply import OllamaRolloutReport, perform, wait_loaded
from homelab.ollama.check import LoadCheck
from homelab.ollama.desired import OllamaDesired
from homelab.ollama.plan import CreateModel, DeleteModel, OllamaPlan, PreloadModel, PullModel, UnloadModel, UploadBlob
from homelab.ollama.settings import OllamaDeploySettings
from homelab.rollout.ollama import check_ollama_node, ollama_apis, plan_ollama_node
from tasks.options import task_options
from tasks.rollout import steps_markdown

__all__ = [
    "OLLAMA_ARTIFACT_KEY",
    "change_ollama_model",
    "check_ollama_loads",
    "ollama_rollout_markdown",
    "plan_ollama_rollout",
    "preload_ollama_model",
    "publish_ollama_rollout_artifact",
    "transfer_ollama_model",
    "wait_for_ollama_model",
]

OLLAMA_ARTIFACT_KEY = "ollama-rollout"


@contextmanager
def _api(node: Node, endpoint: str, url: str, settings: OllamaDeploySettings) -> Iterator[OllamaAPI]:
    with closing(open_ollama_client(url, settings.timeouts)) as client:
        yield OllamaAPI(client, f"{node.name}/{endpoint}", settings.timeouts)


@task(name="plan-ollama-rollout", task_run_name="plan-ollama-{node.name}", **task_options(idempotent=True))
def plan_ollama_rollout(node: Node, desired: OllamaDesired, settings: OllamaDeploySettings, prune: bool) -> OllamaPlan:
    """Hash the GGUF sources, ask each endpoint what it holds, plan (only looks)."""
    with ollama_apis(node, settings) as apis:
        return plan_ollama_node(apis, desired, prune=prune)


@task(
    name="transfer-ollama-model", task_run_name="transfer-{step.endpoint}-{step.kind}", **task_options(idempotent=True)
)
def transfer_ollama_model(node: Node, step: UploadBlob | PullModel, settings: OllamaDeploySettings) -> str:
    """Upload a GGUF blob (streamed, verified by the node) or pull a tag."""
    with _api(node, step.endpoint, step.url, settings) as api:
        return perform(api, step)


@task(name="change-ollama-model", task_run_name="{step.kind}-{step.model}", **task_options(idempotent=False))
def change_ollama_model(
    node: Node, step: CreateModel | UnloadModel | DeleteModel, settings: OllamaDeploySettings
) -> str:
    """Create, unload or delete a model."""
    with _api(node, step.endpoint, step.url, settings) as api:
        return perform(api, step)


@task(name="preload-ollama-model", task_run_name="preload-{step.model}", **task_options(idempotent=False))
def preload_ollama_model(node: Node, step: PreloadModel, settings: OllamaDeploySettings) -> None:
    """Ask the endpoint to load the model (an empty generate with the inventory's keep_alive)."""
    with _api(node, step.endpoint, step.url, settings) as api:
        api.load(step.model, step.keep_alive)


@task(name="wait-for-ollama-model", task_run_name="wait-{step.model}", **task_options(idempotent=True))
def wait_for_ollama_model(node: Node, step: PreloadModel, settings: OllamaDeploySettings) -> RunningModel:
    """Wait until `/api/ps` lists the model (only looks)."""
    with _api(node, step.endpoint, step.url, settings) as api:
        return wait_loaded(api, step.model, settings.load_wait)


@task(name="check-ollama-loads", task_run_name="check-ollama-{node.name}", **task_options(idempotent=True))
def check_ollama_loads(node: Node, desired: OllamaDesired, settings: OllamaDeploySettings) -> list[LoadCheck]:
    """Each planned model in `/api/ps`, its `size_vram` against the VRAM plan (only looks)."""
    with ollama_apis(node, settings) as apis:
        return check_ollama_node(apis, desired, settings)


def ollama_rollout_markdown(report: OllamaRolloutReport) -> str:
    """The artifact's text: what changed, what did not and why, the loads against the plan, any failure."""
    lines = steps_markdown("Ollama rollout", report)
    if report.checks:
        lines += ["", "Loaded (/api/ps against the plan):", *(f"- {check.summary()}" for check in report.checks)]
    if report.failure:
        lines += ["", f"**Failure:** {report.failure}"]
    return "\n".join(lines)


@task(name="publish-ollama-rollout-artifact", **task_options(idempotent=False))
def publish_ollama_rollout_artifact(report: OllamaRolloutReport) -> None:
    """A markdown artifact (key `ollama-rollout`) summarising what changed."""
    create_markdown_artifact(
        markdown=ollama_rollout_markdown(report),
        key=OLLAMA_ARTIFACT_KEY,
        description=f"Ollama rollout on {report.node}",
    )
