"""The lineup and the GPUs of an inventory: what the planner places, and where it may.

The models are those of `llamacpp` endpoints that run in a container (model file, context,
parallel sequences, optionally fixed GPU layers) and every model of an `ollama` endpoint, on a
node with GPUs. A model a rollout deploys (its `deploy:` section: GGUF or pulled tag, `num_ctx`,
optionally `num_gpu`) runs with the deploy's `num_ctx`; one without runs with Ollama's default,
chosen by the node's total VRAM: 262144 from 47 GiB, 32768 from 23 GiB, else 4096 (server/
routes.go:2043-2057 at v0.33.0-rc2, OLLAMA_CONTEXT_LENGTH unset). Either is clamped to the
model's training context (server/sched.go:161 `effectiveContext`), times the node's
`ollama_num_parallel` (OLLAMA_NUM_PARALLEL, default 1): Ollama launches llama-server with
`-c num_ctx*parallel` (llm/llama_server.go:375). Each may only go on its own node's GPUs. Their
lineup order is the inventory's order; an optional lineup file gives priorities, other contexts
and where the GGUF files can be read:

    # lineup.yaml
    reserve_gib: 1.0                 # kept free on every GPU (default 0.5)
    models:
      - model: general               # a served alias, the endpoint's name or its model_file
        priority: 10                 # higher is placed first (default 0)
        gguf: /srv/models/qwen2.5-14b-instruct-q4_k_m.gguf
        ctx_size: 16384

Shapes come, first found, from: the lineup file's `gguf`; the model's `source:` (its header, read
where the file lives by `homelab.sources.remote_header` and passed in as `SourceShapes`); the file
`models_dir/model_file` (not for an Ollama model without `deploy:`, whose tag names no file); for
such a model, what its node reported (`NodeReports`, gathered by
`homelab.vram.served.ask_ollama_nodes`); the file name or tag (an estimate, e.g.
`qwen2.5-14b-instruct-q4_k_m.gguf`, `qwen2.5:14b`). A deployed model is not sized from its node:
the node may not hold what the cluster file deploys until the rollout has run. A model none of
these can size is listed as unsized, with why each source failed.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from homelab.errors import InventoryError, LineupError, UnsupportedModel
from homelab.inventory import Endpoint, EndpointKind, Inventory, Node
from homelab.vram.guess import guess_shape
from homelab.vram.metadata import read_gguf
from homelab.vram.planner import GpuSlot, LineupEntry, Unsized
from homelab.vram.run_args import RunArgs, parse_run_args
from homelab.vram.shape import ModelShape
from homelab.vram.sizes import GIB, MAX_CONTEXT, MAX_PARALLEL, MIB
from homelab.yaml_source import load_yaml

__all__ = [
    "DEFAULT_RESERVE_BYTES",
    "Lineup",
    "LineupFile",
    "ModelOverride",
    "NodeReports",
    "SourceShapes",
    "lineup_from_inventory",
    "load_lineup_file",
    "ollama_default_ctx",
]

DEFAULT_RESERVE_BYTES = 512 * MIB  # display, driver and stray processes on a home GPU
# Ollama's default num_ctx by the node's total VRAM (server/routes.go:2049-2056 at v0.33.0-rc2):
# thresholds of 47 and 23 GiB, "slightly lower" than 48 and 24 so a 24 GB card gets the middle tier.
_OLLAMA_CTX_TIERS = ((47 * GIB, 262144), (23 * GIB, 32768))
_OLLAMA_SMALL_CTX = 4096

NodeReports = Mapping[tuple[str, str, str], ModelShape | str]
"""What Ollama nodes said, by (node, endpoint, model tag): the shape, or why there is none."""
SourceShapes = Mapping[str, ModelShape | str]
"""What the models' `source:` headers said, by model file name: the shape, or why there is none."""


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
    run: RunArgs = RunArgs()  # a container's memory flags (-ot, -ts, -sm, -fa...)
    report: tuple[str, str, str] | None = None  # an Ollama model without deploy: its key in NodeReports


def ollama_default_ctx(node: Node) -> int:
    """The num_ctx Ollama gives a model nobody set one for, on `node` (see the module docstring)."""
    total = sum(int(gpu.vram_gib * GIB) for gpu in node.gpus)
    return next((ctx for least, ctx in _OLLAMA_CTX_TIERS if total >= least), _OLLAMA_SMALL_CTX)


def _models_of(node: Node, deployed_only: bool) -> Iterator[_Served]:
    """llama.cpp containers, and the Ollama models (those a rollout deploys, or all of them)."""
    parallel = node.ollama_num_parallel or 1
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
                run=parse_run_args(container.command if container.command is not None else container.args),
            )
        for model in endpoint.models if endpoint.kind == EndpointKind.OLLAMA else []:
            if (deploy := model.deploy) is not None:
                source = deploy.gguf or deploy.pull or model.name
                names = {model.alias, model.name, source}
                yield _Served(model.alias, endpoint, source, names, deploy.num_gpu, deploy.num_ctx, parallel, True)
            elif not deployed_only:
                key = (node.name, endpoint.name, model.name)
                names = {model.alias, model.name}
                ctx = ollama_default_ctx(node)
                yield _Served(model.alias, endpoint, model.name, names, None, ctx, parallel, True, report=key)


def _entry(
    node: Node,
    served: _Served,
    override: ModelOverride | None,
    models_dir: Path | None,
    reports: NodeReports,
    sources: SourceShapes,
) -> LineupEntry | Unsized:
    """One model of the lineup with the lineup file's changes; Unsized when it cannot be sized."""
    try:
        shape = _shape(served, override, models_dir, reports, sources)
    except UnsupportedModel as exc:
        return Unsized(model=served.name, endpoint=served.endpoint.name, reason=str(exc))
    return LineupEntry(
        name=served.name,
        shape=shape,
        node=node.name,
        endpoint=served.endpoint.name,
        gpu_layers=served.gpu_layers,
        **_devices(node, served),
        priority=override.priority if override and override.priority is not None else 0,
        ctx_size=_ctx_size(served, shape, override.ctx_size if override and override.ctx_size else served.ctx_size),
        parallel=override.parallel if override and override.parallel else served.parallel,
    )


def _devices(node: Node, served: _Served) -> dict[str, Any]:
    """The GPUs a model may use, and whether llama.cpp splits it over several (a container seeing them
    all unless `-sm none`, which keeps the `-mg`th of those it sees: src/llama.cpp:289-301)."""
    if served.ollama:
        return {"gpus": served.gpus, "run": served.run}
    # CUDA numbers the GPUs a container sees in the node's order, whatever order `gpus` lists them in.
    seen = sorted(served.gpus or (i if gpu.index is None else gpu.index for i, gpu in enumerate(node.gpus)))
    if served.run.split_mode != "none":
        return {"gpus": served.gpus, "run": served.run, "spans_gpus": len(seen) > 1}
    main = served.run.main_gpu or 0
    if main >= len(seen):
        raise LineupError(f"{served.endpoint.name}: -mg {main}, but the container sees {len(seen)} GPUs")
    return {"gpus": [seen[main]], "run": served.run.model_copy(update={"main_gpu": 0})}


def _ctx_size(served: _Served, shape: ModelShape, ctx_size: int) -> int:
    """llama-server's `-c`: as given for a container; Ollama's clamped num_ctx times its parallel sequences."""
    return min(ctx_size, shape.context_length) * served.parallel if served.ollama else ctx_size


def _shape(
    served: _Served,
    override: ModelOverride | None,
    models_dir: Path | None,
    reports: NodeReports,
    sources: SourceShapes,
) -> ModelShape:
    """The model's shape from the first source that has one (module docstring).

    Raises:
        UnsupportedModel: No source could size it; the message says why each one failed.
    """
    if override and override.gguf:
        return read_gguf(override.gguf)
    from_source = sources.get(served.model_file) if served.report is None else None
    if isinstance(from_source, ModelShape):
        return from_source
    if from_source is not None:  # the source's header could not be read: the name may still tell
        try:
            return guess_shape(served.model_file)
        except UnsupportedModel as exc:
            raise UnsupportedModel(f"{from_source}; name: {exc}") from exc
    if served.report is None and models_dir is not None and (models_dir / served.model_file).is_file():
        return read_gguf(models_dir / served.model_file)  # a tag only Ollama holds is no file name here
    node_said = reports.get(served.report) if served.report else None
    if isinstance(node_said, ModelShape):
        return node_said
    try:
        return guess_shape(served.model_file)
    except UnsupportedModel as exc:
        if served.report is None:
            raise
        node = node_said or "the node was not asked"
        raise UnsupportedModel(f"node: {node}; name: {exc}") from exc


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
    inventory: Inventory,
    *,
    models_dir: Path | None = None,
    lineup_file: LineupFile | None = None,
    reports: NodeReports | None = None,
    deployed_only: bool = False,
    sources: SourceShapes | None = None,
) -> Lineup:
    """The planner's input for an inventory.

    Args:
        reports: what the Ollama nodes said about their models without `deploy:`; none: sized by name.
        deployed_only: leave out the Ollama models without `deploy:` (a rollout preloads only the
            deployed ones; Ollama loads the others on demand).
        sources: shapes read from the models' `source:` headers (`source_shapes`), by model file.

    Raises:
        LineupError: The lineup file names a model that no container or Ollama model of a GPU node serves.
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
        for served in _models_of(node, deployed_only):
            override = next((o for o in overrides if o.model in served.names), None)
            if override:
                used.add(override.model)
            entry = _entry(node, served, override, models_dir, reports or {}, sources or {})
            if isinstance(entry, Unsized):
                unsized.append(entry)
            else:
                entries.append(entry)
    unknown = [o.model for o in overrides if o.model not in used]
    if unknown:
        raise LineupError(
            "the lineup file names models that no llama.cpp container or Ollama model on a GPU node "
            f"serves: {', '.join(unknown)}"
        )
    return Lineup(entries=entries, slots=slots, unsized=unsized)
