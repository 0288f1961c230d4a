"""Build the full health and VRAM report of a period: every table as a DataFrame, plus notes.

Why one object: the CLI, the `daily-report` flow, the notebook and the benchmark all want the
same numbers; they differ only in how they render them (`homelab.reports.render`).
Before reading, the store's roll-ups and incidents are brought up to date, so a report is
current even when no flow has done that since the last sweep.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from sqlalchemy.engine import make_url

from homelab.errors import HistoryError, VramError
from homelab.history import HistoryStore, open_history, translate_errors
from homelab.inventory import Inventory
from homelab.reports import frames, queries
from homelab.reports.period import Period
from homelab.vram.lineup import lineup_from_inventory
from homelab.vram.planner import plan_lineup

__all__ = ["TABLE_NAMES", "HealthReport", "build_report", "open_report_history", "planned_vram_gib"]

# Tables in the order renderings show them.
TABLE_NAMES = (
    "uptime_tier",
    "uptime_node",
    "uptime_endpoint",
    "uptime_tier_daily",
    "uptime_node_daily",
    "latency",
    "incidents",
    "flapping",
    "gpus",
    "models",
)


@dataclass
class HealthReport:
    """A period's report: `tables` by name (see `TABLE_NAMES`), chart data, and notes for the reader."""

    period: Period
    tables: dict[str, pd.DataFrame]
    uptime_timeline: pd.DataFrame
    vram_timeline: pd.DataFrame
    endpoint_daily: pd.DataFrame
    notes: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        """No probe and no VRAM sample in the period."""
        return bool(self.tables["uptime_endpoint"].empty and self.tables["gpus"].empty)


def planned_vram_gib(inventory: Inventory | None) -> dict[tuple[str, int], float]:
    """What the VRAM planner puts on each GPU (node, index), to set against what was used.

    The plan is the one `homelab plan --inventory` prints, sized from the model names when no
    GGUF files are at hand. A lineup the planner cannot size leaves the column empty.
    """
    if inventory is None:
        return {}
    try:
        lineup = lineup_from_inventory(inventory)
        plan = plan_lineup(lineup.entries, lineup.slots, unsized=lineup.unsized)
    except VramError:
        return {}
    return {(use.slot.node, use.slot.index): use.used_bytes / frames.GIB for use in plan.gpus}


def _notes(report: HealthReport, inventory: Inventory | None, future: dict[str, int]) -> list[str]:
    notes: list[str] = []
    if report.tables["uptime_endpoint"].empty:
        notes.append("no sweep in this period: uptime and latency are empty")
    if report.tables["gpus"].empty:
        notes.append("no VRAM sample in this period")
    for table, count in future.items():
        if count:
            notes.append(f"{count} {table} rows are stamped in the future (clock skew?) and were left out")
    if inventory is not None:
        known = {node.name for node in inventory.nodes}
        gone = sorted(set(report.tables["uptime_node"].get("node", [])) - known)
        for node in gone:
            notes.append(f"node {node} is in the history but no longer in the inventory")
    return notes


def build_report(
    store: HistoryStore,
    period: Period,
    inventory: Inventory | None = None,
    flap_threshold: int = 3,
    refresh: bool = True,
) -> HealthReport:
    """Every table of the report for `period`, computed in SQL then pandas.

    Args:
        store: the history to read (its roll-ups and incidents are refreshed first).
        period: what to cover; its end is "now" (later rows are counted as clock skew).
        inventory: when given, removed nodes are flagged and GPUs get their planned size.
        flap_threshold: incidents in the period from which an endpoint counts as flapping.
        refresh: first roll up complete hours and derive incidents (writes); False reads only.

    Raises:
        HistoryError: the database is gone, locked past its timeout, or unreadable.
    """
    if refresh:
        store.track_incidents()
        store.roll_up(period.end)
    with translate_errors("read the report's data"), store.engine.connect() as conn:
        days = queries.endpoint_days(conn, period)
        tier_hours = queries.tier_hours(conn, period)
        gpu_hours = queries.gpu_hours(conn, period)
        models = queries.model_vram(conn, period)
        raw_incidents = queries.incident_rows(conn, period)
        actions = queries.action_rows(conn, [int(i) for i in raw_incidents["id"]])
        future = queries.future_rows(conn, period.end)
    incidents = frames.incidents_table(raw_incidents, actions, period.end)
    totals = queries.endpoint_totals(days)
    latency = frames.latency_percentiles(totals)
    tables = {
        "uptime_tier": frames.uptime(totals, "tier"),
        "uptime_node": frames.uptime(totals, "node"),
        "uptime_endpoint": frames.uptime(totals, "endpoint").merge(
            latency.drop(columns="probes"), on=["node", "endpoint"], how="left"
        ),
        "uptime_tier_daily": frames.uptime_by_day(days, "tier"),
        "uptime_node_daily": frames.uptime_by_day(days, "node"),
        "latency": latency,
        "incidents": incidents,
        "flapping": frames.flapping(incidents, flap_threshold),
        "gpus": frames.gpu_summary(gpu_hours, planned_vram_gib(inventory)),
        "models": _models_gib(models),
    }
    report = HealthReport(
        period=period,
        tables=tables,
        uptime_timeline=frames.uptime_timeline(tier_hours),
        vram_timeline=frames.gpu_timeline(gpu_hours),
        endpoint_daily=frames.uptime_by_day(days, "endpoint"),
    )
    report.notes = _notes(report, inventory, future)
    if inventory is not None and not report.tables["uptime_node"].empty:
        known = {node.name for node in inventory.nodes}
        report.tables["uptime_node"]["in_inventory"] = report.tables["uptime_node"]["node"].isin(known)
    return report


def _models_gib(models: pd.DataFrame) -> pd.DataFrame:
    out = models.copy()
    for column in ("used_mean", "used_peak"):
        out[f"{column}_gib"] = (out.pop(column).astype(float) / frames.GIB).round(2)
    return out


def open_report_history(url: str, relative_to: Path | None = None) -> HistoryStore:
    """Open the history for reading a report, refusing to create a SQLite file that is not there.

    Why: `open_history` creates a missing database (right for a sweep), but a report on a
    path that does not exist means a wrong path or no sweep yet; an empty new file would hide that.

    Raises:
        HistoryError: the SQLite file does not exist, or the database cannot be opened.
    """
    parsed = make_url(url)
    database = parsed.database or ""
    if (
        parsed.get_backend_name() == "sqlite"
        and database
        and database != ":memory:"
        and not database.startswith("file:")
    ):
        path = Path(database).expanduser()
        if not path.is_absolute() and relative_to is not None:
            path = relative_to / path
        if not path.is_file():
            raise HistoryError(f"history: no database at {path} (wrong history.url, or no sweep recorded yet)")
    return open_history(url, relative_to)
