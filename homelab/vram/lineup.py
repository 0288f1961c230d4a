"""The lineup and the GPUs of an inventory: what the planner places, and where it may.

The models are those of `llamacpp` endpoints that run in a container (model file, context,
parallel sequences, optionally fixed GPU layers) and the models a rollout deploys to `ollama`
endpoints (their `deploy:` section: GGUF or pulled tag, `num_ctx`, optionally `num_gpu`), on a
node with GPUs. An Ollama model runs `num_ctx` clamped to its training context (server/sched.go:161
`effectiveContext` at v0.33.0-rc2), times the node's `ollama_num_parallel` (OLLAMA_NUM_PARALLEL,
default 1): Ollama launches llama-server with `-c num_ctx*parallel` (llm/llama_server.go:375).
Each may only go on its own node's GPUs. Their lineup order is the inventory's order; an
optional lineup file gives priorities, other contexts and where the GGUF files can be read:

    # lineup.yaml
    reserve_gib: 1.0                 # kept free on every GPU (default 0.5)
    models:
      - model: general               # a served alias, the endpoint's name or its model_file
        priority: 10                 # higher is placed first (default 0)
        gguf: /srv/models/qwen2.5-14b-instruct-q4_k_m.gguf
        ctx_size: 16384

Shapes come from the GGUF (the lineup file's `gguf`, else `models_dir/model_file`), else from
the file name or pulled tag (an estimate, e.g. `qwen2.5-14b-instruct-q4_k_m.gguf`,
`qwen2.5:14b`); a model neither can size is listed as unsized.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from homelab.errors import InventoryError, LineupError, UnsupportedModel
from homelab.inventory import Endpoint, EndpointKind, Inventory, Node
from homelab.vram.guess import guess_shape
from homelab.vram.metadata import read_gguf
from homelab.vram.planner import GpuSlot, LineupEntry, Unsized
from homelab.vram.shape import ModelShape
from homelab.vram.sizes import GIB, MAX_CONTEXT, MAX_PARALLEL, MIB
from homelab.yaml_source import load_yaml

__all__ = [
    "DEFAULT_RESERVE_BYTES",
    "Lineup",
    "LineupFile",
    "ModelOverride",
    "lineup_from_inventory",
    "load_lineup_file",
]

DEFAULT_RESERVE_BYTES = 512 * MIB  # display, driver and stray processes on a home GPU


class ModelOverride(BaseModel):
    """Lineup-file settings for one model of the inventory."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str = Field(min_length=1, description="served alias, endpoint name or model_file")
    priority: int | None = None
    gguf: str | None = None
    ctx_size: int | None = Field(None, gt=0, le=MAX_CONTEXT)
    parallel: int | None = Field(None, gt=0, le=MAX_PARALLEL)


class LineupFile(BaseModel):
    """The optional lineup file."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    reserve_gib: float | None = Field(None, ge=0, le=1024, allow_inf_nan=False)
    models: list[ModelOverride] = []


class Lineup(BaseModel):
    """What the planner gets: models, GPUs, and the models that could not be sized."""

    model_config = ConfigDict(frozen=True)

    entries: list[LineupEntry]
    slots: list[GpuSlot]
    unsized: list[Unsized]


def load_lineup_file(path: Path) -> LineupFile:
    """Read and validate a lineup file (a regular file, read with the cluster file's limits).

    Raises:
        LineupError: Unreadable, not a regular file, not YAML, over a limit, or invalid; each
            line of the message is `FILE:LINE: field: message`.
    """
    try:
        data, source = load_yaml(path)
        return LineupFile.model_validate(data or {})
    except InventoryError as exc:
        raise LineupError(str(exc)) from None
    except ValidationError as exc:
        first = exc.errors()[0]
        raise LineupError(str(source.problem(tuple(first["loc"]), first["msg"]))) from None


def _names(endpoint: Endpoint) -> set[str]:
    names = {endpoint.name}
    names |= {m.alias for m in endpoint.models} | {m.name for m in endpoint.models}
    if endpoint.container:
        names.add(endpoint.container.model_file)
    return names


class _Served(NamedTuple):
    """A model homelab runs on a node, as the lineup needs it."""

    name: str
    endpoint: Endpoint
    model_file: str  # a GGUF file name, else a name to estimate from
    names: set[str]  # what a lineup file may call it
    gpu_layers: int | None
    ctx_size: int  # Ollama: num_ctx, per sequence
    parallel: int
    ollama: bool = False
    gpus: list[int] | None = None  # a container's CUDA indexes: the only GPUs it sees


def _models_of(node: Node) -> Iterator[_Served]:
    """llama.cpp containers, and the models a rollout deploys to Ollama (one sequence: Ollama's default)."""
    for endpoint in node.endpoints:
        container = endpoint.container
        if endpoint.kind == EndpointKind.LLAMACPP and container is not None:
            name = endpoint.models[0].alias if endpoint.models else endpoint.name
            yield _Served(
                name,
                endpoint,
                container.model_file,
                _names(endpoint),
                container.gpu_layers,
                container.ctx_size,
                container.parallel,
                gpus=container.gpus,
            )
        for model in endpoint.models if endpoint.kind == EndpointKind.OLLAMA else []:
            if (deploy := model.deploy) is not None:
                source = deploy.gguf or deploy.pull or model.name
                names = {model.alias, model.name, source}
                parallel = node.ollama_num_parallel or 1
                yield _Served(model.alias, endpoint, source, names, deploy.num_gpu, deploy.num_ctx, parallel, True)


def _entry(
    node: Node, served: _Served, override: ModelOverride | None, models_dir: Path | None
) -> LineupEntry | Unsized:
    """One model of the lineup with the lineup file's changes; Unsized when it cannot be sized."""
    try:
        shape = _shape(served.model_file, override, models_dir)
    except UnsupportedModel as exc:
        return Unsized(model=served.name, endpoint=served.endpoint.name, reason=str(exc))
    return LineupEntry(
        name=served.name,
        shape=shape,
        node=node.name,
        endpoint=served.endpoint.name,
        gpu_layers=served.gpu_layers,
        gpus=served.gpus,
        priority=override.priority if override and override.priority is not None else 0,
        ctx_size=_ctx_size(served, shape, override.ctx_size if override and override.ctx_size else served.ctx_size),
        parallel=override.parallel if override and override.parallel else served.parallel,
    )


def _ctx_size(served: _Served, shape: ModelShape, ctx_size: int) -> int:
    """llama-server's `-c`: as given for a container; Ollama's clamped num_ctx times its parallel sequences."""
    return min(ctx_size, shape.context_length) * served.parallel if served.ollama else ctx_size


def _shape(model_file: str, override: ModelOverride | None, models_dir: Path | None) -> ModelShape:
    """The model's shape: its GGUF when one is given or found, else estimated from the file name."""
    if override and override.gguf:
        return read_gguf(override.gguf)
    if models_dir is not None and (models_dir / model_file).is_file():
        return read_gguf(models_dir / model_file)
    return guess_shape(model_file)


def _slots(node: Node, reserve_bytes: int) -> list[GpuSlot]:
    return [
        GpuSlot(
            node=node.name,
            name=gpu.name,
            index=i if gpu.index is None else gpu.index,
            vram_bytes=int(gpu.vram_gib * GIB),
            reserve_bytes=reserve_bytes,
        )
        for i, gpu in enumerate(node.gpus)
    ]


def lineup_from_inventory(
    inventory: Inventory, *, models_dir: Path | None = None, lineup_file: LineupFile | None = None
) -> Lineup:
    """The planner's input for an inventory.

    Raises:
        LineupError: The lineup file names a model that no container or deployed Ollama model of a GPU node serves.
        ModelFileError: A GGUF named or found is unreadable.
    """
    overrides = list(lineup_file.models) if lineup_file else []
    reserve = (
        DEFAULT_RESERVE_BYTES
        if not lineup_file or lineup_file.reserve_gib is None
        else int(lineup_file.reserve_gib * GIB)
    )
    entries: list[LineupEntry] = []
    slots: list[GpuSlot] = []
    unsized: list[Unsized] = []
    used: set[str] = set()
    for node in inventory.nodes:
        if not node.gpus:
            continue
        slots += _slots(node, reserve)
        for served in _models_of(node):
            override = next((o for o in overrides if o.model in served.names), None)
            if override:
                used.add(override.model)
            entry = _entry(node, served, override, models_dir)
            if isinstance(entry, Unsized):
                unsized.append(entry)
            else:
                entries.append(entry)
    unknown = [o.model for o in overrides if o.model not in used]
    if unknown:
        raise LineupError(
            "the lineup file names models that no llama.cpp container or deployed Ollama model on a GPU node "
            f"serves: {', '.join(unknown)}"
        )
    return Lineup(entries=entries, slots=slots, unsized=unsized)
