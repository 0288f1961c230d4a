"""`homelab plan`: VRAM plans for the cluster and estimates for one GGUF file."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from rich.markup import escape
from rich.table import Table

from homelab.errors import SettingsError
from homelab.vram.sizes import (
    DEFAULT_GPU_OVERHEAD_BYTES,
    GIB,
    MAX_CONTEXT,
    MAX_GPU_LAYERS,
    MAX_GPU_OVERHEAD_BYTES,
    MAX_PARALLEL,
    MIB,
)
from homelab_app.cli.common import (
    EXIT_INVALID,
    JsonFlag,
    app,
    err,
    load_or_exit,
    out,
)
from homelab_app.cli.source_options import HubEndpointOption, fetcher_for

if TYPE_CHECKING:
    from homelab.inventory import Endpoint, Inventory, Node
    from homelab.ollama.api import OllamaAPI
    from homelab.vram.estimate import Estimate
    from homelab.vram.ollama_sched import OllamaDecision
    from homelab.vram.planner import OllamaVersions, Plan
    from homelab.vram.served import OpenOllama
    from homelab.vram.shape import ModelShape, Source

__all__ = ["estimate_command", "plan_command"]


plan_app = typer.Typer(
    help="VRAM plans from GGUF metadata: the inventory's lineup on its GPUs, or one model's estimate.",
    rich_markup_mode=None,
)
app.add_typer(plan_app, name="plan")


_MAX_OVERHEAD_MIB = MAX_GPU_OVERHEAD_BYTES // MIB
# A budget far above any GPU's memory. The bound also refuses inf (once an OverflowError when
# turned into bytes) and NaN (every comparison with NaN is false).
_MAX_FIT_GIB = 65_536.0


def _gib(n: int) -> str:
    return f"{n / GIB:.1f} GiB"


def _size(n: int) -> str:
    """GiB from 1 GiB up, MiB below: an estimate's small buffers stay visible."""
    return _gib(n) if n >= GIB else f"{n / MIB:.0f} MiB"


def _fail(exc: Exception) -> NoReturn:
    """Print bad input that is no HomelabError (no traceback) and exit 2."""
    from pydantic import ValidationError

    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        message = f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}"
    else:
        message = str(exc)
    err.print(f"[red]✗[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(EXIT_INVALID)


# Where a placement's figures come from, as the plan prints it.
_SOURCES = {"gguf": "GGUF file", "ollama": "node", "llama-server": "node", "name": "name estimate"}
_SOURCE_WIDTH = len("name estimate") + 2


def _source(source: Source, estimated: bool) -> str:
    """A node that reported only counts (no tensor list) gave an estimate too."""
    return "node counts" if source in {"ollama", "llama-server"} and estimated else _SOURCES[source]


def _ollama_lines(d: OllamaDecision) -> list[str]:
    """What llama.cpp would take run as Ollama runs it, what Ollama will offload, and a warning when they part."""
    version = d.version if d.version_reported else f"{d.version} (assumed: the node was not asked)"
    keeps = f"{d.reserve_bytes_per_gpu // MIB} MiB {'fit margin' if d.scheduler == 'fit' else 'reserve'} per GPU"
    spread = ", ".join(f"GPU{g.index} {g.layers}" for g in d.gpus) if len(d.gpus) > 1 else ""
    reading = "" if d.exact else "; homelab's reading"
    lines = [
        f"llama.cpp would take {_gib(d.llama_cpp_full_bytes)} with {d.n_layers_total} layers "
        f"(flash attention {'on' if d.flash_attn else 'off'}, as Ollama runs it)",
        f"Ollama {version} will offload {d.n_gpu_layers}/{d.n_layers_total} layers"
        + (f" ({spread})" if spread else "")
        + f" (its estimate {_gib(d.estimate_bytes)}; {keeps}{reading})",
    ]
    if d.leaves_cpu_though_fits:
        lines.append(
            f"! Ollama leaves {d.n_layers_total - d.n_gpu_layers} layers on the CPU, though llama.cpp's "
            f"{_gib(d.llama_cpp_full_bytes)} for all of them fit in {_gib(d.most_free_bytes)} free"
        )
    if d.over_commits:
        lines.append(
            f"! over-commits: Ollama's {d.n_gpu_layers} layers take {_gib(d.llama_cpp_bytes)} by llama.cpp's "
            f"buffers, {_gib(d.free_bytes)} free"
        )
    return lines


def _print_ollama(ollama: OllamaDecision | None, refused: str | None) -> None:
    lines = _ollama_lines(ollama) if ollama else []
    for line in lines + ([f"Ollama: {refused}"] if refused else []):
        out.print(f"    {escape(line)}", highlight=False, soft_wrap=True)


def _render_plan(plan: Plan) -> None:
    rows = [(p.model + (f" {p.file_type}" if p.file_type else "")) for g in plan.gpus for p in g.placements]
    width = max([len(r) for r in rows] + [len("total")]) + 2
    told: set[str] = set()  # a model split over GPUs gets Ollama's lines once
    for gpu in plan.gpus:
        slot = gpu.slot
        out.print(f"{_gib(slot.vram_bytes)} GPU ({escape(slot.node)}, {escape(slot.name)})", highlight=False)
        for p in gpu.placements:
            label = p.model + (f" {p.file_type}" if p.file_type else "")
            e = p.estimate
            layers = (
                f"all {e.n_layers_total} layers" if p.whole else f"{e.n_gpu_layers}/{e.n_layers_total} layers on GPU"
            )
            if len(p.gpu_indexes) > 1:  # llama.cpp splits it: this GPU's share and layers
                share = e.devices[p.device].layers
                layers += f", {share} here (split over GPU{'+GPU'.join(map(str, p.gpu_indexes))})"
            source = _source(p.source, e.estimated_shape)
            out.print(
                f"  {escape(label):<{width}}{_gib(p.gpu_bytes):>9}  {source:<{_SOURCE_WIDTH}}{layers}",
                highlight=False,
            )
            if p.model not in told:
                told.add(p.model)
                _print_ollama(p.ollama, p.ollama_refused)
        if not gpu.placements:
            out.print("  (nothing placed)", highlight=False)
        out.print(
            f"  {'total':<{width}}{_gib(gpu.used_bytes):>9}  {'':<{_SOURCE_WIDTH}}"
            f"({gpu.used_percent:.0f}% of {_gib(slot.vram_bytes)}; "
            f"{_gib(slot.reserve_bytes)} reserve, {_gib(max(gpu.free_bytes, 0))} free)",
            highlight=False,
        )
    for c in plan.cpu_only:
        source = _source(c.source, c.estimate.estimated_shape)
        line = f"CPU only: {c.model} ({c.reason}) [{source}]"
        out.print(escape(line), highlight=False, soft_wrap=True)
        _print_ollama(c.ollama, c.ollama_refused)
    for u in plan.unsized:
        out.print(f"not sized: {escape(u.model)} ({escape(u.reason)})", highlight=False, soft_wrap=True)
    by_name = {p.model for g in plan.gpus for p in g.placements if p.source == "name"}
    by_name |= {c.model for c in plan.cpu_only if c.source == "name"}
    if named := [m for m in plan.estimated_models if m in by_name]:
        names = ", ".join(named)
        out.print(
            f"estimated from names, not GGUF files: {escape(names)} (--models-dir or a lineup file reads the files)",
            highlight=False,
            soft_wrap=True,
        )


@plan_app.callback(invoke_without_command=True)
def plan_command(
    ctx: typer.Context,
    inventory: Annotated[
        Path | None, typer.Option("--inventory", "-i", help="The cluster file.", envvar="HOMELAB_INVENTORY")
    ] = None,
    lineup: Annotated[Path | None, typer.Option("--lineup", help="Priorities, GGUF paths, contexts (YAML).")] = None,
    models_dir: Annotated[
        Path | None, typer.Option("--models-dir", help="Where the containers' GGUF files can be read.")
    ] = None,
    flash_attn: Annotated[bool, typer.Option("--flash-attn/--no-flash-attn", help="Plan with flash attention.")] = True,
    cache_type: Annotated[str, typer.Option("--cache-type", help="KV cache type: f16, q8_0, q4_0...")] = "f16",
    overhead_mib: Annotated[
        int,
        typer.Option(
            "--overhead-mib", min=0, max=_MAX_OVERHEAD_MIB, help="Per model and GPU: CUDA context, cuBLAS, pools."
        ),
    ] = DEFAULT_GPU_OVERHEAD_BYTES // MIB,
    ask_nodes: Annotated[
        bool,
        typer.Option(
            "--ask-nodes/--no-ask-nodes",
            help="Size Ollama models without deploy: from their node's /api/show (else from the tag).",
        ),
    ] = True,
    ollama_version: Annotated[
        str | None,
        typer.Option(
            "--ollama-version",
            help="Plan Ollama endpoints as this Ollama (X.Y.Z: 0.12.x or 0.30+); default: what each node "
            "reports (--ask-nodes), else 0.33.0.",
        ),
    ] = None,
    hf_endpoint: HubEndpointOption = "https://huggingface.co",
    vault_block: Annotated[
        str | None, typer.Option("--vault-block", help="A saved Vault Secrets block: reads hf:// sources' tokens.")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Place the inventory's models on its GPUs; without a subcommand, print the plan.

    Each placement says where its figures come from: a GGUF file, the serving node, or an
    estimate from the name. A model with a `source:` is sized from its GGUF header, read where
    the file is (https:// and hf:// with HTTP range requests: a few MB, nothing downloaded).
    Exit codes: 0 a plan (CPU-only and unsized models included); 2 bad input.
    """
    if ctx.invoked_subcommand is not None:
        return
    from pydantic import ValidationError

    from homelab.vram.lineup import lineup_from_inventory, load_lineup_file
    from homelab.vram.planner import PlanPolicy, plan_lineup
    from homelab.vram.served import ask_ollama_nodes

    if inventory is None:
        _fail(ValueError("homelab plan needs --inventory FILE (or HOMELAB_INVENTORY)"))
    inv = load_or_exit(inventory)
    if ollama_version is not None:
        from homelab.vram.ollama_sched import check_version

        check_version(ollama_version)
    try:
        lineup_file = load_lineup_file(lineup) if lineup else None
        said: dict[tuple[str, str], str] = {}
        opener = _ollama_opener(inv, said)
        reports = ask_ollama_nodes(inv, opener) if ask_nodes else None
        versions = _ollama_versions(inv, opener, said, ollama_version, ask_nodes)
        sources = _source_shapes(inv, hf_endpoint, vault_block)
        built = lineup_from_inventory(
            inv, models_dir=models_dir, lineup_file=lineup_file, reports=reports, sources=sources
        )
        policy = PlanPolicy(flash_attn=flash_attn, cache_type=cache_type, gpu_overhead_bytes=overhead_mib * MIB)
        plan = plan_lineup(built.entries, built.slots, policy, built.unsized, versions)
    except ValidationError as exc:
        _fail(exc)
    if as_json:
        print(plan.model_dump_json(indent=2))
    else:
        _render_plan(plan)


def _source_shapes(inv: Inventory, hf_endpoint: str, vault_block: str | None) -> dict[str, ModelShape | str]:
    """The shapes of the models with a `source:` (headers only), when the inventory has any."""
    from homelab.sources.fetch import node_sources

    if not node_sources(inv):
        return {}
    from homelab.sources.remote_header import source_shapes

    fetcher = fetcher_for(inv, hub_endpoint=hf_endpoint, cache_dir=None, vault_block=vault_block)
    with fetcher.client:
        return source_shapes(inv, fetcher)


def _ollama_opener(inventory: Inventory, said: dict[tuple[str, str], str] | None = None) -> OpenOllama:
    """Connectors to Ollama endpoints, with the endpoint's probe timeouts (a plan waits no longer than a probe).

    Args:
        said: where to keep each endpoint's `/api/version` answer, by (node, endpoint), so the
            plan asks a node its version once.
    """
    from homelab.ollama.api import OllamaAPI, open_ollama_client
    from homelab.ollama.settings import OllamaTimeouts

    class Remembering(OllamaAPI):
        key = ("", "")

        def version(self) -> str:
            answer = super().version()
            if said is not None:
                said[self.key] = answer
            return answer

    @contextmanager
    def open_api(node: Node, endpoint: Endpoint) -> Iterator[OllamaAPI]:
        probe = inventory.probe_settings(endpoint)
        timeouts = OllamaTimeouts(connect_s=probe.connect_s, read_s=probe.total_s)
        with open_ollama_client(endpoint.url, timeouts) as client:
            api = Remembering(client, f"{node.name}/{endpoint.name}", timeouts)
            api.key = (node.name, endpoint.name)
            yield api

    return open_api


def _ollama_versions(
    inv: Inventory, opener: OpenOllama, said: dict[tuple[str, str], str], given: str | None, ask: bool
) -> OllamaVersions:
    """Each Ollama endpoint of a GPU node: the version given, else the one it reports, else the newest (assumed).

    Endpoints `ask_ollama_nodes` skipped (every model deployed) are asked their version here.
    """
    from homelab.errors import OllamaError
    from homelab.inventory import EndpointKind
    from homelab.vram.ollama_sched import DEFAULT_OLLAMA_VERSION

    versions: dict[tuple[str, str], tuple[str, bool]] = {}
    for node in inv.nodes:
        for endpoint in node.endpoints if node.gpus else []:
            if endpoint.kind != EndpointKind.OLLAMA:
                continue
            key = (node.name, endpoint.name)
            if ask and given is None and all(m.deploy is not None for m in endpoint.models):
                with opener(node, endpoint) as api, suppress(OllamaError):
                    api.version()
            if given is not None or key in said:
                versions[key] = (given or said[key], True)
            else:
                versions[key] = (DEFAULT_OLLAMA_VERSION, False)
    return versions


def _run_words(
    n_cpu_moe: int | None,
    cpu_moe: bool,
    override_tensor: list[str],
    tensor_split: str | None,
    split_mode: str | None,
    main_gpu: int | None,
) -> list[str]:
    """The options as llama-server's command line, so one parser reads both."""
    words = [word for value in override_tensor for word in ("-ot", value)]
    words += ["--cpu-moe"] if cpu_moe else []
    for flag, value in (("--n-cpu-moe", n_cpu_moe), ("-ts", tensor_split), ("-sm", split_mode), ("-mg", main_gpu)):
        words += [] if value is None else [flag, str(value)]
    return words


def _run_flags(words: list[str]) -> dict[str, object]:
    from homelab.vram.run_args import parse_run_args

    try:
        return parse_run_args(words).updates()
    except ValueError as exc:
        _fail(exc)


def _gpu_sizes(text: str | None) -> tuple[int, ...]:
    """--gpus '24,24': bytes per GPU."""
    if text is None:
        return ()
    try:
        sizes = tuple(float(part) for part in text.split(","))
    except ValueError:
        _fail(ValueError(f"--gpus needs GiB per GPU like 24,24, got {text!r}"))
    if not all(0 < size <= _MAX_FIT_GIB for size in sizes):
        _fail(ValueError(f"--gpus: each size must be above 0 and at most {_MAX_FIT_GIB:.0f} GiB, got {text!r}"))
    return tuple(int(size * GIB) for size in sizes)


def _render_estimate(e: Estimate) -> None:
    how = " (estimated from its name)" if e.estimated_shape else ""
    out.print(
        f"{escape(e.model)}{how}: context {e.n_ctx} ({e.n_ctx_seq} per sequence), "
        f"{e.n_gpu_layers}/{e.n_layers_total} layers on GPU",
        highlight=False,
        soft_wrap=True,
    )
    table = Table(show_edge=False, box=None)
    split = len(e.devices) > 1
    for column in ("", *([d.name for d in e.devices] if split else ["GPU"]), "host"):
        table.add_column(column, justify="right" if column else "left")

    def row(label: str, per_device: list[int], total: int, host: str) -> None:
        cells = [_size(n) for n in per_device] if split else [_size(total) if total or label != "CUDA pool" else ""]
        table.add_row(label, *cells, host)

    if split:
        table.add_row("layers", *[str(d.layers) for d in e.devices], str(e.n_layers_total - e.n_gpu_layers))
    row("weights", [d.weights_bytes for d in e.devices], e.weights_gpu_bytes, _size(e.weights_cpu_bytes))
    row("KV cache", [d.kv_bytes for d in e.devices], e.kv_gpu_bytes, _size(e.kv_cpu_bytes))
    row("compute", [d.compute_bytes for d in e.devices], e.compute_gpu_bytes, _size(e.compute_host_bytes))
    table.add_row("output", *[""] * max(len(e.devices) if split else 1, 1), _size(e.output_bytes))
    if e.cuda_pool_bytes:
        row("CUDA pool", [d.cuda_pool_bytes for d in e.devices], e.cuda_pool_bytes, "")
    row("overhead", [d.overhead_bytes for d in e.devices], e.overhead_bytes, "")
    row("total", [d.total_bytes for d in e.devices], e.gpu_total_bytes, _size(e.cpu_total_bytes))
    out.print(table)


@plan_app.command("estimate")
def estimate_command(
    model: Annotated[str, typer.Argument(help="A GGUF file, or a name to estimate from: 'qwen2.5-14b Q4_K_M'.")],
    ctx_size: Annotated[
        int | None, typer.Option("--ctx", "-c", min=1, max=MAX_CONTEXT, help="Context; default: the model's.")
    ] = None,
    ngl: Annotated[
        int, typer.Option("--ngl", min=-1, max=MAX_GPU_LAYERS, help="GPU layers, output layer included; -1: all.")
    ] = -1,
    parallel: Annotated[int, typer.Option("--parallel", min=1, max=MAX_PARALLEL, help="Parallel sequences (-np).")] = 1,
    cache_type: Annotated[str, typer.Option("--cache-type", help="KV cache type: f16, q8_0, q4_0...")] = "f16",
    flash_attn: Annotated[bool, typer.Option("--flash-attn", help="With flash attention (-fa on).")] = False,
    cpu_only: Annotated[bool, typer.Option("--cpu-only", help="A CPU-only llama.cpp build.")] = False,
    ubatch: Annotated[int, typer.Option("--ubatch", min=1, max=MAX_CONTEXT, help="Micro-batch (-ub).")] = 512,
    overhead_mib: Annotated[
        int, typer.Option("--overhead-mib", min=0, max=_MAX_OVERHEAD_MIB, help="Per GPU: CUDA context, cuBLAS, pools.")
    ] = DEFAULT_GPU_OVERHEAD_BYTES // MIB,
    fit_gib: Annotated[
        float | None,
        typer.Option(
            "--fit-gib",
            min=0.0,
            max=_MAX_FIT_GIB,
            help="Instead of --ngl: the most layers that fit this budget (on each GPU, with several).",
        ),
    ] = None,
    n_cpu_moe: Annotated[
        int | None,
        typer.Option("--n-cpu-moe", min=0, max=MAX_GPU_LAYERS, help="Keep the first N layers' experts on the CPU."),
    ] = None,
    cpu_moe: Annotated[bool, typer.Option("--cpu-moe", help="Keep every layer's experts on the CPU.")] = False,
    override_tensor: Annotated[
        list[str] | None,
        typer.Option(
            "--override-tensor", "-ot", help="PATTERN=DEVICE[,...] as llama.cpp takes it: 'exps=CPU'. Repeatable."
        ),
    ] = None,
    tensor_split: Annotated[
        str | None, typer.Option("--tensor-split", "-ts", help="Share of the layers per GPU: '3,1'.")
    ] = None,
    split_mode: Annotated[str | None, typer.Option("--split-mode", "-sm", help="layer (default) or none.")] = None,
    main_gpu: Annotated[int | None, typer.Option("--main-gpu", "-mg", min=0, help="The GPU of -sm none.")] = None,
    gpus: Annotated[
        str | None,
        typer.Option("--gpus", help="Each GPU's memory in GiB, '24,24': the devices, and the default split."),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Bytes one llama-server run puts on each GPU and on the CPU (weights, KV cache, compute).

    The expert and device flags are llama-server's own (--n-cpu-moe, --cpu-moe, -ot, -ts, -sm,
    -mg); with several GPUs (--gpus, or as many as -ts names) it prints each GPU's share.
    """
    from pydantic import ValidationError

    from homelab.vram.estimate import estimate, max_gpu_layers
    from homelab.vram.guess import shape_of
    from homelab.vram.settings import RunSettings

    try:
        shape = shape_of(model)
        if (n_cpu_moe or cpu_moe) and not any("_exps." in t.name for t in shape.tensors):
            err.print(
                f"! {escape(shape.name)} has no expert tensors: --n-cpu-moe/--cpu-moe move nothing", highlight=False
            )
        words = _run_words(n_cpu_moe, cpu_moe, override_tensor or [], tensor_split, split_mode, main_gpu)
        settings = RunSettings(
            ctx_size=ctx_size, parallel=parallel, cache_type_k=cache_type, cache_type_v=cache_type,
            flash_attn=flash_attn, n_gpu_layers=ngl, n_ubatch=ubatch, backend="cpu" if cpu_only else "cuda",
            gpu_overhead_bytes=overhead_mib * MIB, device_memory_bytes=_gpu_sizes(gpus), **_run_flags(words),
        )  # fmt: skip
        budget = [int(fit_gib * GIB)] * settings.n_devices if fit_gib is not None and settings.n_devices > 1 else None
        if fit_gib is None:
            result = estimate(shape, settings)
        elif (fitted := max_gpu_layers(shape, settings, budget or int(fit_gib * GIB))) is None:
            raise SettingsError(f"not even -ngl 0 fits {fit_gib} GiB: a CUDA build computes on the GPU anyway")
        else:
            result = fitted
    except ValidationError as exc:
        _fail(exc)
    if as_json:
        print(json.dumps(result.model_dump() | {"settings": settings.model_dump()}, indent=2))
    else:
        _render_estimate(result)
