"""`homelab sweep`: one concurrent health sweep, without Prefect."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from homelab_app.cli.common import (
    EXIT_CRITICAL,
    EXIT_DEGRADED,
    STATE_STYLE,
    InventoryOption,
    JsonFlag,
    app,
    load_or_exit,
    out,
)

if TYPE_CHECKING:
    from homelab.health.sweep import SweepReport
    from homelab.inventory import Inventory

__all__ = ["sweep_command"]


# Keyed by the Prognosis values (a StrEnum equals its value): the sweep's models load when it runs.
_PROGNOSIS_STYLE = {"OPERATIONAL": "green", "DEGRADED": "yellow", "CRITICAL": "bold red"}


def _render_sweep(report: SweepReport, inv: Inventory) -> None:
    aliases = {(node.name, endpoint.name): [m.alias for m in endpoint.models] for node, endpoint in inv.endpoints()}
    for tier in report.tiers:
        style = {"HEALTHY": "green", "DEGRADED": "yellow", "DOWN": "red"}[tier.state]
        table = Table(title=f"tier {tier.name}: [{style}]{tier.state}[/]", title_justify="left")
        for column in ("endpoint", "kind", "state", "latency", "reason", "models can"):
            table.add_column(column, justify="right" if column == "latency" else "left")
        for r in (r for r in report.endpoints if r.tier == tier.name):
            can = [f"{a}: {report.capabilities[a]}" for a in aliases.get((r.node, r.endpoint), [])]
            table.add_row(
                f"{r.node}/{r.endpoint}",
                r.kind,
                f"[{STATE_STYLE[r.state]}]{r.state}[/]",
                f"{r.latency_ms:.0f} ms",
                escape(r.detail or r.reason),
                escape("\n".join(can)),
            )
        out.print(table)
    if report.external:
        table = Table(title="external models (the gateway passes them through)", title_justify="left")
        for column in ("model_name", "provider", "api_base", "state", "note"):
            table.add_column(column)
        for x in report.external:
            shown = (x.model_name, x.provider, x.api_base or "-", x.state, x.note)
            table.add_row(*(escape(value) for value in shown))
        out.print(table)
    prognosis = report.cluster.prognosis
    out.print(f"cluster: [{_PROGNOSIS_STYLE[prognosis]}]{prognosis}[/]  ({report.duration_ms:.0f} ms)")
    for reason in report.cluster.reasons:
        out.print(f"  - {escape(reason)}", highlight=False)


@app.command("sweep")
def sweep_command(
    inventory: InventoryOption,
    as_json: JsonFlag = False,
    probe_external: Annotated[
        bool | None,
        typer.Option(
            "--probe-external/--no-probe-external",
            help="Probe the gateway's external models that have an api_base (default: gateway.probe_external).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Probe every endpoint once, concurrently, without Prefect.

    External models (gateway.external: cloud APIs, wildcards) are listed as "external" and
    not probed unless asked; they count in no verdict.

    Exit codes: 0 every endpoint UP; 1 something is SLOW or DOWN (DEGRADED);
    3 the cluster is CRITICAL; 2 the cluster file is invalid.
    """
    import asyncio

    from homelab.health.http import open_probe_client
    from homelab.health.sweep import Prognosis, sweep

    inv = load_or_exit(inventory)

    async def run() -> SweepReport:
        async with open_probe_client() as client:
            return await sweep(inv, client, probe_external=probe_external)

    report = asyncio.run(run())
    if as_json:
        print(report.model_dump_json(indent=2))
    else:
        _render_sweep(report, inv)
    if report.cluster.prognosis is Prognosis.CRITICAL:
        raise typer.Exit(EXIT_CRITICAL)
    if not report.all_up:
        raise typer.Exit(EXIT_DEGRADED)
