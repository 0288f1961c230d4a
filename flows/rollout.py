"""The `rollout` flow: a node's Ollama models and llama.cpp containers put in the cluster file's state.

The same order as `homelab rollout` (`homelab.rollout.node`), each part a set of task runs:

1. `check-rollout-inputs`: every model file found and the node's VRAM plan made (GPU layers
   per container, `num_gpu` per Ollama model); a missing file, a model that does not fit or
   a gateway config that could not be written ends the run before anything changed;
2. the Ollama endpoints (`flows/ollama_rollout.py`: upload, create, unload what left the plan,
   preload one at a time, `/api/ps` against the plan, artifact `ollama-rollout`); when that
   fails, the run ends Failed and no container is touched;
3. the containers: homelab's own `apply` with a runner whose steps are Prefect tasks
   (retries on the safe steps only, see `tasks/rollout.py`; for an ssh:// engine each task
   reads the node's key from `vault_block` itself), one at a time behind the health
   gate, a failed one rolled back; then a sweep of the node and the `model-rollout` artifact
   (what changed, what did not and why, a failed container's last log lines);
4. when all succeeded, the LiteLLM config regenerated (if its path is given).

The run ends Failed with the first failure's reason (artifacts are published first). A dry
run changes nothing and needs nothing live: it previews the node from the cluster file
(artifact `rollout-preview`: containers in start order with their gates, Ollama models) and
plans each part whose node answers; one that does not is marked not checked, with why, and
the run still completes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from prefect import flow
from prefect.utilities.annotations import quote

from flows.ollama_rollout import roll_out_ollama
from homelab.docker_ops.apply import RolloutReport, apply
from homelab.docker_ops.gate import GateResult
from homelab.docker_ops.plan import ContainerStep, CopyModel, EnsureVolume
from homelab.docker_ops.serial import DEFAULT_ROLLOUT_SETTINGS, Pending, RolloutSettings
from homelab.errors import ContainerStepFailed, DockerOpError, HomelabError, OllamaError
from homelab.inventory import Inventory, Node, ProbeSettings, load_inventory
from homelab.ollama.settings import DEFAULT_OLLAMA_DEPLOY_SETTINGS, OllamaDeploySettings
from homelab.rollout.containers import probe_settings_for
from homelab.rollout.node import NodeInputs, NodeRolloutReport, preview
from tasks.access import EngineLogin, engine_login
from tasks.rollout import (
    check_rollout_inputs,
    copy_model_into_volume,
    ensure_model_volume,
    keep_new_container,
    plan_node_rollout,
    publish_preview_artifact,
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
    login: EngineLogin | None = None

    def volume_step(self, step: EnsureVolume | CopyModel) -> str:
        if isinstance(step, EnsureVolume):
            return ensure_model_volume(self.node, step, login=self.login)
        return copy_model_into_volume(self.node, step, self.settings, login=self.login)

    def begin(self, step: ContainerStep) -> Pending:
        state = start_container_step(self.node, step, self.settings, login=self.login, return_state=True)
        if state.is_failed():
            raise ContainerStepFailed(
                state.message or "starting the container failed", state.result(raise_on_failure=False)
            )
        return state.result()

    def gate(self, pending: Pending) -> GateResult:
        return wait_for_container_health(self.node, pending, self._probe(pending), self.settings, login=self.login)

    def finish(self, pending: Pending) -> None:
        keep_new_container(self.node, pending, self.settings, login=self.login)

    def roll_back(self, pending: Pending) -> GateResult | None:
        return roll_back_container(self.node, pending, self._probe(pending), self.settings, login=self.login)

    def _probe(self, pending: Pending) -> ProbeSettings:
        return self.probe[pending.step.spec.endpoint]


def _roll_out_containers(
    inv: Inventory, target: Node, inputs: NodeInputs, settings: RolloutSettings, login: EngineLogin, dry_run: bool
) -> RolloutReport:
    """The containers' part: plan, then (unless `dry_run`) apply, sweep the node, publish the artifact.

    Raises:
        DockerOpError: a container failed (after rolling back); the artifact says which and why.
    """
    steps = plan_node_rollout(target, inputs.sources, settings, inputs.vram.gpu_layers, login=login)
    if dry_run:
        report = RolloutReport(node=target.name, dry_run=True, plan=steps, vram=inputs.vram.lines)
        publish_rollout_artifact(quote(report), None)
        return report
    applied = apply(steps, TaskRunner(target, probe_settings_for(inv, target), settings, login))
    report = applied.model_copy(update={"vram": inputs.vram.lines})
    # Also after a rollback: the sweep then shows whether the old containers serve again.
    publish_rollout_artifact(quote(report), sweep_rolled_out_node(quote(inv), target))
    if not report.ok:
        raise DockerOpError(f"rollout on {target.name} failed: {report.failure}")
    return report


def _dry_run(
    inv: Inventory,
    target: Node,
    inputs: NodeInputs,
    settings: RolloutSettings,
    login: EngineLogin,
    ollama: OllamaDeploySettings,
    prune: bool,
) -> NodeRolloutReport:
    """The node from the file, then each part planned against its node, or why it could not be."""
    report = NodeRolloutReport(node=target.name, dry_run=True, preview=preview(inv, target, inputs, settings))
    try:
        part = roll_out_ollama(target, inputs.ggufs, inputs.vram, ollama, dry_run=True, prune=prune)
        report = report.model_copy(update={"ollama": part})
    except OllamaError as exc:
        report = report.model_copy(update={"ollama_not_checked": str(exc)})
    if inputs.sources:
        try:
            containers = _roll_out_containers(inv, target, inputs, settings, login, dry_run=True)
            report = report.model_copy(update={"containers": containers})
        except HomelabError as exc:  # the engine, or the key to log in to it
            report = report.model_copy(update={"engine_not_checked": str(exc)})
    publish_preview_artifact(quote(report))
    return report


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
    vault_block: str | None = None,
) -> NodeRolloutReport:
    """Roll out the Ollama models and llama.cpp containers the inventory gives `node`.

    Args:
        inventory: path of the cluster file.
        node: the node to roll out.
        models_dir: folder on the worker's machine holding the GGUF files by `model_file` name.
        node_models_dir: or: folder on the node itself holding them.
        gateway_config: the LiteLLM proxy's config file, regenerated from the cluster file
            after a successful rollout (left alone after a failed one).
        dry_run: preview the node from the file and plan each part whose node answers;
            change nothing.
        settings: helper image (`settings.helper.image`, default busybox:stable), container
            defaults (restart policy, extra llama-server arguments) and the health gate.
        prune: delete the models an Ollama endpoint has that the cluster file no longer names
            (they are unloaded either way; a model it names is never deleted).
        ollama: timeouts, the wait for `/api/ps`, and the tolerance of the VRAM check.
        vault_block: the Vault Secrets block that reads the node's SSH key for an ssh://
            engine (its `ssh.key_secret`); each task reads the key itself, so the key is never
            a parameter of this flow or of a task.

    Returns:
        Both parts' reports (each also an artifact: `ollama-rollout`, `model-rollout`) and what
        became of the gateway config.

    Raises:
        ModelSourceMissing, VramError, FileAccessError, SecretsError: bad input (a gateway
            config that cannot be written, a key secret the cluster file lacks); nothing was changed.
        OllamaError: the Ollama part failed; the containers were not touched.
        DockerOpError: a container failed (after rolling back).
    """
    inv = load_inventory(Path(inventory))
    target = _node(inv, node)
    local = Path(models_dir) if models_dir else None
    gateway = Path(gateway_config) if gateway_config else None
    login = engine_login(inv, target, vault_block)
    inputs = check_rollout_inputs(quote(inv), target, local, node_models_dir, gateway)
    if dry_run:
        return _dry_run(inv, target, inputs, settings, login, ollama, prune)
    ollama_part = roll_out_ollama(target, inputs.ggufs, inputs.vram, ollama, prune=prune)
    containers = _roll_out_containers(inv, target, inputs, settings, login, dry_run=False) if inputs.sources else None
    regenerated = update_gateway_config(quote(inv), gateway) if gateway else None
    return NodeRolloutReport(node=target.name, ollama=ollama_part, containers=containers, gateway=regenerated)
