"""`homelab plan fit`: each model's context, offload, KV cache type and GPU chosen so the lineup fits."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from homelab_app.cli.common import JsonFlag, out, print_error, shown
from homelab_app.cli.plan_cmd import _source_shapes as source_shapes
from homelab_app.cli.plan_cmd import plan_app
from homelab_app.cli.source_options import HubEndpointOption, HubTokenBlockOption

if TYPE_CHECKING:
    from homelab.vram.fit import FitGpu, FittedModel, LineupFit

__all__ = ["fit_command"]


def _gib(n: int) -> str:
    return f"{n / 1024**3:.1f} GiB"


def _context(m: FittedModel) -> str:
    return str(m.ctx_size) if m.ctx_size == m.ctx_asked else f"{m.ctx_size} of {m.ctx_asked}"


def _gpu_table(gpu: FitGpu, models: dict[str, FittedModel]) -> None:
    slot = gpu.slot
    out.print(
        f"{shown(slot.label)}: {_gib(gpu.used_bytes)} of {_gib(slot.vram_bytes)} "
        f"({_gib(slot.reserve_bytes)} reserve, {_gib(max(gpu.free_bytes, 0))} free)",
        highlight=False,
    )
    if not gpu.models:
        out.print("  (nothing placed)", highlight=False)
        return
    table = Table(show_edge=False, box=None, padding=(0, 1, 0, 1))
    for column in ("model", "GPU", "layers", "CPU experts", "context", "KV"):
        table.add_column(column, justify="right" if column in ("GPU", "layers") else "left", no_wrap=True)
    for name in gpu.models:
        m = models[name]
        experts = f"{m.n_cpu_moe}/{m.n_moe_layers}" if m.n_moe_layers else "-"
        kv = m.cache_type + (" (kept)" if m.kept else "")
        share = m.gpu_shares[m.gpu_indexes.index(slot.index)]
        split = f" (1 of {len(m.gpu_indexes)} GPUs)" if len(m.gpu_indexes) > 1 else ""
        layers = f"{m.n_gpu_layers}/{m.n_layers_total}"
        table.add_row(shown(name) + split, _gib(share), layers, experts, _context(m), kv)
    out.print(table)


def _render(fit: LineupFit, diff: str | None, written: bool, inventory: Path) -> None:
    models = {m.model: m for m in fit.models}
    out.print(f"preferring {', '.join(fit.order)}", highlight=False)
    for gpu in fit.gpus:
        _gpu_table(gpu, models)
    for m in fit.models:
        if m.gpu is None:
            out.print(f"CPU only: {shown(m.model)}", highlight=False)
    for u in fit.unsized:
        out.print(f"not sized: {shown(u.model)} ({shown(u.reason)})", highlight=False, soft_wrap=True)
    if fit.on_demand:
        names = ", ".join(fit.on_demand)
        out.print(f"not fitted: {shown(names)} (Ollama loads them on demand: no deploy: section)", highlight=False)
    out.print("why:", highlight=False)
    for m in fit.models:
        for line in m.reasons:
            out.print(f"  {shown(line)}", highlight=False, soft_wrap=True)
    if diff is None:
        return  # the reason is on stderr
    if not diff:
        out.print(f"{shown(str(inventory))} already holds these choices", highlight=False)
        return
    out.print(shown(diff.rstrip("\n")), highlight=False, soft_wrap=True)
    if written:
        out.print(f"wrote {shown(str(inventory))}", highlight=False)
    else:
        out.print("--write puts these choices into the cluster file", highlight=False)


@plan_app.command("fit")
def fit_command(
    inventory: Annotated[Path, typer.Option("--inventory", "-i", help="The cluster file.", envvar="HOMELAB_INVENTORY")],
    models_dir: Annotated[
        Path | None, typer.Option("--models-dir", help="Where the GGUF files can be read (else sized by name).")
    ] = None,
    lineup: Annotated[Path | None, typer.Option("--lineup", help="Priorities, GGUF paths, contexts (YAML).")] = None,
    write: Annotated[
        bool, typer.Option("--write", help="Put the choices into the cluster file (comments kept, atomic).")
    ] = False,
    hf_endpoint: HubEndpointOption = "https://huggingface.co",
    vault_block: HubTokenBlockOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Choose each model's context, GPU layers or --n-cpu-moe, KV cache type and GPU so the lineup fits.

    It places what a rollout places (llama.cpp containers, Ollama models with deploy:) on the
    cluster's GPUs, keeping the reserve, preferring in the order of the cluster file's fit:
    section (default: fully on the GPU, then larger context, then fewer experts on the CPU, then
    an f16 KV cache), and says why each model stopped where it did. With --write the choices go
    into the cluster file, shown as a diff; it refuses a file changed since it was read. The diff
    is shown without --write too (JSON: "diff", null where the file cannot be rewritten).
    Exit codes: 0 a fit (CPU-only models included); 2 bad input.
    """
    from homelab.errors import InventoryError
    from homelab.files import read_regular
    from homelab.vram.fit_file import fit_inventory, fitted_text, text_diff, write_fitted
    from homelab.vram.lineup import load_lineup_file
    from homelab.yaml_source import MAX_FILE_BYTES
    from homelab_app.cli.common import load_or_exit

    read = read_regular(inventory, limit_bytes=MAX_FILE_BYTES, what="cluster file")
    inv = load_or_exit(inventory)
    lineup_file = load_lineup_file(lineup) if lineup else None
    sources = source_shapes(inv, hf_endpoint, vault_block)  # models with source:, from their headers
    fit = fit_inventory(inv, models_dir=models_dir, lineup_file=lineup_file, sources=sources)
    text = read.decode("utf-8")  # load_or_exit has refused a file that is not UTF-8
    diff: str | None = None
    try:
        new = fitted_text(text, str(inventory), fit)
    except InventoryError as exc:  # a file fit cannot rewrite: the choices are still worth showing
        if write:
            raise
        print_error(exc)
    else:
        diff = text_diff(text, new, str(inventory))
    written = bool(write and diff)
    if written:
        write_fitted(inventory, read, new)
    if as_json:
        print(json.dumps({"fit": fit.model_dump(mode="json"), "diff": diff, "written": written}, indent=2))
    else:
        _render(fit, diff, written, inventory)
