"""What a node's Ollama endpoints should hold: the deployed models with their parameters, from inventory and VRAM plan.

An endpoint is homelab's to deploy to when the inventory gives at least one of its models a
`deploy:` section; an endpoint without one is left exactly as it is. On such an endpoint the
inventory's `models` list is the whole plan: a model it does not name is one that "left the
plan", unloaded by a rollout and deleted only when asked (`prune`).

`num_gpu` is the inventory's when it sets one, else the VRAM plan's GPU layers for the model;
a node without GPUs gets 0 (Ollama would otherwise try its GPU detection); an unsized model on
a GPU node leaves it to Ollama.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from pydantic import Field

from homelab.docker_ops.sources import model_sources
from homelab.errors import ModelSourceMissing
from homelab.frozen import Frozen
from homelab.inventory import Endpoint, EndpointKind, Node, ServedModel
from homelab.vram.node_plan import NodeVramPlan

__all__ = [
    "DesiredModel",
    "EndpointDesired",
    "OllamaDesired",
    "desired_ollama",
    "full_name",
    "ollama_endpoints",
    "ollama_gguf_files",
    "ollama_sources",
]


def full_name(name: str) -> str:
    """Ollama's canonical name: `qwen` is `qwen:latest`, as `/api/ps` and `/api/tags` list it."""
    return name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"


class DesiredModel(Frozen):
    """One model an endpoint should have, made with these parameters and preloaded."""

    name: str = Field(description="full name, tag included")
    alias: str
    gguf: str | None = Field(None, description="file name of the GGUF to upload and create from")
    local_path: Path | None = Field(None, description="where that file is on this machine")
    pull: str | None = Field(None, description="or: the registry tag to pull and create from")
    parameters: dict[str, int] = Field(description="num_ctx, and num_gpu when known")
    template: str | None = None
    keep_alive: int | str
    planned_gpu_bytes: int | None = Field(None, description="the VRAM plan's GPU total for it (None: unplanned)")

    @property
    def source(self) -> str:
        return self.gguf or self.pull or self.name

    def described(self) -> str:
        """For step summaries: where it comes from and its parameters."""
        return ", ".join([f"from {self.source}", *(f"{k} {v}" for k, v in self.parameters.items())])


class EndpointDesired(Frozen):
    """An Ollama endpoint homelab deploys to."""

    endpoint: str
    url: str
    models: list[DesiredModel] = Field(description="deployed, in inventory order (the preload order)")
    listed: list[str] = Field(description="full names of every model the inventory names here (and the tags pulled)")


class OllamaDesired(Frozen):
    """A node's Ollama endpoints as the inventory and the VRAM plan want them."""

    node: str
    endpoints: list[EndpointDesired]

    def gguf_files(self) -> dict[str, Path]:
        return {m.gguf: m.local_path for e in self.endpoints for m in e.models if m.gguf and m.local_path}


def ollama_endpoints(node: Node) -> list[Endpoint]:
    """The node's Ollama endpoints with at least one model to deploy."""
    return [e for e in node.endpoints if e.kind == EndpointKind.OLLAMA and any(m.deploy is not None for m in e.models)]


def ollama_gguf_files(node: Node) -> list[str]:
    """GGUF file names the node's Ollama models are created from (found in `--models-dir`)."""
    files = {m.deploy.gguf for e in ollama_endpoints(node) for m in e.models if m.deploy and m.deploy.gguf}
    return sorted(files)


def ollama_sources(node: Node, models_dir: Path | None, fetched: Mapping[str, Path] | None = None) -> dict[str, Path]:
    """Where each GGUF the node's Ollama models are created from is on this machine.

    Args:
        fetched: GGUFs with a `source:`, already fetched into the local cache (`homelab.sources`).

    Raises:
        ModelSourceMissing: no folder was given though a model needs one, or the folder lacks a
            file (every missing one is named).
    """
    done = {f: path for f, path in (fetched or {}).items() if f in ollama_gguf_files(node)}
    files = [f for f in ollama_gguf_files(node) if f not in done]
    if files and models_dir is None:
        raise ModelSourceMissing(
            f"node {node.name}: its Ollama models are created from GGUF files ({', '.join(files)}); "
            "give the folder here that holds them (--models-dir)"
        )
    if not files or models_dir is None:
        return done
    return done | {f: s.local_path for f, s in model_sources(files, models_dir=models_dir).items() if s.local_path}


def _desired_model(node: Node, model: ServedModel, sources: Mapping[str, Path], vram: NodeVramPlan) -> DesiredModel:
    deploy = model.deploy
    assert deploy is not None
    planned = vram.models.get(model.alias)
    num_gpu = deploy.num_gpu
    if num_gpu is None:
        num_gpu = planned.gpu_layers if planned else (None if node.gpus else 0)
    parameters = {"num_ctx": deploy.num_ctx} | ({"num_gpu": num_gpu} if num_gpu is not None else {})
    return DesiredModel(
        name=full_name(model.name),
        alias=model.alias,
        gguf=deploy.gguf,
        local_path=sources.get(deploy.gguf) if deploy.gguf else None,
        pull=deploy.pull,
        parameters=parameters,
        template=deploy.template,
        keep_alive=deploy.keep_alive,
        planned_gpu_bytes=planned.gpu_bytes if planned else (None if node.gpus else 0),
    )


def desired_ollama(node: Node, sources: Mapping[str, Path], vram: NodeVramPlan | None = None) -> OllamaDesired:
    """The node's Ollama endpoints and their models, with parameters from the inventory and the VRAM plan.

    Args:
        sources: GGUF file name -> its path here (`model_sources(ollama_gguf_files(node), ...)`).
        vram: the node's VRAM plan (`plan_node_vram`); None: no plan, so `num_gpu` is the
            inventory's or, on a GPU node, Ollama's own choice.
    """
    vram = vram or NodeVramPlan(node=node.name)
    endpoints = [
        EndpointDesired(
            endpoint=e.name,
            url=e.url,
            models=[_desired_model(node, m, sources, vram) for m in e.models if m.deploy is not None],
            # A pulled tag that a model is made from is part of the plan too.
            listed=[full_name(m.name) for m in e.models]
            + [full_name(m.deploy.pull) for m in e.models if m.deploy and m.deploy.pull],
        )
        for e in ollama_endpoints(node)
    ]
    return OllamaDesired(node=node.name, endpoints=endpoints)
