"""The SQL side of reports: GROUP BY in the database, so pandas only ever sees aggregates.

Why: a month of one-minute sweeps over 200 endpoints is 8.6 million probe rows; loading them
into pandas costs gigabytes and tens of seconds, while the database sums them into hourly
buckets (or reads the roll-ups that already hold them) and hands over ~150,000 rows.
Every query clips to the report's period, whose end is "now": rows from the future (a
skewed clock) are counted separately and never reported as data.
"""

from __future__ import annotations

from datetime import datetime

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from homelab.gpu_facts import VramSource
from homelab.history import TABLES, hour_of, hourly_probe_selects, rolled_up_until
from homelab.reports.period import Period

__all__ = [
    "HOURLY_COLUMNS",
    "action_rows",
    "future_rows",
    "gpu_hours",
    "incident_rows",
    "latency_histogram",
    "model_vram",
    "probe_hours",
]

HOURLY_COLUMNS = ["hour", "node", "endpoint", "tier", "probes", "up", "slow", "down", "latency_sum_ms"]
_T = TABLES


def _utc(frame: pd.DataFrame, *columns: str) -> pd.DataFrame:
    """SQLite hands timestamps back as text: make every time column tz-aware UTC."""
    for column in columns:
        frame[column] = pd.to_datetime(frame[column], utc=True, format="ISO8601")
    return frame


def _split(conn: Connection, period: Period) -> tuple[datetime | None, datetime]:
    """(start of the raw tail, period end): rolled-up hours come before the tail, raw rows after."""
    rolled = rolled_up_until(conn)
    return (period.start if rolled is None else max(period.start, rolled)), period.end


def probe_hours(conn: Connection, period: Period) -> pd.DataFrame:
    """Per hour and endpoint: probes, up, slow, down, latency sum; roll-ups plus the raw tail."""
    hourly = _T["probe_hourly"]
    tail_start, end = _split(conn, period)
    floor = period.start.replace(minute=0, second=0, microsecond=0)
    rolled = sa.select(*(hourly.c[c] for c in HOURLY_COLUMNS)).where(hourly.c.hour >= floor, hourly.c.hour < tail_start)
    raw, _ = hourly_probe_selects(conn.dialect.name, tail_start, end)
    raw_cols = raw.subquery()
    tail = sa.select(*(raw_cols.c[c] for c in HOURLY_COLUMNS))
    frame = pd.DataFrame(list(conn.execute(sa.union_all(rolled, tail))), columns=HOURLY_COLUMNS)
    if frame.empty:
        return frame
    return _utc(frame, "hour")


def latency_histogram(conn: Connection, period: Period) -> pd.DataFrame:
    """Per endpoint and latency bucket, the probe count over the period (summed in SQL)."""
    table = _T["probe_latency_hourly"]
    tail_start, end = _split(conn, period)
    floor = period.start.replace(minute=0, second=0, microsecond=0)
    rolled = sa.select(table.c.node, table.c.endpoint, table.c.bucket, table.c.probes).where(
        table.c.hour >= floor, table.c.hour < tail_start
    )
    _, raw = hourly_probe_selects(conn.dialect.name, tail_start, end)
    raw_cols = raw.subquery()
    tail = sa.select(raw_cols.c.node, raw_cols.c.endpoint, raw_cols.c.bucket, raw_cols.c.probes)
    both = sa.union_all(rolled, tail).subquery()
    query = sa.select(both.c.node, both.c.endpoint, both.c.bucket, sa.func.sum(both.c.probes).label("probes")).group_by(
        both.c.node, both.c.endpoint, both.c.bucket
    )
    return pd.DataFrame(list(conn.execute(query)), columns=["node", "endpoint", "bucket", "probes"])


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
