"""`homelab rollout`: put a node's llama.cpp containers in the inventory's state."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from homelab import docker_ops as _docker_ops
from homelab.cli.common import (
    EXIT_INVALID,
    InventoryOption,
    JsonFlag,
    app,
    err,
    load_or_exit,
    out,
)
from homelab.errors import HomelabError
from homelab.gateway.config import regenerate_config
from homelab.vram import VramError
from homelab.vram.node_plan import plan_node_vram

__all__ = ["rollout_command"]


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
    for line in report.vram:
        out.print(f"  [dim]vram: {escape(line)}[/]", highlight=False)
    if report.gateway:
        out.print(f"  gateway: {escape(report.gateway)}", highlight=False)
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
    gateway_config: Annotated[
        Path | None,
        typer.Option("--gateway-config", help="The LiteLLM proxy's config file: regenerated after a successful rollout."),
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
    back, or the engine failed; 2 bad input (cluster file, node, model folder) or a model that
    does not fit the node's GPUs (the VRAM plan runs first; nothing is changed).
    """
    inv = load_or_exit(inventory)
    target = next((n for n in inv.nodes if n.name == node), None)
    if target is None:
        err.print(f"[red]✗[/] no node {escape(node)!r} in {escape(str(inventory))}", highlight=False)
        raise typer.Exit(EXIT_INVALID)
    files = sorted({e.container.model_file for e in target.endpoints if e.container})
    try:
        sources = _docker_ops.model_sources(files, models_dir=models_dir, node_models_dir=node_models_dir)
        vram = plan_node_vram(inv, target, models_dir=models_dir)
    except (_docker_ops.ModelSourceMissing, ValueError, VramError) as exc:
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
                engine, inv, target, sources, settings, dry_run=dry_run, vram=vram, progress=_rollout_progress(progress)
            )
        if gateway_config and report.ok and not dry_run:
            report = report.model_copy(update={"gateway": regenerate_config(inv, gateway_config)})
    except (HomelabError, OSError) as exc:
        err.print(f"[red]✗[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_ROLLOUT_FAILED) from None
    if as_json:
        print(report.model_dump_json(indent=2))
    else:
        _render_rollout(report)
    if not report.ok:
        raise typer.Exit(EXIT_ROLLOUT_FAILED)
