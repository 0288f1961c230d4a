"""`homelab plan estimate`: what one llama-server run of one model puts on each GPU and on the host."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from homelab.errors import SettingsError
from homelab.vram.sizes import DEFAULT_GPU_OVERHEAD_BYTES, GIB, MAX_CONTEXT, MAX_GPU_LAYERS, MAX_PARALLEL, MIB
from homelab_app.cli.common import JsonFlag, err, out
from homelab_app.cli.plan_cmd import _MAX_FIT_GIB as MAX_FIT_GIB
from homelab_app.cli.plan_cmd import _MAX_OVERHEAD_MIB as MAX_OVERHEAD_MIB
from homelab_app.cli.plan_cmd import _fail as fail
from homelab_app.cli.plan_cmd import _size as size
from homelab_app.cli.plan_cmd import plan_app

if TYPE_CHECKING:
    from homelab.vram.estimate import Estimate

__all__ = ["estimate_command"]


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
        fail(exc)


def _gpu_sizes(text: str | None) -> tuple[int, ...]:
    """--gpus '24,24': bytes per GPU."""
    if text is None:
        return ()
    try:
        sizes = tuple(float(part) for part in text.split(","))
    except ValueError:
        fail(ValueError(f"--gpus needs GiB per GPU like 24,24, got {text!r}"))
    if not all(0 < size <= MAX_FIT_GIB for size in sizes):
        fail(ValueError(f"--gpus: each size must be above 0 and at most {MAX_FIT_GIB:.0f} GiB, got {text!r}"))
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
        cells = [size(n) for n in per_device] if split else [size(total) if total or label != "CUDA pool" else ""]
        table.add_row(label, *cells, host)

    if split:
        table.add_row("layers", *[str(d.layers) for d in e.devices], str(e.n_layers_total - e.n_gpu_layers))
    row("weights", [d.weights_bytes for d in e.devices], e.weights_gpu_bytes, size(e.weights_cpu_bytes))
    row("KV cache", [d.kv_bytes for d in e.devices], e.kv_gpu_bytes, size(e.kv_cpu_bytes))
    row("compute", [d.compute_bytes for d in e.devices], e.compute_gpu_bytes, size(e.compute_host_bytes))
    table.add_row("output", *[""] * max(len(e.devices) if split else 1, 1), size(e.output_bytes))
    if e.cuda_pool_bytes:
        row("CUDA pool", [d.cuda_pool_bytes for d in e.devices], e.cuda_pool_bytes, "")
    row("overhead", [d.overhead_bytes for d in e.devices], e.overhead_bytes, "")
    row("total", [d.total_bytes for d in e.devices], e.gpu_total_bytes, size(e.cpu_total_bytes))
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
        int, typer.Option("--overhead-mib", min=0, max=MAX_OVERHEAD_MIB, help="Per GPU: CUDA context, cuBLAS, pools.")
    ] = DEFAULT_GPU_OVERHEAD_BYTES // MIB,
    fit_gib: Annotated[
        float | None,
        typer.Option(
            "--fit-gib",
            min=0.0,
            max=MAX_FIT_GIB,
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
        fail(exc)
    if as_json:
        print(json.dumps(result.model_dump() | {"settings": settings.model_dump()}, indent=2))
    else:
        _render_estimate(result)
