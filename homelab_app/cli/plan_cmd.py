"""`homelab plan`: VRAM plans for the cluster (`plan estimate` and `plan fit` live beside it)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from rich.markup import escape

from homelab.vram.sizes import (
    DEFAULT_GPU_OVERHEAD_BYTES,
    GIB,
    MAX_GPU_OVERHEAD_BYTES,
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
from homelab_app.cli.source_options import HubEndpointOption, HubTokenBlockOption, fetcher_for

if TYPE_CHECKING:
    from homelab.inventory import Endpoint, Inventory, Node
    from homelab.ollama.api import OllamaAPI
    from homelab.vram.ollama_sched import OllamaDecision
    from homelab.vram.planner import OllamaVersions, Plan
    from homelab.vram.served import OpenOllama
    from homelab.vram.shape import ModelShape, Source

__all__ = ["plan_command"]


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
    vault_block: HubTokenBlockOption = None,
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
