"""The `homelab` command: core results rendered for people (rich) or scripts (`--json`).

Only this module imports typer and rich. Exit codes: 0 success, 1 the cluster is not
healthy (commands that check it), 2 bad input (an invalid cluster file, a bad option).
"""

from __future__ import annotations

import json
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from homelab.errors import InventoryError
from homelab.inventory import Inventory, load_inventory

__all__ = ["app"]

EXIT_INVALID = 2

app = typer.Typer(
    name="homelab",
    help="Keep a home AI inference cluster healthy: sweeps, routing, VRAM plans, rollout, recovery.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
out = Console()
err = Console(stderr=True)

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
                for problem in exc.problems:
                    err.print(f"[red]✗[/] {problem}", markup=True, highlight=False, soft_wrap=True)
            continue
        summary = _summary(inv)
        results.append({"file": str(path), "valid": True, "summary": summary})
        if not as_json:
            out.print(
                f"[green]✓[/] {path}: {summary['nodes']} nodes in {len(summary['tiers'])} tiers, "
                f"{summary['endpoints']} endpoints, {summary['models']} models",
                highlight=False,
            )
    if as_json:
        print(json.dumps(results, indent=2))
    if not all(r["valid"] for r in results):
        raise typer.Exit(EXIT_INVALID)


@app.command()
def schema() -> None:
    """Print the cluster file's JSON Schema (point your editor's YAML support at it)."""
    print(json.dumps(Inventory.model_json_schema(), indent=2))
