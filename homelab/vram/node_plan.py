"""One node's share of the VRAM plan: the GPU layers its rollout gives each llama.cpp container and Ollama model.

A rollout plans before it changes anything. The node's llama.cpp containers and the Ollama
models it deploys (it preloads only those; others Ollama loads on demand) are placed on the
node's GPUs exactly as `homelab plan` places them (other nodes' models never share these GPUs, so they
are left out, and their files need not be readable here). A model the plan leaves to the CPU
on a node with GPUs is refused, with the planner's reason: starting it anyway would either
over-commit the GPU or crawl on the CPU, and either is a decision for the cluster file
(`gpu_layers`, a smaller `ctx_size`), not for a rollout. A model that cannot be sized (its
file is on the node only and its name says nothing) keeps its server's own default.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from homelab.errors import VramRefused
from homelab.inventory import EndpointKind, Inventory, Node
from homelab.vram.lineup import SourceShapes, lineup_from_inventory
from homelab.vram.planner import DEFAULT_POLICY, Placement, PlanPolicy, plan_lineup
from homelab.vram.sizes import GIB

__all__ = ["ModelGpu", "NodeVramPlan", "plan_node_vram"]


class ModelGpu(BaseModel):
    """One placed model's share of a GPU: what its server is told, and what the plan expects it to take."""

    model_config = ConfigDict(frozen=True)

    gpu_layers: int
    gpu_bytes: int = Field(
        description="the model's own GPU buffers: weights, KV cache, compute "
        "(the per-process CUDA overhead not counted)"
    )


class NodeVramPlan(BaseModel):
    """GPU layers per endpoint and per model, and a line per model saying where it goes."""

    model_config = ConfigDict(frozen=True)

    node: str
    gpu_layers: dict[str, int] = Field(default_factory=dict, description="endpoint -> -ngl from the plan")
    models: dict[str, ModelGpu] = Field(
        default_factory=dict, description="model (a served alias: an Ollama endpoint serves several) -> its share"
    )
    lines: list[str] = Field(default_factory=list, description="one per model, for reports")


def _named(model: str, endpoint: str | None) -> str:
    return model if endpoint in (None, model) else f"{model} (endpoint {endpoint})"


def _line(p: Placement, gpu: str) -> str:
    e = p.estimate
    layers = "all layers" if p.whole else f"{e.n_gpu_layers}/{e.n_layers_total} layers"
    if len(p.gpu_indexes) > 1:  # split by llama.cpp: each GPU's share
        shares = " + ".join(f"{d.total_bytes / GIB:.2f} GiB on GPU{p.gpu_indexes[d.index]}" for d in e.devices)
        return f"{p.model}: {layers} split over {p.node}'s GPUs, {shares}"
    return f"{p.model}: {layers} on {gpu}, {e.gpu_total_bytes / GIB:.2f} GiB"


def plan_node_vram(
    inventory: Inventory,
    node: Node,
    *,
    models_dir: Path | None = None,
    policy: PlanPolicy = DEFAULT_POLICY,
    sources: SourceShapes | None = None,
) -> NodeVramPlan:
    """Plan `node`'s llama.cpp containers and Ollama models on its GPUs (none: an empty plan).

    Args:
        models_dir: where the GGUF files can be read (their metadata sizes the models).
        sources: shapes of the models with a `source:`, by model file (read from the fetched files).

    Raises:
        VramRefused: a model does not fit (the message lists each with the planner's reason).
        VramError: a model file is unreadable.
    """
    if not node.gpus:
        return NodeVramPlan(node=node.name)
    only_node = inventory.model_copy(update={"nodes": [node]})
    lineup = lineup_from_inventory(only_node, models_dir=models_dir, deployed_only=True, sources=sources)
    plan = plan_lineup(lineup.entries, lineup.slots, policy, lineup.unsized)
    if plan.cpu_only:
        refused = "; ".join(f"{_named(m.model, m.endpoint)}: {m.reason}" for m in plan.cpu_only)
        raise VramRefused(
            f"node {node.name}: does not fit its GPUs: {refused}. "
            "Set gpu_layers or a smaller ctx_size in the cluster file (Ollama models: num_gpu, num_ctx)"
        )
    layers: dict[str, int] = {}
    models: dict[str, ModelGpu] = {}
    lines: list[str] = []
    for use in plan.gpus:
        for p in use.placements:
            if p.model in models:
                continue  # a model split over several GPUs: listed under each, counted once
            if p.endpoint is not None:
                layers[p.endpoint] = p.estimate.n_gpu_layers
            # Ollama's size_vram counts what the model allocated, not the CUDA context it shares.
            gpu_bytes = p.estimate.gpu_total_bytes - p.estimate.overhead_bytes
            models[p.model] = ModelGpu(gpu_layers=p.estimate.n_gpu_layers, gpu_bytes=gpu_bytes)
            lines.append(_line(p, use.slot.label))
    ollama = {e.name for e in node.endpoints if e.kind == EndpointKind.OLLAMA}
    lines += [
        f"{u.model}: not sized ({u.reason}); {'Ollama' if u.endpoint in ollama else 'llama-server'}'s default layers"
        for u in plan.unsized
    ]
    return NodeVramPlan(node=node.name, gpu_layers=layers, models=models, lines=lines)
