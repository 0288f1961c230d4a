"""The SQL side of reports: GROUP BY in the database, so pandas only ever sees aggregates.

Why: a month of one-minute sweeps over 200 endpoints is 8.6 million probe rows; loading them
into pandas costs gigabytes and tens of seconds, while the database sums them into hourly
buckets (or reads the roll-ups that already hold them) and groups again (per endpoint and
day, per tier and hour), so at most a few thousand rows cross into Python.
Every query clips to the report's period, whose end is "now": rows from the future (a
skewed clock) are counted separately and never reported as data.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from homelab.history import (
    BUCKET_COLUMNS,
    TABLES,
    hour_of,
    hourly_probe_select,
    rolled_up_until,
)
from homelab.reports.period import Period
from homelab.vram.gpu_facts import VramSource

__all__ = [
    "SUM_COLUMNS",
    "action_rows",
    "endpoint_days",
    "endpoint_totals",
    "future_rows",
    "gpu_hours",
    "incident_rows",
    "model_vram",
    "tier_hours",
]

# The additive columns of `probe_hourly`: any grouping of hours sums them.
SUM_COLUMNS = ["probes", "up", "slow", "down", "latency_sum_ms", *BUCKET_COLUMNS]
_T = TABLES


def _utc(frame: pd.DataFrame, *columns: str) -> pd.DataFrame:
    """SQLite hands timestamps back as text: make every time column tz-aware UTC."""
    for column in columns:
        frame[column] = pd.to_datetime(frame[column], utc=True, format="ISO8601")
    return frame


def _hours(conn: Connection, period: Period) -> sa.Subquery:
    """Hourly rows of the period: roll-ups for the hours rolled up, raw rows summed for the rest."""
    hourly = _T["probe_hourly"]
    rolled = rolled_up_until(conn)
    tail_start = period.start if rolled is None else max(period.start, rolled)
    floor = period.start.replace(minute=0, second=0, microsecond=0)
    columns = ["hour", "node", "endpoint", "tier", *SUM_COLUMNS]
    from_rollup = sa.select(*(hourly.c[c] for c in columns)).where(hourly.c.hour >= floor, hourly.c.hour < tail_start)
    raw = hourly_probe_select(conn.dialect.name, tail_start, period.end).subquery()
    return sa.union_all(from_rollup, sa.select(*(raw.c[c] for c in columns))).subquery()


def _day_of(column: Any, dialect: str) -> Any:
    if dialect == "sqlite":
        return sa.func.substr(column, 1, 10, type_=sa.String()).concat(" 00:00:00.000000")
    return sa.func.date_trunc("day", column, "UTC")


def _grouped(conn: Connection, period: Period, keys: list[str], sums: list[str], day: bool = False) -> pd.DataFrame:
    hours = _hours(conn, period)
    group = [hours.c[k] for k in keys]
    if day:
        group.insert(0, _day_of(hours.c.hour, conn.dialect.name).label("day"))
    extra = [sa.func.max(hours.c.tier).label("tier")] if "tier" not in keys else []
    query = sa.select(*group, *extra, *(sa.func.sum(hours.c[c]).label(c) for c in sums)).group_by(*group)
    names = (["day"] if day else []) + keys + (["tier"] if extra else []) + sums
    frame = pd.DataFrame(list(conn.execute(query)), columns=names)
    if frame.empty:
        return frame
    frame[sums] = frame[sums].astype(float)
    for time_column in ("day", "hour"):
        if time_column in frame:
            _utc(frame, time_column)
    return frame


def endpoint_days(conn: Connection, period: Period) -> pd.DataFrame:
    """Per UTC day and endpoint: node, endpoint, tier, probes, up, slow, down, latency sum and
    histogram. The period's totals per endpoint are sums of these rows (`endpoint_totals`), so
    the big table is scanned once."""
    return _grouped(conn, period, ["node", "endpoint"], SUM_COLUMNS, day=True)


def endpoint_totals(days: pd.DataFrame) -> pd.DataFrame:
    """Per endpoint over the period, from `endpoint_days`."""
    if days.empty:
        return days.drop(columns="day", errors="ignore")
    return days.groupby(["node", "endpoint"], as_index=False).agg({"tier": "last", **dict.fromkeys(SUM_COLUMNS, "sum")})


def tier_hours(conn: Connection, period: Period) -> pd.DataFrame:
    """Per hour and tier: probes, up, slow, down (the uptime chart's data)."""
    return _grouped(conn, period, ["hour", "tier"], ["probes", "up", "slow", "down"])


def _vram_window(period: Period) -> list[sa.ColumnElement[bool]]:
    table = _T["vram_samples"]
    return [table.c.sampled_at >= period.start, table.c.sampled_at < period.end]


def gpu_hours(conn: Connection, period: Period) -> pd.DataFrame:
    """Per hour and GPU (nvidia-smi rows): mean and peak used bytes, total bytes, mean utilisation."""
    t = _T["vram_samples"]
    hour = hour_of(t.c.sampled_at, conn.dialect.name).label("hour")
    query = (
        sa.select(
            hour,
            t.c.node,
            t.c.gpu_index,
            sa.func.max(t.c.gpu_name).label("gpu_name"),
            sa.func.avg(t.c.used_bytes).label("used_mean"),
            sa.func.max(t.c.used_bytes).label("used_peak"),
            sa.func.max(t.c.total_bytes).label("total"),
            sa.func.avg(t.c.utilization_pct).label("util_mean"),
            sa.func.count().label("samples"),
        )
        .where(t.c.source == VramSource.NVIDIA_SMI.value, *_vram_window(period))
        .group_by(hour, t.c.node, t.c.gpu_index)
    )
    columns = ["hour", "node", "gpu_index", "gpu_name", "used_mean", "used_peak", "total", "util_mean", "samples"]
    frame = pd.DataFrame(list(conn.execute(query)), columns=columns)
    return frame if frame.empty else _utc(frame, "hour")


def model_vram(conn: Connection, period: Period) -> pd.DataFrame:
    """Per loaded model (Ollama /api/ps, llama-server): mean and peak VRAM, samples, first and last seen."""
    t = _T["vram_samples"]
    query = (
        sa.select(
            t.c.node,
            t.c.model,
            t.c.source,
            sa.func.avg(t.c.used_bytes).label("used_mean"),
            sa.func.max(t.c.used_bytes).label("used_peak"),
            sa.func.count().label("samples"),
            sa.func.min(t.c.sampled_at).label("first_seen"),
            sa.func.max(t.c.sampled_at).label("last_seen"),
        )
        .where(t.c.model.is_not(None), *_vram_window(period))
        .group_by(t.c.node, t.c.model, t.c.source)
    )
    columns = ["node", "model", "source", "used_mean", "used_peak", "samples", "first_seen", "last_seen"]
    frame = pd.DataFrame(list(conn.execute(query)), columns=columns)
    return frame if frame.empty else _utc(frame, "first_seen", "last_seen")


def incident_rows(conn: Connection, period: Period) -> pd.DataFrame:
    """Incidents that overlap the period (opened before its end, not closed before its start)."""
    t = _T["incidents"]
    query = sa.select(t.c.id, t.c.node, t.c.endpoint, t.c.opened_at, t.c.closed_at, t.c.summary).where(
        t.c.opened_at < period.end, sa.or_(t.c.closed_at.is_(None), t.c.closed_at >= period.start)
    )
    columns = ["id", "node", "endpoint", "opened_at", "closed_at", "summary"]
    frame = pd.DataFrame(list(conn.execute(query)), columns=columns)
    return frame if frame.empty else _utc(frame, "opened_at", "closed_at")


def action_rows(conn: Connection, incident_ids: list[int]) -> pd.DataFrame:
    """The recovery actions of the given incidents, in time order."""
    t = _T["incident_actions"]
    columns = ["incident_id", "at", "action", "outcome", "detail"]
    if not incident_ids:
        return pd.DataFrame(columns=columns)
    query = sa.select(*(t.c[c] for c in columns)).where(t.c.incident_id.in_(incident_ids)).order_by(t.c.at)
    frame = pd.DataFrame(list(conn.execute(query)), columns=columns)
    return frame if frame.empty else _utc(frame, "at")


def future_rows(conn: Connection, now: datetime) -> dict[str, int]:
    """Rows stamped after `now` (a node or sweeper with a skewed clock), per table: left out of reports."""
    sweeps, vram = _T["sweeps"], _T["vram_samples"]
    return {
        "sweeps": int(conn.execute(sa.select(sa.func.count()).where(sweeps.c.started_at > now)).scalar() or 0),
        "vram_samples": int(conn.execute(sa.select(sa.func.count()).where(vram.c.sampled_at > now)).scalar() or 0),
    }
