"""The `homelab` command: core results rendered for people (rich) or scripts (`--json`).

Only this module imports typer and rich. Exit codes: 0 success, 1 the cluster is not
healthy (commands that check it), 2 bad input (an invalid cluster file, a bad option).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn
from rich.table import Table

from homelab import docker_ops as _docker_ops
from homelab import reports as _reports
from homelab.errors import HomelabError, InventoryError
from homelab.gateway.config import check_config, render_config
from homelab.gateway.importer import (
    DEFAULT_LLAMACPP_PORTS,
    import_litellm,
    load_litellm_config,
    render_inventory,
)
from homelab.health import Prognosis, SweepReport, open_probe_client, sweep
from homelab.history import HistoryError, HistoryStore, open_history
from homelab.history import HistoryError as _ReportHistoryError
from homelab.inventory import Inventory, load_inventory
from homelab.probe import EndpointState
from homelab.reports import ReportError as _ReportError
from homelab.router import (
    Decision,
    ModelError,
    Refreshed,
    RequestError,
    Router,
    open_router,
    route_lines,
)
from homelab.router.health_view import HealthSettings
from homelab.vram import (
    DEFAULT_GPU_OVERHEAD_BYTES,
    Estimate,
    Plan,
    PlanPolicy,
    RunSettings,
    SettingsError,
    VramError,
    estimate,
    max_gpu_layers,
    plan_lineup,
    shape_of,
)
from homelab.vram.lineup import lineup_from_inventory, load_lineup_file
from homelab.vram.settings import GIB, MIB

__all__ = ["app"]

EXIT_DEGRADED = 1
EXIT_INVALID = 2
EXIT_CRITICAL = 3

app = typer.Typer(
    name="homelab",
    help="Keep a home AI inference cluster healthy: sweeps, routing, VRAM plans, rollout, recovery.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
out = Console()
err = Console(stderr=True)

InventoryOption = Annotated[
    Path, typer.Option("--inventory", "-i", help="The cluster file.", envvar="HOMELAB_INVENTORY")
]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON instead of a table.")]


def _version(value: bool) -> None:
    if value:
        print(f"homelab {package_version('homelab-cluster')}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Keep a home AI inference cluster healthy."""


def _print_problems(exc: InventoryError) -> None:
    # Problems quote what the user wrote; escape it so "[x]" is shown, not taken as markup.
    for problem in exc.problems:
        err.print(f"[red]✗[/] {escape(str(problem))}", highlight=False, soft_wrap=True)


def _summary(inv: Inventory) -> dict[str, Any]:
    endpoints = list(inv.endpoints())
    return {
        "name": inv.name,
        "nodes": len(inv.nodes),
        "tiers": inv.tiers(),
        "endpoints": len(endpoints),
        "models": sum(len(e.models) for _, e in endpoints),
        "experts": sorted(c.value for c in inv.experts),
    }


@app.command()
def validate(
    files: Annotated[list[Path], typer.Argument(help="Cluster files to check.", show_default=False)],
    as_json: JsonFlag = False,
) -> None:
    """Check cluster files; print every problem as FILE:LINE: field: message.

    Exits 0 when all are valid, 2 when any is not.
    """
    results: list[dict[str, Any]] = []
    for path in files:
        try:
            inv = load_inventory(path)
        except InventoryError as exc:
            problems = [p.__dict__ for p in exc.problems]
            results.append({"file": str(path), "valid": False, "problems": problems})
            if not as_json:
                _print_problems(exc)
            continue
        summary = _summary(inv)
        results.append({"file": str(path), "valid": True, "summary": summary})
        if not as_json:
            out.print(
                f"[green]✓[/] {path}: {summary['nodes']} nodes in {len(summary['tiers'])} tiers, "
                f"{summary['endpoints']} endpoints, {summary['models']} models",
                highlight=False,
                soft_wrap=True,
            )
    if as_json:
        print(json.dumps(results, indent=2))
    if not all(r["valid"] for r in results):
        raise typer.Exit(EXIT_INVALID)


@app.command()
def schema() -> None:
    """Print the cluster file's JSON Schema (point your editor's YAML support at it)."""
    print(json.dumps(Inventory.model_json_schema(), indent=2))


def _load_or_exit(path: Path) -> Inventory:
    try:
        return load_inventory(path)
    except InventoryError as exc:
        _print_problems(exc)
        raise typer.Exit(EXIT_INVALID) from None


_STATE_STYLE = {EndpointState.UP: "green", EndpointState.SLOW: "yellow", EndpointState.DOWN: "red"}
_PROGNOSIS_STYLE = {Prognosis.OPERATIONAL: "green", Prognosis.DEGRADED: "yellow", Prognosis.CRITICAL: "bold red"}


def _render_sweep(report: SweepReport) -> None:
    for tier in report.tiers:
        style = {"HEALTHY": "green", "DEGRADED": "yellow", "DOWN": "red"}[tier.state]
        table = Table(title=f"tier {tier.name}: [{style}]{tier.state}[/]", title_justify="left")
        for column in ("endpoint", "kind", "state", "latency", "reason"):
            table.add_column(column, justify="right" if column == "latency" else "left")
        for r in (r for r in report.endpoints if r.tier == tier.name):
            table.add_row(
                f"{r.node}/{r.endpoint}",
                r.kind,
                f"[{_STATE_STYLE[r.state]}]{r.state}[/]",
                f"{r.latency_ms:.0f} ms",
                escape(r.detail or r.reason),
            )
        out.print(table)
    prognosis = report.cluster.prognosis
    out.print(f"cluster: [{_PROGNOSIS_STYLE[prognosis]}]{prognosis}[/]  ({report.duration_ms:.0f} ms)")
    for reason in report.cluster.reasons:
        out.print(f"  - {escape(reason)}", highlight=False)


@app.command("sweep")
def sweep_command(inventory: InventoryOption, as_json: JsonFlag = False) -> None:
    """Probe every endpoint once, concurrently, without Prefect.

    Exit codes: 0 every endpoint UP; 1 something is SLOW or DOWN (DEGRADED);
    3 the cluster is CRITICAL; 2 the cluster file is invalid.
    """
    inv = _load_or_exit(inventory)

    async def run() -> SweepReport:
        async with open_probe_client() as client:
            return await sweep(inv, client)

    report = asyncio.run(run())
    if as_json:
        print(report.model_dump_json(indent=2))
    else:
        _render_sweep(report)
    if report.cluster.prognosis is Prognosis.CRITICAL:
        raise typer.Exit(EXIT_CRITICAL)
    if not report.all_up:
        raise typer.Exit(EXIT_DEGRADED)


# -- VRAM planning: `homelab plan` (the inventory's lineup) and `homelab plan estimate` ------------

plan_app = typer.Typer(
    help="VRAM plans from GGUF metadata: the inventory's lineup on its GPUs, or one model's estimate.",
    rich_markup_mode=None,
)
app.add_typer(plan_app, name="plan")


def _gib(n: int) -> str:
    return f"{n / GIB:.1f} GiB"


def _size(n: int) -> str:
    """GiB from 1 GiB up, MiB below: an estimate's small buffers stay visible."""
    return _gib(n) if n >= GIB else f"{n / MIB:.0f} MiB"


def _fail(exc: Exception) -> NoReturn:
    """Print a planning error (no traceback) and exit 2."""
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        message = f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}"
    else:
        message = str(exc)
    err.print(f"[red]✗[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(EXIT_INVALID)


def _render_plan(plan: Plan) -> None:
    rows = [(p.model + (f" {p.file_type}" if p.file_type else "")) for g in plan.gpus for p in g.placements]
    width = max([len(r) for r in rows] + [len("total")]) + 2
    for gpu in plan.gpus:
        slot = gpu.slot
        out.print(f"{_gib(slot.vram_bytes)} GPU ({escape(slot.node)}, {escape(slot.name)})", highlight=False)
        for p in gpu.placements:
            label = p.model + (f" {p.file_type}" if p.file_type else "")
            e = p.estimate
            layers = f"all {e.n_layers_total} layers" if p.whole else f"{e.n_gpu_layers}/{e.n_layers_total} layers on GPU"
            out.print(f"  {escape(label):<{width}}{_gib(e.gpu_total_bytes):>9}  {layers}", highlight=False)
        if not gpu.placements:
            out.print("  (nothing placed)", highlight=False)
        out.print(
            f"  {'total':<{width}}{_gib(gpu.used_bytes):>9}  ({gpu.used_percent:.0f}% of {_gib(slot.vram_bytes)}; "
            f"{_gib(slot.reserve_bytes)} reserve, {_gib(max(gpu.free_bytes, 0))} free)",
            highlight=False,
        )
    for c in plan.cpu_only:
        out.print(f"CPU only: {escape(c.model)} ({escape(c.reason)})", highlight=False, soft_wrap=True)
    for u in plan.unsized:
        out.print(f"not sized: {escape(u.model)} ({escape(u.reason)})", highlight=False, soft_wrap=True)
    if plan.estimated_models:
        names = ", ".join(plan.estimated_models)
        out.print(f"estimated from names, not GGUF files: {escape(names)} (--models-dir or a lineup file reads the files)", highlight=False, soft_wrap=True)


@plan_app.callback(invoke_without_command=True)
def plan_command(
    ctx: typer.Context,
    inventory: Annotated[
        Path | None, typer.Option("--inventory", "-i", help="The cluster file.", envvar="HOMELAB_INVENTORY")
    ] = None,
    lineup: Annotated[Path | None, typer.Option("--lineup", help="Priorities, GGUF paths, contexts (YAML).")] = None,
    models_dir: Annotated[Path | None, typer.Option("--models-dir", help="Where the containers' GGUF files can be read.")] = None,
    flash_attn: Annotated[bool, typer.Option("--flash-attn/--no-flash-attn", help="Plan with flash attention.")] = True,
    cache_type: Annotated[str, typer.Option("--cache-type", help="KV cache type: f16, q8_0, q4_0...")] = "f16",
    overhead_mib: Annotated[
        int, typer.Option("--overhead-mib", min=0, help="Per model and GPU: CUDA context, cuBLAS, pools.")
    ] = DEFAULT_GPU_OVERHEAD_BYTES // MIB,
    as_json: JsonFlag = False,
) -> None:
    """Place the inventory's llama.cpp models on its GPUs; without a subcommand, print the plan.

    Exit codes: 0 a plan (CPU-only models included); 2 bad input.
    """
    if ctx.invoked_subcommand is not None:
        return
    if inventory is None:
        _fail(ValueError("homelab plan needs --inventory FILE (or HOMELAB_INVENTORY)"))
    inv = _load_or_exit(inventory)
    try:
        lineup_file = load_lineup_file(lineup) if lineup else None
        built = lineup_from_inventory(inv, models_dir=models_dir, lineup_file=lineup_file)
        policy = PlanPolicy(flash_attn=flash_attn, cache_type=cache_type, gpu_overhead_bytes=overhead_mib * MIB)
        plan = plan_lineup(built.entries, built.slots, policy, built.unsized)
    except (VramError, ValidationError) as exc:
        _fail(exc)
    if as_json:
        print(plan.model_dump_json(indent=2))
    else:
        _render_plan(plan)


def _render_estimate(e: Estimate) -> None:
    how = " (estimated from its name)" if e.estimated_shape else ""
    out.print(
        f"{escape(e.model)}{how}: context {e.n_ctx} ({e.n_ctx_seq} per sequence), "
        f"{e.n_gpu_layers}/{e.n_layers_total} layers on GPU",
        highlight=False,
        soft_wrap=True,
    )
    table = Table(show_edge=False, box=None)
    for column in ("", "GPU", "host"):
        table.add_column(column, justify="right" if column else "left")
    table.add_row("weights", _size(e.weights_gpu_bytes), _size(e.weights_cpu_bytes))
    table.add_row("KV cache", _size(e.kv_gpu_bytes), _size(e.kv_cpu_bytes))
    table.add_row("compute", _size(e.compute_gpu_bytes), _size(e.compute_host_bytes))
    table.add_row("output", "", _size(e.output_bytes))
    table.add_row("overhead", _size(e.overhead_bytes), "")
    table.add_row("total", _size(e.gpu_total_bytes), _size(e.cpu_total_bytes))
    out.print(table)


@plan_app.command("estimate")
def estimate_command(
    model: Annotated[str, typer.Argument(help="A GGUF file, or a name to estimate from: 'qwen2.5-14b Q4_K_M'.")],
    ctx_size: Annotated[int | None, typer.Option("--ctx", "-c", min=1, help="Context; default: the model's.")] = None,
    ngl: Annotated[int, typer.Option("--ngl", min=-1, help="GPU layers, output layer included; -1: all.")] = -1,
    parallel: Annotated[int, typer.Option("--parallel", min=1, help="Parallel sequences (-np).")] = 1,
    cache_type: Annotated[str, typer.Option("--cache-type", help="KV cache type: f16, q8_0, q4_0...")] = "f16",
    flash_attn: Annotated[bool, typer.Option("--flash-attn", help="With flash attention (-fa on).")] = False,
    cpu_only: Annotated[bool, typer.Option("--cpu-only", help="A CPU-only llama.cpp build.")] = False,
    ubatch: Annotated[int, typer.Option("--ubatch", min=1, help="Micro-batch (-ub).")] = 512,
    overhead_mib: Annotated[
        int, typer.Option("--overhead-mib", min=0, help="Per GPU: CUDA context, cuBLAS, pools.")
    ] = DEFAULT_GPU_OVERHEAD_BYTES // MIB,
    fit_gib: Annotated[
        float | None, typer.Option("--fit-gib", min=0.0, help="Instead of --ngl: the most layers that fit this budget.")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Bytes one llama-server run puts on the GPU and on the CPU (weights, KV cache, compute)."""
    try:
        shape = shape_of(model)
        settings = RunSettings(
            ctx_size=ctx_size, parallel=parallel, cache_type_k=cache_type, cache_type_v=cache_type,
            flash_attn=flash_attn, n_gpu_layers=ngl, n_ubatch=ubatch, backend="cpu" if cpu_only else "cuda",
            gpu_overhead_bytes=overhead_mib * MIB,
        )  # fmt: skip
        if fit_gib is None:
            result = estimate(shape, settings)
        elif (fitted := max_gpu_layers(shape, settings, int(fit_gib * GIB))) is None:
            raise SettingsError(f"not even -ngl 0 fits {fit_gib} GiB: a CUDA build computes on the GPU anyway")
        else:
            result = fitted
    except (VramError, ValidationError) as exc:
        _fail(exc)
    if as_json:
        print(json.dumps(result.model_dump() | {"settings": settings.model_dump()}, indent=2))
    else:
        _render_estimate(result)


# -- LiteLLM gateway: `homelab gateway config` and `homelab gateway import` -----------------------

gateway_app = typer.Typer(
    help="The LiteLLM gateway: its config from the cluster file, or a cluster file from its config.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(gateway_app, name="gateway")
EXIT_OUT_OF_DATE = 1
OutputOption = Annotated[Path | None, typer.Option("--output", "-o", help="Write to this file instead of stdout.")]


def _emit(text: str, output: Path | None) -> None:
    if output is None:
        print(text, end="")
        return
    output.write_text(text, encoding="utf-8")
    err.print(f"[green]✓[/] wrote {escape(str(output))}", highlight=False, soft_wrap=True)


@gateway_app.command("config")
def gateway_config(
    inventory: InventoryOption,
    output: OutputOption = None,
    check: Annotated[
        Path | None, typer.Option("--check", help="Compare with this file (the proxy's) instead of writing.")
    ] = None,
    autoroute: Annotated[
        bool,
        typer.Option("--autoroute/--no-autoroute", help="Model 'auto' and its hook (needs homelab in the proxy)."),
    ] = True,
) -> None:
    """Write the LiteLLM proxy config for the cluster.

    Exit codes: 0 written, or --check found the file up to date; 1 --check found it out of
    date (the unified diff is printed); 2 an invalid cluster file or an unreadable --check file.
    """
    if output is not None and check is not None:
        err.print("[red]✗[/] give --output or --check, not both", highlight=False)
        raise typer.Exit(EXIT_INVALID)
    text = render_config(_load_or_exit(inventory), autoroute=autoroute)
    if check is None:
        _emit(text, output)
        return
    try:
        current = check.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        err.print(f"[red]✗[/] {escape(str(check))}: cannot read: {escape(str(exc))}", highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_INVALID) from None
    diff = check_config(text, current, str(check))
    if diff:
        print("".join(diff), end="")
        err.print(f"[yellow]![/] {escape(str(check))} is out of date", highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_OUT_OF_DATE)
    out.print(f"[green]✓[/] {escape(str(check))} is up to date", highlight=False, soft_wrap=True)


@gateway_app.command("import")
def gateway_import(
    config: Annotated[Path, typer.Argument(help="The LiteLLM proxy config to read.", show_default=False)],
    output: OutputOption = None,
    name: Annotated[str, typer.Option("--name", help="The cluster's name.")] = "homelab",
    llamacpp_port: Annotated[
        list[int] | None,
        typer.Option("--llamacpp-port", help="An openai/ port that is a llama-server (repeat; default 8080)."),
    ] = None,
) -> None:
    """Write a starting cluster file from an existing LiteLLM proxy config.

    Exit codes: 0 written; 2 the config cannot be imported (each problem names its entry) or
    the output file already exists.
    """
    if output is not None and output.exists():
        err.print(f"[red]✗[/] {escape(str(output))} exists: choose another --output", highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_INVALID)
    try:
        data, source = load_litellm_config(config)
        inv = import_litellm(data, source, name=name, llamacpp_ports=llamacpp_port or DEFAULT_LLAMACPP_PORTS)
    except InventoryError as exc:
        _print_problems(exc)
        raise typer.Exit(EXIT_INVALID) from None
    _emit(render_inventory(inv, config.name), output)


# ---- route: classify a request and pick its expert (homelab.router) ----

_ROUTE_DEFAULT_ENDPOINT = "/v1/chat/completions"


def _route_history(inv: Inventory, inventory: Path) -> HistoryStore | None:
    try:
        return open_history(inv.history.url, relative_to=inventory.parent)
    except HistoryError as exc:
        err.print(f"[yellow]![/] {escape(str(exc))}; routing on live probes only", highlight=False, soft_wrap=True)
        return None


def _open_route(inv: Inventory | None, inventory: Path | None, ttl_s: float, probe: bool) -> Router:
    """The router with the freshest view the history and (unless --no-probe) live probes give."""
    if inv is None or inventory is None:
        return Router(None)
    settings = HealthSettings(ttl_s=ttl_s)
    store = _route_history(inv, inventory)

    async def run(history: HistoryStore | None) -> tuple[Router, Refreshed]:
        if not probe:
            return await open_router(inv, None, history, settings)
        async with open_probe_client() as client:
            return await open_router(inv, client, history, settings)

    try:
        try:
            router, refreshed = asyncio.run(run(store))
        except HistoryError as exc:
            err.print(f"[yellow]![/] {escape(str(exc))}; routing on live probes only", highlight=False, soft_wrap=True)
            router, refreshed = asyncio.run(run(None))
        if refreshed.sweep is not None and store is not None:
            try:
                store.record_sweep(refreshed.sweep)
            except HistoryError as exc:
                err.print(f"[yellow]![/] {escape(str(exc))}", highlight=False, soft_wrap=True)
    finally:
        if store is not None:
            store.close()
    return router


def _render_decision(d: Decision) -> None:
    conf = f" ({d.confidence:.2f})" if d.confidence is not None else ""
    out.print(f"category  [bold]{d.category}[/]{conf}  [dim]{escape(d.basis)}[/]", highlight=False)
    if d.model is None:
        out.print(f"model     [red]none[/]: {escape(d.reason)}", highlight=False, soft_wrap=True)
    else:
        out.print(f"model     [green]{escape(d.model)}[/] at {escape(d.url or '')} ({d.node}/{d.endpoint})", highlight=False)
        out.print(f"why       {escape(d.reason)}", highlight=False, soft_wrap=True)
        out.print(f"fallbacks {escape(', '.join(d.fallbacks) or 'none')}", highlight=False)
    if d.health_age_s is not None:
        out.print(f"health    {d.health_age_s:.0f} s old ({d.health_source or 'history'})", highlight=False)
    if d.candidates:
        table = Table(title="candidates, in order", title_justify="left")
        for column in ("#", "alias", "from", "state", "note"):
            table.add_column(column)
        for i, c in enumerate(d.candidates, start=1):
            state = f"[{_STATE_STYLE[c.state]}]{c.state}[/]" if c.state else "-"
            mark = " ←" if c.alias == d.model else ""
            table.add_row(str(i), escape(c.alias) + mark, c.chain, state, escape(c.note))
        out.print(table)


def _route_file(router: Router, requests: Path, as_json: bool) -> None:
    """One JSON line (or table row) per request line, in order; bad lines on stderr with their number."""
    name = "stdin" if str(requests) == "-" else str(requests)

    def report(number: int, message: str) -> None:
        err.print(f"[red]✗[/] {escape(name)}:{number}: {escape(message)}", highlight=False, soft_wrap=True)

    try:
        stdin = str(requests) == "-"
        handle = open(0 if stdin else requests, encoding="utf-8", errors="replace", closefd=not stdin)  # noqa: SIM115
    except OSError as exc:
        err.print(f"[red]✗[/] cannot read {escape(name)}: {escape(exc.strerror or str(exc))}", highlight=False)
        raise typer.Exit(EXIT_INVALID) from None
    table = None if as_json else Table("line", "category", "conf", "model", "reason")
    with handle:
        for item in route_lines(handle, router.decide, report):
            if table is None:
                print(json.dumps(item, ensure_ascii=False), flush=True)
            else:
                conf = f"{item['confidence']:.2f}" if item.get("confidence") is not None else "-"
                why = item.get("error") or item.get("reason") or ""
                table.add_row(str(item["line"]), str(item["category"]), conf, str(item["model"]), escape(why))
    if table is not None:
        out.print(table)


@app.command("route")
def route_command(
    prompt: Annotated[str | None, typer.Argument(help="A prompt to route, sent as one user message.", show_default=False)] = None,
    inventory: Annotated[
        Path | None,
        typer.Option("--inventory", "-i", help="The cluster file; without one, requests are only classified.",
                     envvar="HOMELAB_INVENTORY"),
    ] = None,
    requests: Annotated[
        Path | None,
        typer.Option("--requests", help='JSON lines {"endpoint": PATH, "body": {...}} to route ("-": stdin).'),
    ] = None,
    as_json: JsonFlag = False,
    ttl_s: Annotated[float, typer.Option("--ttl", min=0, help="Seconds a health result stays fresh before a live probe.")] = 60.0,
    no_probe: Annotated[bool, typer.Option("--no-probe", help="Route on the history alone; probe nothing.")] = False,
    endpoint: Annotated[str, typer.Option("--endpoint", help="The API path PROMPT is sent to.")] = _ROUTE_DEFAULT_ENDPOINT,
) -> None:
    """Classify a request (code, reason, chat, vision, fast, embed) and pick the best healthy expert.

    Give a PROMPT, or --requests FILE to route one request per line (one JSON line out per
    line in, in order, with --json). Exit codes: 0 routed (for --requests: the file was read;
    lines that could not be routed are reported on stderr and as {"error": ...} lines);
    1 a PROMPT has no healthy model to go to; 2 bad input.
    """
    if (prompt is None) == (requests is None):
        err.print("[red]✗[/] give a PROMPT or --requests FILE (exactly one)", highlight=False)
        raise typer.Exit(EXIT_INVALID)
    inv = _load_or_exit(inventory) if inventory is not None else None
    try:
        router = _open_route(inv, inventory, ttl_s, probe=not no_probe)
        if requests is not None:
            _route_file(router, requests, as_json)
            return
        decision = router.decide(endpoint, {"messages": [{"role": "user", "content": prompt}]})
    except (ModelError, RequestError) as exc:
        err.print(f"[red]✗[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_INVALID) from None
    if as_json:
        print(decision.model_dump_json(indent=2))
    else:
        _render_decision(decision)
    if inv is not None and decision.model is None:
        raise typer.Exit(EXIT_DEGRADED)


# ---- report: uptime, latency, incidents, VRAM over a period (homelab.reports) ----


def _render_report(report: _reports.HealthReport) -> None:
    """The headline tables on the terminal; the full report is the HTML, the CSV and --json."""
    out.print(f"[bold]Cluster health report[/]: {report.period.start:%Y-%m-%d %H:%M} to {report.period.end:%Y-%m-%d %H:%M} UTC")
    for note in report.notes:
        out.print(f"[yellow]![/] {escape(note)}", highlight=False)
    for name in ("uptime_tier", "uptime_node", "latency", "incidents", "flapping", "gpus"):
        frame = report.tables[name]
        table = Table(title=_reports.TITLES[name], title_justify="left")
        for column in frame.columns:
            table.add_column(str(column))
        for row in frame.head(20).itertuples(index=False):
            table.add_row(*(_reports.cell_text(v) for v in row))
        out.print(table if not frame.empty else f"{_reports.TITLES[name]}: no rows")


@app.command("report")
def report_command(
    inventory: InventoryOption,
    since: Annotated[str, typer.Option("--since", help="Period: 7d, 36h, 2w, or an ISO start date.")] = "7d",
    html: Annotated[Path | None, typer.Option("--html", help="Write a standalone HTML report here.")] = None,
    csv: Annotated[Path | None, typer.Option("--csv", help="Write one CSV per table (and PNG charts) here.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Report uptime, latency, incidents and VRAM use from the history database."""
    inv = _load_or_exit(inventory)
    try:
        period = _reports.parse_since(since)
        with _reports.open_report_history(inv.history.url, relative_to=inventory.parent) as history:
            report = _reports.build_report(history, period, inv)
        if html is not None:
            try:
                html.write_text(_reports.to_html(report))
            except OSError as exc:
                raise _ReportError(f"cannot write {html}: {exc.strerror or exc}") from exc
        if csv is not None:
            _reports.write_csv(report, csv)
    except (_ReportError, _ReportHistoryError) as exc:
        err.print(f"[red]✗[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_INVALID) from None
    if as_json:
        out.print_json(json.dumps(_reports.to_json(report)))
    else:
        _render_report(report)


@app.command("recover")
def recover_command(
    node: Annotated[str, typer.Argument(help="The node to recover.")],
    inventory: InventoryOption,
    vault_block: Annotated[str | None, typer.Option("--vault-block", help="A saved Vault Secrets block.")] = None,
    restart_command: Annotated[
        str | None, typer.Option("--restart-command", help="Replaces the OS default Docker restart.")
    ] = None,
) -> None:
    """Recover a down node now: restart Docker over SSH or wake it, then its containers one at a time.

    Runs the `recover-node` Prefect flow in a child process (homelab/ itself never imports
    Prefect); it prints the incident. Exit code 1 when the node could not be recovered.
    """
    import subprocess
    import sys

    argv = [sys.executable, "-m", "flows.recover_node", node, "--inventory", str(inventory)]
    argv += ["--vault-block", vault_block] if vault_block else []
    argv += ["--restart-command", restart_command] if restart_command else []
    raise typer.Exit(subprocess.run(argv, check=False).returncode)


# --- rollout ------------------------------------------------------------------------------

EXIT_ROLLOUT_FAILED = 1
_STEP_STYLE = {"done": "green", "rolled back": "yellow", "failed": "red", "not run": "dim"}


def _rollout_progress(progress: Progress) -> _docker_ops.ProgressCallback:
    """Turn the core's copy callbacks into rich bars (one per file and phase) with bytes per second."""
    bars: dict[tuple[str, str], Any] = {}

    def update(p: _docker_ops.CopyProgress) -> None:
        key = (p.file, p.phase)
        if key not in bars:
            bars[key] = progress.add_task(f"{p.phase} {p.file}", total=p.total_bytes)
        progress.update(bars[key], completed=p.done_bytes)

    return update


def _render_rollout(report: _docker_ops.RolloutReport) -> None:
    title = "rollout plan" if report.dry_run else "rollout"
    table = Table(title=f"{title} on {escape(report.node)}", title_justify="left")
    for column in ("step", "status", "seconds", "detail") if not report.dry_run else ("step",):
        table.add_column(column)
    if report.dry_run:
        for step in report.plan.steps:
            table.add_row(escape(step.summary()))
    for o in report.outcomes:
        style = _STEP_STYLE[o.status.value]
        table.add_row(escape(o.summary), f"[{style}]{o.status}[/]", f"{o.seconds:g}", escape(o.detail))
    out.print(table if report.plan.steps else f"{title} on {escape(report.node)}: nothing to do")
    for reason in report.plan.unchanged:
        out.print(f"  [dim]= {escape(reason)}[/]", highlight=False)
    if report.failure:
        err.print(f"[red]✗[/] {escape(report.failure)}", highlight=False, soft_wrap=True)
        for outcome in report.outcomes:
            for line in outcome.gate.log_tail if outcome.gate else []:
                err.print(f"    {escape(line)}", highlight=False, soft_wrap=True)


@app.command("rollout")
def rollout_command(
    inventory: InventoryOption,
    node: Annotated[str, typer.Option("--node", help="The node whose containers to roll out.")],
    models_dir: Annotated[
        Path | None, typer.Option("--models-dir", help="Folder here with the GGUF files, by model_file name.")
    ] = None,
    node_models_dir: Annotated[
        str | None, typer.Option("--node-models-dir", help="Or: absolute folder on the node with the GGUF files.")
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan of actions; change nothing.")] = False,
    helper_image: Annotated[
        str, typer.Option("--helper-image", help="Image of the short-lived copy helpers.")
    ] = _docker_ops.HelperSettings().image,
    as_json: JsonFlag = False,
) -> None:
    """Copy a node's models into named volumes and start its llama.cpp containers one at a time.

    Runs homelab's rollout directly (no Prefect server needed; the `rollout` flow runs the same
    steps as tasks). Exit codes: 0 done (or nothing to do); 1 a step failed and was rolled
    back, or the engine failed; 2 bad input (cluster file, node, model folder).
    """
    inv = _load_or_exit(inventory)
    target = next((n for n in inv.nodes if n.name == node), None)
    if target is None:
        err.print(f"[red]✗[/] no node {escape(node)!r} in {escape(str(inventory))}", highlight=False)
        raise typer.Exit(EXIT_INVALID)
    files = sorted({e.container.model_file for e in target.endpoints if e.container})
    try:
        sources = _docker_ops.model_sources(files, models_dir=models_dir, node_models_dir=node_models_dir)
    except (_docker_ops.ModelSourceMissing, ValueError) as exc:
        err.print(f"[red]✗[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_INVALID) from None
    settings = _docker_ops.RolloutSettings(helper=_docker_ops.HelperSettings(image=helper_image))
    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn())
    try:
        with (
            Progress(*columns, console=err, transient=True, disable=as_json) as progress,
            contextlib.closing(_docker_ops.open_engine(target)) as engine,
        ):
            report = _docker_ops.roll_out_node(
                engine, inv, target, sources, settings, dry_run=dry_run, progress=_rollout_progress(progress)
            )
    except HomelabError as exc:
        err.print(f"[red]✗[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_ROLLOUT_FAILED) from None
    if as_json:
        print(report.model_dump_json(indent=2))
    else:
        _render_rollout(report)
    if not report.ok:
        raise typer.Exit(EXIT_ROLLOUT_FAILED)
