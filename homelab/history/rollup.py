"""Hourly roll-ups of probe rows and the incidents derived from state changes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from homelab.health.probe import EndpointState
from homelab.history.schema import (
    BUCKET_COLUMNS,
    INCIDENT_MARK,
    INCIDENTS,
    LATENCY_EDGES_MS,
    MARKS,
    PROBE_HOURLY,
    PROBES,
    SWEEPS,
    insert_row,
)

__all__ = [
    "hour_of",
    "hourly_probe_select",
    "rolled_up_until",
    "track_endpoint_incidents",
]

# Any constant will do: it names "the incident pass" among the database's advisory locks.
_PG_INCIDENT_LOCK = 0x696E636964656E74  # "incident"


def _transitions(conn: Connection, after_sweep: int, last_sweep: int) -> list[Any]:
    """Probe rows of sweeps (`after_sweep`, `last_sweep`] where an endpoint's DOWN-ness changed,
    plus each endpoint's first row there (its state carried over from before), in sweep order.
    Sweeps stored after `last_sweep` was read are left to the next pass: the mark stops at `last_sweep`."""
    down = sa.case((PROBES.c.state == EndpointState.DOWN.value, 1), else_=0)
    window = sa.func.lag(down).over(partition_by=(PROBES.c.node, PROBES.c.endpoint), order_by=PROBES.c.sweep_id)
    inner = (
        sa.select(
            PROBES.c.node,
            PROBES.c.endpoint,
            PROBES.c.sweep_id,
            PROBES.c.checked_at,
            PROBES.c.reason,
            PROBES.c.detail,
            down.label("down"),
            window.label("before"),
        )
        .where(PROBES.c.sweep_id > after_sweep, PROBES.c.sweep_id <= last_sweep)
        .subquery()
    )
    query = (
        sa.select(inner)
        .where(sa.or_(inner.c.before.is_(None), inner.c.before != inner.c.down))
        .order_by(inner.c.sweep_id)
    )
    return list(conn.execute(query))


def _unscanned(conn: Connection) -> tuple[int | None, int] | None:
    """(the mark, the last sweep's id) when sweeps after the mark exist; None when all are scanned."""
    after = conn.execute(sa.select(MARKS.c.value).where(MARKS.c.name == INCIDENT_MARK)).scalar()
    last = conn.execute(sa.select(sa.func.max(SWEEPS.c.id))).scalar()
    if last is None or (after is not None and after >= last):
        return None
    return after, last


def _lock_incident_pass(conn: Connection) -> None:
    """Hold the incident pass to this transaction's end, so two callers never scan the same sweeps.

    SQLite: BEGIN IMMEDIATE takes the write lock now, so a second caller waits (busy timeout)
    instead of reading the same mark. PostgreSQL: a transaction-scoped advisory lock, which
    (unlike SELECT ... FOR UPDATE) needs no mark row to exist yet, nor write rights to lock it.
    """
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    elif conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_INCIDENT_LOCK})


def track_endpoint_incidents(conn: Connection) -> int:
    """Open an incident where an endpoint went DOWN, close it where it served again; returns
    how many incidents were opened. Reads only sweeps after the last one scanned (a mark).

    Safe from several processes at once (reports, maintenance, each metrics scrape). Call it
    first in its transaction: on SQLite its lock begins the transaction.
    """
    # Peek without the lock: a scrape with nothing new writes nothing, so it neither waits for
    # another writer nor needs write rights (a read-only role still serves metrics).
    if _unscanned(conn) is None:
        return 0
    _lock_incident_pass(conn)
    pending = _unscanned(conn)  # again under the lock: the caller it waited for may have scanned them
    if pending is None:
        return 0
    after, last = pending
    query = sa.select(INCIDENTS.c.id, INCIDENTS.c.node, INCIDENTS.c.endpoint).where(
        INCIDENTS.c.closed_at.is_(None), INCIDENTS.c.endpoint.is_not(None)
    )
    open_ = {(row.node, row.endpoint): row.id for row in conn.execute(query)}
    opened = 0
    for row in _transitions(conn, after or 0, last):
        key = (row.node, row.endpoint)
        if row.down and key not in open_:
            values = {
                "node": row.node,
                "endpoint": row.endpoint,
                "opened_at": row.checked_at,
                "first_sweep_id": row.sweep_id,
                "summary": f"{row.reason}: {row.detail}"[:500],
            }
            open_[key] = insert_row(conn, INCIDENTS.insert().values(**values))
            opened += 1
        elif not row.down and key in open_:
            update = INCIDENTS.update().where(INCIDENTS.c.id == open_.pop(key))
            conn.execute(update.values(closed_at=row.checked_at, last_sweep_id=row.sweep_id))
    mark = {"name": INCIDENT_MARK, "value": last}
    if after is None:
        conn.execute(MARKS.insert().values(**mark))
    else:
        conn.execute(MARKS.update().where(MARKS.c.name == INCIDENT_MARK).values(value=last))
    return opened


def hour_of(column: Any, dialect: str) -> Any:
    """SQL for the UTC hour a timestamp falls in, in the form the dialect stores `_UTCDateTime`.

    SQLite keeps timestamps as `YYYY-MM-DD HH:MM:SS.ffffff` text in UTC; PostgreSQL truncates a
    timestamptz, told the zone explicitly so the session's time zone cannot shift the hours.
    """
    if dialect == "sqlite":  # text prefix: cheaper than strftime() on millions of rows
        return sa.func.substr(column, 1, 13, type_=sa.String()).concat(":00:00.000000")
    return sa.func.date_trunc("hour", column, "UTC")


def hourly_probe_select(dialect: str, start: datetime | None, end: datetime | None) -> sa.Select[Any]:
    """A SELECT with the columns of `probe_hourly`: raw probe rows of sweeps started in
    [start, end), summed per hour and endpoint. Roll-up inserts it; reports read it for the
    hours not yet rolled up."""
    hour = hour_of(SWEEPS.c.started_at, dialect).label("hour")
    where = []
    if start is not None:
        where.append(SWEEPS.c.started_at >= start)
    if end is not None:
        where.append(SWEEPS.c.started_at < end)
    state, latency = PROBES.c.state, PROBES.c.latency_ms

    def count_if(condition: Any) -> Any:
        return sa.func.sum(sa.case((condition, 1), else_=0))

    lower = (0.0, *LATENCY_EDGES_MS)
    buckets = [
        count_if(
            latency >= lower[i] if i == len(LATENCY_EDGES_MS) else sa.and_(latency >= lower[i], latency < edge)
        ).label(name)
        for i, (name, edge) in enumerate(zip(BUCKET_COLUMNS, (*LATENCY_EDGES_MS, None), strict=True))
    ]
    return (
        sa.select(
            hour, PROBES.c.node, PROBES.c.endpoint, sa.func.max(PROBES.c.tier).label("tier"),
            sa.func.count().label("probes"), count_if(state == EndpointState.UP.value).label("up"),
            count_if(state == EndpointState.SLOW.value).label("slow"),
            count_if(state == EndpointState.DOWN.value).label("down"),
            sa.func.sum(latency).label("latency_sum_ms"), sa.func.max(latency).label("latency_max_ms"), *buckets,
        )
        .select_from(PROBES.join(SWEEPS, SWEEPS.c.id == PROBES.c.sweep_id))
        .where(*where)
        .group_by(hour, PROBES.c.node, PROBES.c.endpoint)
    )  # fmt: skip


def rolled_up_until(conn: Connection) -> datetime | None:
    """The end of the last rolled-up hour (hours before it are in `probe_hourly`); None: nothing yet."""
    last = conn.execute(sa.select(sa.func.max(PROBE_HOURLY.c.hour))).scalar()
    if last is None:
        return None
    if isinstance(last, str):  # SQLite's MAX() returns the stored text, not a typed value
        last = datetime.fromisoformat(last)
    last = last.replace(tzinfo=UTC) if last.tzinfo is None else last.astimezone(UTC)
    return last + timedelta(hours=1)
