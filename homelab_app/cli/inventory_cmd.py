"""`homelab validate` and `homelab schema`: the cluster file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from homelab.errors import InventoryError
from homelab_app.cli.common import (
    EXIT_INVALID,
    JsonFlag,
    app,
    out,
    print_notes,
    print_problems,
)

if TYPE_CHECKING:
    from homelab.inventory import Inventory

__all__ = ["schema", "validate"]


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

    Notes in the same form say where a valid file is read differently from how it is written
    (an endpoint URL with an API path such as /v1 on it). Exits 0 when all are valid, 2 when any is not.
    """
    from homelab.inventory import load_inventory_with_notes

    results: list[dict[str, Any]] = []
    for path in files:
        try:
            inv, notes = load_inventory_with_notes(path)
        except InventoryError as exc:
            problems = [p.__dict__ for p in exc.problems]
            results.append({"file": str(path), "valid": False, "problems": problems})
            if not as_json:
                print_problems(exc)
            continue
        summary = _summary(inv)
        results.append({"file": str(path), "valid": True, "summary": summary, "notes": [n.__dict__ for n in notes]})
        if not as_json:
            print_notes(notes)
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
    from homelab.inventory import Inventory

    print(json.dumps(Inventory.model_json_schema(), indent=2))
