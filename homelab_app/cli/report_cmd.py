"""`homelab report`: uptime, latency, incidents and VRAM use over a period."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from homelab.files import write_atomic
from homelab_app.cli.common import InventoryOption, JsonFlag, app, load_or_exit, out

if TYPE_CHECKING:
    from homelab.reports import HealthReport

__all__ = ["report_command"]


def _render_report(report: HealthReport) -> None:
    """The headline tables on the terminal; the full report is the HTML, the CSV and --json."""
    from homelab import reports  # see report_command

    out.print(
        f"[bold]Cluster health report[/]: {report.period.start:%Y-%m-%d %H:%M} "
        f"to {report.period.end:%Y-%m-%d %H:%M} UTC"
    )
    for note in report.notes:
        out.print(f"[yellow]![/] {escape(note)}", highlight=False)
    for name in ("uptime_tier", "uptime_node", "latency", "incidents", "flapping", "gpus"):
        frame = report.tables[name]
        table = Table(title=reports.TITLES[name], title_justify="left")
        for column in frame.columns:
            table.add_column(str(column))
        for row in frame.head(20).itertuples(index=False):
            table.add_row(*(reports.cell_text(v) for v in row))
        out.print(table if not frame.empty else f"{reports.TITLES[name]}: no rows")


@app.command("report")
def report_command(
    inventory: InventoryOption,
    since: Annotated[str, typer.Option("--since", help="Period: 7d, 36h, 2w, or an ISO start date.")] = "7d",
    html: Annotated[Path | None, typer.Option("--html", help="Write a standalone HTML report here.")] = None,
    csv: Annotated[Path | None, typer.Option("--csv", help="Write one CSV per table (and PNG charts) here.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Report uptime, latency, incidents and VRAM use from the history database.

    Exit codes: 0 reported; 2 an invalid cluster file or period, a history database that
    cannot be read, or an output that cannot be written.
    """
    # Imported here, not at the top: pandas and matplotlib take over a second to import, and
    # only this command should pay for them (every other `homelab` call starts without).
    from homelab import reports

    inv = load_or_exit(inventory)
    period = reports.parse_since(since)
    with reports.open_report_history(inv.history.url, relative_to=inventory.parent) as history:
        report = reports.build_report(history, period, inv)
    if html is not None:
        # Atomic, and never through a FIFO (writing one waits for a reader) or a device.
        write_atomic(html, reports.to_html(report).encode())
    if csv is not None:
        reports.write_csv(report, csv)
    if as_json:
        out.print_json(json.dumps(reports.to_json(report)))
    else:
        _render_report(report)
