"""The `homelab` command: core results rendered for people (rich) or scripts (`--json`).

Only this module imports typer and rich. Exit codes: 0 success, 1 the cluster is not
healthy (commands that check it), 2 bad input (an invalid cluster file, a bad option).
"""

from __future__ import annotations

import asyncio
import json
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from homelab.errors import InventoryError
from homelab.health import Prognosis, SweepReport, open_probe_client, sweep
from homelab.inventory import Inventory, load_inventory
from homelab.probe import EndpointState

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
