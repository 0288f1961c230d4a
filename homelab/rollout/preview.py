"""What a node's rollout would do, from the cluster file alone: containers in start order, their gates, Ollama models.

`homelab rollout --dry-run` shows this first, whether or not the node answers: the order in
which containers would start, the health gate each must pass before the next one starts (what
is probed, how often, for how long), the restart policy the engine gets, where each model
lives and the GPU layers and context it runs with (the cluster file's, else the VRAM plan's,
which needs only the model files here). The plan against the engine and the Ollama endpoints
comes beside it when they answer; when one does not, the preview says so and why, and the
dry run still succeeds: planning a node that is down is what a dry run is for.
"""

from __future__ import annotations

from pydantic import Field

from homelab.docker_ops.connect import engine_url
from homelab.docker_ops.containers import desired_containers
from homelab.docker_ops.gate import HealthGate
from homelab.docker_ops.serial import RolloutSettings
from homelab.frozen import Frozen
from homelab.inventory import Endpoint, Inventory, Node
from homelab.ollama.desired import OllamaDesired
from homelab.redact import redact_url
from homelab.vram.node_plan import NodeVramPlan

__all__ = ["ContainerPreview", "GatePreview", "OllamaModelPreview", "RolloutPreview", "preview_rollout"]

# What the gate asks a llama-server (homelab.health.probe's llamacpp probe, the one sweeps use);
# only llamacpp endpoints run in containers (homelab.inventory.references).
_LLAMA_GATE_PATHS = ("/health", "/v1/models")


class GatePreview(Frozen):
    """The health gate a started container must pass before the next one starts."""

    kind: str = Field(description="which probe: the endpoint kind's, as sweeps use it")
    urls: list[str] = Field(description="what is asked, in order")
    passes_when: str
    probe_connect_s: float
    probe_total_s: float
    interval_s: float
    max_interval_s: float
    timeout_s: float
    attempts: int

    def summary(self) -> str:
        return (
            f"{self.kind} probe of {' then '.join(self.urls)} ({self.passes_when}); each probe "
            f"{self.probe_connect_s:g} s to connect, {self.probe_total_s:g} s in all; every "
            f"{self.interval_s:g}-{self.max_interval_s:g} s for up to {self.timeout_s:g} s or {self.attempts} probes"
        )


class ContainerPreview(Frozen):
    """One container as the cluster file and the VRAM plan make it."""

    position: int = Field(description="1 starts first")
    name: str
    endpoint: str
    image: str
    volume: str
    model_file: str
    source: str | None = Field(None, description="where the model file is fetched from; None: the rollout's folders")
    restart_policy: str
    ctx_size: int
    parallel: int
    gpu_layers: int | None = Field(description="None: llama-server's own default")
    gpu_layers_from: str = Field(description="the cluster file, the VRAM plan, a CPU node, or llama-server's default")
    published: str = Field(description="host address and port -> the port inside the container")
    command: list[str] | None = Field(description="the container's command; None: the image's own")
    gpus: str = Field(description="the GPUs it asks for: all, CUDA indexes, or none")
    gate: GatePreview

    def run_line(self) -> str:
        """How the container is started: image, command, GPUs."""
        command = " ".join(self.command) if self.command is not None else "(the image's own command)"
        return f"{self.image} {command}; GPUs: {self.gpus}"


class OllamaModelPreview(Frozen):
    """One model an Ollama endpoint would be given, in preload order."""

    endpoint: str
    url: str
    model: str
    source: str
    parameters: dict[str, int]
    keep_alive: int | str


class RolloutPreview(Frozen):
    """The node's rollout from the cluster file alone."""

    node: str
    engine: str = Field(description="the engine URL the containers go to")
    containers: list[ContainerPreview] = Field(default_factory=list, description="in start order")
    ollama: list[OllamaModelPreview] = Field(default_factory=list)
    vram: list[str] = Field(default_factory=list, description="the VRAM plan's line per model")


def _layers_from(node: Node, endpoint: Endpoint, vram: NodeVramPlan) -> str:
    if endpoint.container is not None and endpoint.container.gpu_layers is not None:
        return "the cluster file"
    if endpoint.name in vram.gpu_layers:
        return "the VRAM plan"
    return "a CPU node" if not node.gpus else "llama-server's default (not sized)"


def _source(endpoint: Endpoint) -> str | None:
    source = endpoint.container.source if endpoint.container is not None else None
    return source.shown() if source is not None else None


def _gate(inv: Inventory, endpoint: Endpoint, gate: HealthGate) -> GatePreview:
    probe = inv.probe_settings(endpoint)
    base = redact_url(endpoint.url).rstrip("/")
    return GatePreview(
        kind=str(endpoint.kind),
        urls=[f"{base}{path}" for path in _LLAMA_GATE_PATHS],
        passes_when='/health answers {"status": "ok"} (503 while loading) and /v1/models lists the model',
        probe_connect_s=probe.connect_s,
        probe_total_s=probe.total_s,
        interval_s=gate.interval_s,
        max_interval_s=gate.max_interval_s,
        timeout_s=gate.timeout_s,
        attempts=gate.attempts,
    )


def preview_rollout(
    inv: Inventory, node: Node, settings: RolloutSettings, vram: NodeVramPlan, ollama: OllamaDesired | None
) -> RolloutPreview:
    """The node's containers (start order, gate, restart policy, model, layers) and Ollama models, from the file.

    Args:
        settings: container defaults and the gate, as the rollout would use them.
        vram: the node's VRAM plan (`plan_node_vram`), for layers the cluster file leaves unset.
        ollama: the node's Ollama models as the rollout would create them (None: it has none).
    """
    specs = desired_containers(node, settings.containers, vram.gpu_layers)
    endpoints = {e.name: e for e in node.endpoints}
    containers = [
        ContainerPreview(
            position=position,
            name=spec.name,
            endpoint=spec.endpoint,
            image=spec.image,
            volume=spec.volume,
            model_file=spec.model_file,
            source=_source(endpoints[spec.endpoint]),
            restart_policy=spec.restart_policy,
            ctx_size=spec.ctx_size,
            parallel=spec.parallel,
            gpu_layers=spec.gpu_layers,
            gpu_layers_from=_layers_from(node, endpoints[spec.endpoint], vram),
            published=f"{spec.host_ip}:{spec.host_port} -> {spec.container_port}",
            command=spec.cmd(),
            gpus=(",".join(map(str, spec.gpu_ids)) or "all") if spec.gpus else "none",
            gate=_gate(inv, endpoints[spec.endpoint], settings.gate),
        )
        for position, spec in enumerate(specs, start=1)
    ]
    models = [
        OllamaModelPreview(
            endpoint=e.endpoint, url=redact_url(e.url), model=m.name, source=m.source, parameters=m.parameters,
            keep_alive=m.keep_alive,
        )
        for e in (ollama.endpoints if ollama else [])
        for m in e.models
    ]  # fmt: skip
    engine = engine_url(node)
    return RolloutPreview(node=node.name, engine=engine, containers=containers, ollama=models, vram=vram.lines)
