"""The `rollout` flow: models into named volumes, containers started one at a time behind health gates, rollback.

First the node's VRAM plan: the GPU layers of each container, and a refusal, before anything
changes, of a model that does not fit. The order of events is then homelab's own `apply` (one implementation for the CLI and the flow);
this flow hands it a runner whose steps are Prefect tasks, so each step is a task run in the
UI, and retries sit on the safe steps only (see `tasks/rollout.py`). After the steps, the
LiteLLM config is regenerated when its path is given, a sweep of the node checks every endpoint, and a markdown artifact (key `model-rollout`) says what
changed, what did not and why, and what failed with the container's last log lines.

Failure semantics: a container that fails its gate is rolled back and ends the rollout; the
flow run then ends Failed with that reason (the artifact is published first). A dry run plans,
publishes the plan, and changes nothing.

A node whose Ollama endpoints have models to deploy (`deploy:` in the cluster file) gets the
Ollama path first (`flows/ollama_rollout.py`: upload, create, unload what left the plan,
preload one at a time, `/api/ps` against the plan, artifact `ollama-rollout`); when it fails,
the flow ends Failed before any container is touched. Such a node's report is a
`NodeRolloutReport` holding both parts; a node with containers only keeps its `RolloutReport`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from prefect import flow
from prefect.utilities.annotations import quote

from flows.ollama_rollout import roll_out_ollama
from homelab.docker_ops.apply import RolloutReport, apply
from homelab.docker_ops.connect import SSHAccess
from homelab.docker_ops.gate import GateResult
from homelab.docker_ops.plan import ContainerStep, CopyModel, EnsureVolume
from homelab.docker_ops.rollout import probe_settings_for
from homelab.docker_ops.serial import DEFAULT_ROLLOUT_SETTINGS, ContainerStepFailed, Pending, RolloutSettings
from homelab.docker_ops.sources import model_sources
from homelab.errors import DockerOpError, HomelabError
from homelab.inventory import Inventory, Node, ProbeSettings, load_inventory
from homelab.ollama_deploy.desired import ollama_endpoints
from homelab.ollama_deploy.settings import DEFAULT_OLLAMA_DEPLOY_SETTINGS, OllamaDeploySettings
from homelab.rollout_report import NodeRolloutReport
from tasks.rollout import (
    copy_model_into_volume,
    ensure_model_volume,
    keep_new_container,
    plan_node_rollout,
    plan_rollout_vram,
    publish_rollout_artifact,
    roll_back_container,
    start_container_step,
    sweep_rolled_out_node,
    update_gateway_config,
    wait_for_container_health,
)

__all__ = ["TaskRunner", "rollout"]


@dataclass(frozen=True)
class TaskRunner:
    """homelab's `StepRunner`, each step a Prefect task run."""

    node: Node
    probe: dict[str, ProbeSettings]
    settings: RolloutSettings
    ssh: SSHAccess | None = None

    def volume_step(self, step: EnsureVolume | CopyModel) -> str:
        if isinstance(step, EnsureVolume):
            return ensure_model_volume(self.node, step, ssh=self.ssh)
        return copy_model_into_volume(self.node, step, self.settings, ssh=self.ssh)

    def begin(self, step: ContainerStep) -> Pending:
        state = start_container_step(self.node, step, self.settings, ssh=self.ssh, return_state=True)
        if state.is_failed():
            raise ContainerStepFailed(
                state.message or "starting the container failed", state.result(raise_on_failure=False)
            )
        return state.result()

    def gate(self, pending: Pending) -> GateResult:
        return wait_for_container_health(self.node, pending, self._probe(pending), self.settings, ssh=self.ssh)

    def finish(self, pending: Pending) -> None:
        keep_new_container(self.node, pending, self.settings, ssh=self.ssh)

    def roll_back(self, pending: Pending) -> GateResult | None:
        return roll_back_container(self.node, pending, self._probe(pending), self.settings, ssh=self.ssh)

    def _probe(self, pending: Pending) -> ProbeSettings:
        return self.probe[pending.step.spec.endpoint]


def _node(inv: Inventory, name: str) -> Node:
    for node in inv.nodes:
        if node.name == name:
            return node
    raise HomelabError(f"no node {name!r} in the inventory (nodes: {', '.join(n.name for n in inv.nodes)})")


@flow(
    name="rollout",
    description="Put a node's models in place: llama.cpp containers one at a time, Ollama models created and preloaded one at a time.",
    persist_result=False,
)
def rollout(
    inventory: str = "cluster.yaml",
    node: str = "",
    models_dir: str | None = None,
    node_models_dir: str | None = None,
    gateway_config: str | None = None,
    dry_run: bool = False,
    settings: RolloutSettings = DEFAULT_ROLLOUT_SETTINGS,
    prune: bool = False,
    ollama: OllamaDeploySettings = DEFAULT_OLLAMA_DEPLOY_SETTINGS,
) -> RolloutReport | NodeRolloutReport:
    """Roll out the models and containers the inventory gives `node`.

    Args:
        inventory: path of the cluster file.
        node: the node to roll out.
        models_dir: folder on the worker's machine holding the GGUF files by `model_file` name.
        node_models_dir: or: folder on the node itself holding them.
        gateway_config: the LiteLLM proxy's config file, regenerated from the cluster file
            after a successful rollout (left alone after a failed one).
        dry_run: plan and publish the plan; change nothing.
        settings: helper image (`settings.helper.image`, default busybox:stable), container
            defaults (restart policy, extra llama-server arguments) and the health gate.
        prune: delete the models an Ollama endpoint has that the cluster file no longer names
            (they are unloaded either way; a model it names is never deleted).
        ollama: timeouts, the wait for `/api/ps`, and the tolerance of the VRAM check.

    Returns:
        The rollout report (also summarised in the `model-rollout` artifact); for a node with
        models to deploy to Ollama, a `NodeRolloutReport` with the Ollama part (artifact
        `ollama-rollout`) and the containers' report.

    Raises:
        DockerOpError: the rollout failed (after rolling back); the flow run ends Failed.
        OllamaError: the Ollama part failed; the containers were not touched.
    """
    inv = load_inventory(Path(inventory))
    target = _node(inv, node)
    files = sorted({e.container.model_file for e in target.endpoints if e.container})
    local = Path(models_dir) if models_dir else None
    if files or not ollama_endpoints(target):
        sources = model_sources(files, models_dir=local, node_models_dir=node_models_dir)
    vram = plan_rollout_vram(quote(inv), target, local)
    ollama_report = roll_out_ollama(target, local, vram, ollama, dry_run=dry_run, prune=prune)
    if ollama_report is not None and not files:
        return NodeRolloutReport(node=target.name, dry_run=dry_run, ollama=ollama_report)
    steps = plan_node_rollout(target, sources, settings, vram.gpu_layers)
    if dry_run:
        report = RolloutReport(node=target.name, dry_run=True, plan=steps, vram=vram.lines)
        publish_rollout_artifact(quote(report), None)
        return report if ollama_report is None else NodeRolloutReport(
            node=target.name, dry_run=True, ollama=ollama_report, containers=report
        )
    applied = apply(steps, TaskRunner(target, probe_settings_for(inv, target), settings))
    gateway = update_gateway_config(quote(inv), Path(gateway_config)) if gateway_config and applied.ok else None
    report = applied.model_copy(update={"vram": vram.lines, "gateway": gateway})
    # Also after a rollback: the sweep then shows whether the old containers serve again.
    swept = sweep_rolled_out_node(quote(inv), target)
    publish_rollout_artifact(quote(report), swept)
    if not report.ok:
        raise DockerOpError(f"rollout on {target.name} failed: {report.failure}")
    return report if ollama_report is None else NodeRolloutReport(node=target.name, ollama=ollama_report, containers=report)
