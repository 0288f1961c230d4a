"""The `rollout` flow: a node's Ollama models and llama.cpp containers put in the cluster file's state.

homelab's own sequence (`homelab.rollout.node.roll_out`, the same as `homelab rollout`) with
runners whose parts are task runs; this module adds only the tasks, artifacts and the run's state:

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

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from prefect import flow

from flows.ollama_rollout import OllamaTaskRunner
from flows.quoting import quoted
from homelab.docker_ops.apply import RolloutReport
from homelab.docker_ops.gate import GateResult
from homelab.docker_ops.plan import ContainerStep, CopyModel, EnsureVolume, Plan
from homelab.docker_ops.serial import DEFAULT_ROLLOUT_SETTINGS, Pending, RolloutSettings
from homelab.docker_ops.sources import ModelSource
from homelab.errors import ContainerStepFailed, DockerOpError, HomelabError, OllamaError
from homelab.inventory import Inventory, Node, ProbeSettings, load_inventory
from homelab.ollama.settings import DEFAULT_OLLAMA_DEPLOY_SETTINGS, OllamaDeploySettings
from homelab.rollout.containers import probe_settings_for
from homelab.rollout.node import NodeRolloutReport, roll_out
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

__all__ = ["FlowRunner", "TaskRunner", "rollout"]


@dataclass(frozen=True)
class TaskRunner:
    """homelab's `ContainerRunner`, each part a Prefect task run."""

    inv: Inventory
    node: Node
    probe: dict[str, ProbeSettings]
    settings: RolloutSettings
    login: EngineLogin | None = None

    def plan(self, sources: Mapping[str, ModelSource], gpu_layers: Mapping[str, int]) -> Plan:
        return plan_node_rollout(self.node, dict(sources), self.settings, dict(gpu_layers), login=self.login)

    def volume_step(self, step: EnsureVolume | CopyModel) -> str:
        if isinstance(step, EnsureVolume):
            return ensure_model_volume(self.node, step, login=self.login)
        return copy_model_into_volume(self.node, step, self.settings, login=self.login)

    def begin(self, step: ContainerStep) -> Pending:
        state = start_container_step(self.node, step, self.settings, login=self.login, return_state=True)
        done = state.result(raise_on_failure=False)
        if isinstance(done, BaseException):
            raise done  # the step never began (no engine, say): nothing to roll back
        assert isinstance(done, Pending)  # Prefect hands back a returned state's data, not the state
        if state.is_failed():  # the task's own Failed state: half-way, with what was done to undo
            raise ContainerStepFailed(state.message or "starting the container failed", done)
        return done

    def gate(self, pending: Pending) -> GateResult:
        return wait_for_container_health(self.node, pending, self._probe(pending), self.settings, login=self.login)

    def finish(self, pending: Pending) -> None:
        keep_new_container(self.node, pending, self.settings, login=self.login)

    def roll_back(self, pending: Pending) -> GateResult | None:
        return roll_back_container(self.node, pending, self._probe(pending), self.settings, login=self.login)

    def finished(self, report: RolloutReport) -> None:
        # Also after a rollback: the sweep then shows whether the old containers serve again.
        swept = None if report.dry_run else sweep_rolled_out_node(quoted(self.inv), self.node)
        publish_rollout_artifact(quoted(report), swept)

    def _probe(self, pending: Pending) -> ProbeSettings:
        return self.probe[pending.step.spec.endpoint]


@dataclass(frozen=True)
class FlowRunner:
    """homelab's `NodeRunner` for the flow: each part's runner made of tasks, each task opening its own connection."""

    inv: Inventory
    node: Node
    settings: RolloutSettings
    ollama: OllamaDeploySettings
    login: EngineLogin | None = None

    @contextmanager
    def ollama_part(self) -> Iterator[OllamaTaskRunner]:
        yield OllamaTaskRunner(self.node, self.ollama)

    @contextmanager
    def container_part(self) -> Iterator[TaskRunner]:
        yield TaskRunner(self.inv, self.node, probe_settings_for(self.inv, self.node), self.settings, self.login)

    def regenerate_gateway(self, path: Path) -> str:
        return update_gateway_config(quoted(self.inv), path)


def _raise_on_failure(report: NodeRolloutReport) -> None:
    """End the run Failed with the failed part's reason (its artifact is published by then).

    Raises:
        OllamaError: the Ollama part failed; the containers were not touched.
        DockerOpError: a container failed (after rolling back).
    """
    if report.ollama is not None and report.ollama.failure:
        raise OllamaError(f"Ollama rollout on {report.node} failed: {report.ollama.failure}")
    if report.containers is not None and report.containers.failure:
        raise DockerOpError(f"rollout on {report.node} failed: {report.containers.failure}")


def _node(inv: Inventory, name: str) -> Node:
    for node in inv.nodes:
        if node.name == name:
            return node
    raise HomelabError(f"no node {name!r} in the inventory (nodes: {', '.join(n.name for n in inv.nodes)})")


@flow(
    name="rollout",
    description=(
        "Put a node's models in place: llama.cpp containers one at a time, "
        "Ollama models created and preloaded one at a time."
    ),
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
            engine (its `ssh.key_secret`) and the hub tokens of models' `source:`
            (`token_secret`); each task reads the secret itself, so it is never a parameter
            of this flow or of a task. Sources are fetched by the worker: the hub from its
            HF_ENDPOINT, https:// into its HOMELAB_MODEL_CACHE.

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
    inputs = check_rollout_inputs(quoted(inv), target, local, node_models_dir, gateway, vault_block)
    runner = FlowRunner(inv, target, settings, ollama, login)
    report = roll_out(inv, target, inputs, settings, runner, dry_run=dry_run, prune=prune, gateway_config=gateway)
    if dry_run:
        publish_preview_artifact(quoted(report))
    _raise_on_failure(report)
    return report
