"""Prefect tasks of the model rollout: each opens the node's engine, makes one homelab call, returns its model.

Retries sit only on steps that are safe to repeat (STYLE §5: only idempotent tasks retry):
planning only looks; creating a volume that exists does nothing; a copy starts over from an
empty temporary file and never touches the final name; waiting for health only looks;
finishing removes what is already gone without complaint. Starting a container and rolling
one back change what runs, so they run once, and a failure there goes to the rollback, not
to a retry.

Each task opens its own engine connection (as prefect-docker's tasks open a client from their
block), so no client object crosses task boundaries; for an ssh:// engine it reads the node's
key from the secrets store itself (`tasks.access.EngineLogin`), so no key is a task parameter.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.client.schemas.objects import State
from prefect.states import Failed

from homelab.docker_ops import serial
from homelab.docker_ops.apply import RolloutReport
from homelab.docker_ops.connect import Engine, open_engine
from homelab.docker_ops.gate import GateResult
from homelab.docker_ops.plan import ContainerStep, CopyModel, EnsureVolume, Plan
from homelab.docker_ops.serial import Pending, RolloutSettings
from homelab.docker_ops.sources import ModelSource
from homelab.docker_ops.volumes import copy_into_volume, ensure_volume
from homelab.errors import ContainerStepFailed
from homelab.gateway.config import regenerate_config
from homelab.health.http import open_probe_client
from homelab.health.sweep import SweepReport, sweep
from homelab.inventory import Inventory, Node, ProbeSettings
from homelab.ollama.apply import OllamaRolloutReport
from homelab.rollout.containers import plan_node
from homelab.rollout.node import NodeInputs, NodeRolloutReport, node_inputs
from homelab.sources.fetch import DEFAULT_CACHE_DIR, Fetcher, open_fetch_client
from homelab.sources.hub import DEFAULT_HUB_ENDPOINT
from homelab.sources.spec import check_hub_endpoint
from tasks.access import EngineLogin, secret_reader
from tasks.options import task_options

__all__ = [
    "ARTIFACT_KEY",
    "PREVIEW_ARTIFACT_KEY",
    "check_rollout_inputs",
    "copy_model_into_volume",
    "ensure_model_volume",
    "keep_new_container",
    "plan_node_rollout",
    "preview_markdown",
    "publish_preview_artifact",
    "publish_rollout_artifact",
    "roll_back_container",
    "rollout_markdown",
    "start_container_step",
    "steps_markdown",
    "sweep_rolled_out_node",
    "update_gateway_config",
    "wait_for_container_health",
]

ARTIFACT_KEY = "model-rollout"
PREVIEW_ARTIFACT_KEY = "rollout-preview"


@contextmanager
def _engine(node: Node, login: EngineLogin | None) -> Iterator[Engine]:
    # The key is read here, inside the task run, so it is never a task parameter.
    with closing(open_engine(node, ssh=login.access(node) if login else None)) as engine:
        yield engine


@task(name="check-rollout-inputs", task_run_name="inputs-{node.name}", **task_options(idempotent=False))
def check_rollout_inputs(
    inv: Inventory,
    node: Node,
    models_dir: Path | None,
    node_models_dir: str | None,
    gateway_config: Path | None = None,
    vault_block: str | None = None,
) -> NodeInputs:
    """Fetch the models that have a `source:` (the hub from the worker's HF_ENDPOINT into its
    HF_HUB_CACHE, https:// into HOMELAB_MODEL_CACHE; a token read here, never a parameter), find
    every other model file, place the node's models on its GPUs, check the gateway config can be
    written. A missing file, a refused download, a model that does not fit or a gateway config
    that cannot be written ends the rollout before anything changed; retrying would only refuse
    again."""
    fetcher = Fetcher(
        client=open_fetch_client(),
        cache_dir=Path(os.environ.get("HOMELAB_MODEL_CACHE", str(DEFAULT_CACHE_DIR))).expanduser(),
        hub_endpoint=check_hub_endpoint(os.environ.get("HF_ENDPOINT", DEFAULT_HUB_ENDPOINT)),
        # Read now, not when huggingface_hub was imported: a worker's environment may set it later.
        hub_cache_dir=Path(os.environ["HF_HUB_CACHE"]) if os.environ.get("HF_HUB_CACHE") else None,
        read_token=secret_reader(inv, vault_block),
    )
    with fetcher.client:
        return node_inputs(inv, node, models_dir=models_dir, node_models_dir=node_models_dir,
                           gateway_config=gateway_config, fetcher=fetcher)  # fmt: skip


@task(name="plan-node-rollout", task_run_name="plan-{node.name}", **task_options(idempotent=True))
def plan_node_rollout(
    node: Node,
    sources: dict[str, ModelSource],
    settings: RolloutSettings,
    gpu_layers: dict[str, int] | None = None,
    login: EngineLogin | None = None,
) -> Plan:
    """Gather the node's facts and plan its rollout (only looks)."""
    with _engine(node, login) as engine:
        return plan_node(engine, node, sources, settings, gpu_layers)


@task(name="ensure-model-volume", task_run_name="volume-{step.volume}", **task_options(idempotent=True))
def ensure_model_volume(node: Node, step: EnsureVolume, login: EngineLogin | None = None) -> str:
    """Create the named volume when it is missing."""
    with _engine(node, login) as engine:
        return "created" if ensure_volume(engine, step.volume) else "already there"


@task(name="copy-model-into-volume", task_run_name="copy-{step.source.model_file}", **task_options(idempotent=True))
def copy_model_into_volume(
    node: Node, step: CopyModel, settings: RolloutSettings, login: EngineLogin | None = None
) -> str:
    """Copy one model file into its volume as a verified temporary file."""
    with _engine(node, login) as engine:
        copied = copy_into_volume(engine, step.volume, step.source, step.expected, settings.helper)
    return f"{copied.size_bytes} bytes, sha256 {copied.sha256[:12]} verified"


@task(name="start-container", task_run_name="start-{step.spec.name}", **task_options(idempotent=False))
def start_container_step(
    node: Node, step: ContainerStep, settings: RolloutSettings, login: EngineLogin | None = None
) -> State[Pending] | Pending:
    """Set the old container aside, activate the model, start the new container.

    Returns:
        What was done; a Failed state carrying it when something failed half-way (the flow
        then rolls back exactly that).
    """
    with _engine(node, login) as engine:
        try:
            return serial.begin_container_step(engine, step, settings)
        except ContainerStepFailed as exc:
            return Failed(message=str(exc), data=exc.pending)


@task(name="wait-for-container-health", task_run_name="gate-{pending.step.spec.name}", **task_options(idempotent=True))
def wait_for_container_health(
    node: Node, pending: Pending, probe: ProbeSettings, settings: RolloutSettings, login: EngineLogin | None = None
) -> GateResult:
    """Wait for the started container to serve (the health gate); only looks."""
    with _engine(node, login) as engine:
        return serial.gate_container_step(engine, pending, node, probe, settings.gate)


@task(name="keep-new-container", task_run_name="keep-{pending.step.spec.name}", **task_options(idempotent=True))
def keep_new_container(
    node: Node, pending: Pending, settings: RolloutSettings, login: EngineLogin | None = None
) -> None:
    """The new container is healthy: remove the old one and the old model file."""
    with _engine(node, login) as engine:
        serial.finish_container_step(engine, pending, settings)


@task(name="roll-back-container", task_run_name="roll-back-{pending.step.spec.name}", **task_options(idempotent=False))
def roll_back_container(
    node: Node, pending: Pending, probe: ProbeSettings, settings: RolloutSettings, login: EngineLogin | None = None
) -> GateResult | None:
    """Bring back the old model file and container, and gate the old container again."""
    with _engine(node, login) as engine:
        return serial.roll_back_container_step(engine, pending, node, probe, settings)


@task(name="sweep-rolled-out-node", task_run_name="sweep-{node.name}", **task_options(idempotent=True))
def sweep_rolled_out_node(inv: Inventory, node: Node) -> SweepReport:
    """Probe every endpoint of the node, as `homelab sweep` would (the rollout's final check)."""
    alone = inv.model_copy(update={"nodes": [node], "experts": {}, "gateway": None})

    async def run() -> SweepReport:
        async with open_probe_client() as client:
            return await sweep(alone, client)

    return asyncio.run(run())


def steps_markdown(title: str, report: RolloutReport | OllamaRolloutReport) -> list[str]:
    """What both rollout artifacts open with: the verdict, the plan (dry run) or each step's
    outcome, what was left alone and why, and the VRAM plan."""
    verdict = "planned (dry run)" if report.dry_run else ("done" if report.ok else "FAILED")
    lines = [f"## {title} on {report.node}: {verdict}", ""]
    if report.dry_run:
        lines += [f"- {step.summary()}" for step in report.plan.steps] or ["- nothing to do"]
    else:
        lines += ["| step | status | seconds | detail |", "|---|---|---|---|"]
        lines += [f"| {o.summary} | {o.status} | {o.seconds:g} | {o.detail} |" for o in report.outcomes]
    if report.plan.unchanged:
        lines += ["", "Unchanged:", *(f"- {reason}" for reason in report.plan.unchanged)]
    if report.vram:
        lines += ["", "VRAM plan:", *(f"- {line}" for line in report.vram)]
    return lines


def rollout_markdown(report: RolloutReport, swept: SweepReport | None) -> str:
    """The artifact's text: what changed, what did not and why, and any failure with its log lines."""
    lines = steps_markdown("Model rollout", report)
    if report.failure:
        lines += ["", f"**Failure:** {report.failure}"]
        tail = next((o.gate.log_tail for o in report.outcomes if o.gate and o.gate.log_tail), [])
        if tail:
            lines += ["", "Last log lines of the failed container:", "", "```", *tail, "```"]
    if swept is not None:
        states = ", ".join(f"{r.endpoint} {r.state}" for r in swept.endpoints)
        lines += ["", f"Sweep after the rollout: {swept.cluster.prognosis} ({states})"]
    return "\n".join(lines)


@task(name="update-gateway-config", task_run_name="gateway-config", **task_options(idempotent=True))
def update_gateway_config(inv: Inventory, path: Path) -> str:
    """Regenerate the LiteLLM config file from the cluster file; says whether it changed."""
    return regenerate_config(inv, path)


@task(name="publish-rollout-artifact", **task_options(idempotent=False))
def publish_rollout_artifact(report: RolloutReport, swept: SweepReport | None) -> None:
    """A markdown artifact (key `model-rollout`) summarising what changed."""
    create_markdown_artifact(
        markdown=rollout_markdown(report, swept),
        key=ARTIFACT_KEY,
        description=f"model rollout on {report.node}",
    )


def preview_markdown(report: NodeRolloutReport) -> str:
    """A dry run's view from the cluster file: containers in start order with their gates, the
    Ollama models, and which part could not be checked against its node, and why."""
    assert report.preview is not None
    p = report.preview
    lines = [f"## Rollout preview on {p.node} (dry run, from the cluster file)", ""]
    if p.containers:
        lines += [f"Containers in start order on `{p.engine}`:", ""]
    for c in p.containers:
        layers = "llama-server's default" if c.gpu_layers is None else f"{c.gpu_layers} ({c.gpu_layers_from})"
        lines += [
            f"{c.position}. `{c.name}`: {c.model_file} in volume {c.volume}, ctx {c.ctx_size}, GPU layers {layers}, "
            f"restart policy {c.restart_policy}, on {c.published}",
            f"   - run: `{c.run_line()}`",
            f"   - gate: {c.gate.summary()}",
        ] + ([f"   - model from `{c.source}`"] if c.source else [])
    if p.ollama:
        lines += ["", "Ollama models, in preload order:", ""]
        lines += [
            f"- {m.endpoint}: {m.model} from {m.source}, "
            + ", ".join([*(f"{k} {v}" for k, v in m.parameters.items()), f"keep_alive {m.keep_alive}"])
            for m in p.ollama
        ]
    for part, against, why in (
        ("Ollama models", "the Ollama endpoints", report.ollama_not_checked),
        ("Containers", "the engine", report.engine_not_checked),
    ):
        if why:
            lines += ["", f"**{part}: not checked against {against}** ({why})"]
    return "\n".join(lines)


@task(name="publish-rollout-preview", **task_options(idempotent=False))
def publish_preview_artifact(report: NodeRolloutReport) -> None:
    """A markdown artifact (key `rollout-preview`) with a dry run's view from the cluster file."""
    create_markdown_artifact(
        markdown=preview_markdown(report), key=PREVIEW_ARTIFACT_KEY, description=f"rollout preview of {report.node}"
    )
