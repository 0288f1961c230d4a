"""The history store: open (create or upgrade) a database and read and write its rows."""

from __future__ import annotations

import itertools
import logging
import sqlite3
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from enum import Enum
from pathlib import Path
from typing import Any, Self

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.engine import Engine, make_url

from homelab.errors import HistoryError
from homelab.health.probe import ProbeResult
from homelab.health.sweep import Prognosis, SweepReport
from homelab.history.rollup import (
    hourly_probe_select,
    rolled_up_until,
    track_endpoint_incidents,
)
from homelab.history.schema import (
    INCIDENT_ACTIONS,
    INCIDENTS,
    PROBE_HOURLY,
    PROBES,
    ROLLOUTS,
    SQLITE_BUSY_TIMEOUT_S,
    STORED_FIELDS,
    SWEEPS,
    VRAM_SAMPLES,
    ensure_schema,
    insert_row,
    read_version,
    translate_errors,
)
from homelab.redact import redact_url
from homelab.vram.gpu_facts import VramSample

__all__ = [
    "HistoryStore",
    "RetentionPolicy",
    "SweepRecord",
    "open_history",
]

log = logging.getLogger(__name__)
# The largest value each integer column of `vram_samples` holds (BIGINT, INTEGER). One figure
# past it (an Ollama `size_vram` of 2^64 from a confused server) would fail the insert and
# lose the whole round; that one figure is stored as unknown instead.
_INT_COLUMN_MAX = {"used_bytes": 2**63 - 1, "total_bytes": 2**63 - 1, "gpu_index": 2**31 - 1}
# Pauses between tries to turn a database to WAL (`_enable_wal`), growing as SQLite's own
# busy handler's do; the last repeats until the busy timeout.
_WAL_RETRY_PAUSES_S = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05)


class RetentionPolicy(BaseModel):
    """How long raw rows are kept; hourly roll-ups are kept for good.

    Raw probe rows serve the latest-state lookups and recent detail; a year of them at one
    sweep a minute is 100 million rows per 200 endpoints, so past `raw_days` only their
    roll-up remains (a raw row is never deleted before its hour is rolled up).
    """

    model_config = ConfigDict(frozen=True)

    raw_days: float = Field(30.0, gt=0, description="days raw probe rows are kept")
    vram_days: float = Field(365.0, gt=0, description="days raw VRAM samples are kept")


class SweepRecord(BaseModel):
    """One stored sweep, without its probe rows."""

    model_config = ConfigDict(frozen=True)

    id: int
    started_at: datetime
    duration_ms: float
    prognosis: Prognosis
    reasons: list[str]


class HistoryStore:
    """Reads and writes sweeps; one instance holds one engine (a connection pool).

    Build it with `open_history`, which also creates or upgrades the schema.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()

    def schema_version(self) -> int:
        """The version this database has reached."""
        with translate_errors("read the schema version"), self.engine.connect() as conn:
            return read_version(conn) or 0

    def record_sweep(self, report: SweepReport) -> int:
        """Store a sweep and all its probe results in one transaction; returns the sweep's id.

        Raises:
            HistoryError: nothing of this sweep was stored (earlier sweeps are untouched).
        """
        with translate_errors(f"record the sweep of {report.started_at.isoformat()}"), self.engine.begin() as conn:
            sweep_id = insert_row(
                conn,
                SWEEPS.insert().values(
                    started_at=report.started_at,
                    duration_ms=report.duration_ms,
                    prognosis=report.cluster.prognosis.value,
                    reasons=list(report.cluster.reasons),
                ),
            )
            if report.endpoints:
                # One executemany: a 500-endpoint sweep is one round trip, not 500.
                conn.execute(PROBES.insert(), [_probe_row(sweep_id, r) for r in report.endpoints])
        return sweep_id

    def record_vram_samples(self, samples: Sequence[VramSample]) -> int:
        """Store one sampling round in one transaction; returns how many rows were written."""
        if not samples:
            return 0
        rows = [_vram_row(s) for s in samples]
        with translate_errors("record VRAM samples"), self.engine.begin() as conn:
            conn.execute(VRAM_SAMPLES.insert(), rows)
        return len(rows)

    def open_incident(self, node: str, endpoint: str | None, at: datetime, summary: str = "") -> int:
        """Open an incident (endpoint None: the whole node), for the recovery flow; returns its id."""
        values = {"node": node, "endpoint": endpoint, "opened_at": at, "summary": summary}
        with translate_errors(f"open an incident for {node}"), self.engine.begin() as conn:
            return insert_row(conn, INCIDENTS.insert().values(**values))

    def add_incident_action(self, incident_id: int, at: datetime, action: str, outcome: str, detail: str = "") -> None:
        """Record one recovery step (e.g. `restart-docker`, `ok`) taken for an incident."""
        values = {"incident_id": incident_id, "at": at, "action": action, "outcome": outcome, "detail": detail}
        with translate_errors(f"record an action of incident {incident_id}"), self.engine.begin() as conn:
            conn.execute(INCIDENT_ACTIONS.insert().values(**values))

    def close_incident(self, incident_id: int, at: datetime) -> None:
        """Mark an incident recovered at `at`."""
        query = INCIDENTS.update().where(INCIDENTS.c.id == incident_id).values(closed_at=at)
        with translate_errors(f"close incident {incident_id}"), self.engine.begin() as conn:
            conn.execute(query)

    def record_rollout(self, values: dict[str, Any]) -> int:
        """Store one rollout (columns of `rollouts` but `id`); returns its id."""
        with translate_errors("record a rollout"), self.engine.begin() as conn:
            return insert_row(conn, ROLLOUTS.insert().values(**values))

    def roll_up(self, now: datetime) -> int:
        """Roll every complete hour not yet rolled up into the hourly tables; returns hours added.

        Hours are taken from the sweep's start, and only hours before `now`'s are rolled, so a
        sweep stamped in the future (a skewed clock) waits for its hour instead of freezing
        a partial one. Idempotent: a second call in the same hour adds nothing.
        """
        end = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        with translate_errors("roll up probe history"), self.engine.begin() as conn:
            start = rolled_up_until(conn)
            if start is not None and start >= end:
                return 0
            hourly = hourly_probe_select(conn.dialect.name, start, end)
            conn.execute(PROBE_HOURLY.insert().from_select(list(hourly.selected_columns.keys()), hourly))
            added = sa.select(sa.func.count(sa.distinct(PROBE_HOURLY.c.hour)))
            if start is not None:
                added = added.where(PROBE_HOURLY.c.hour >= start)
            return int(conn.execute(added).scalar() or 0)

    def track_incidents(self) -> int:
        """Derive endpoint incidents (DOWN until serving again) from sweeps not yet scanned;
        returns how many were opened. Reports call it first, so their incidents are current."""
        with translate_errors("derive incidents from probe history"), self.engine.begin() as conn:
            return track_endpoint_incidents(conn)

    def prune(self, now: datetime, policy: RetentionPolicy) -> int:
        """Delete raw probe rows (and their sweeps) past `policy.raw_days` that are rolled up,
        and VRAM samples past `policy.vram_days`; returns the sweeps deleted."""
        cutoff = now.astimezone(UTC) - timedelta(days=policy.raw_days)
        with translate_errors("prune old history"), self.engine.begin() as conn:
            track_endpoint_incidents(conn)  # an outage in rows about to go is kept as its incident
            rolled = rolled_up_until(conn)
            if rolled is not None:
                cutoff = min(cutoff, rolled)
                old = sa.select(SWEEPS.c.id).where(SWEEPS.c.started_at < cutoff)
                conn.execute(PROBES.delete().where(PROBES.c.sweep_id.in_(old)))
                deleted = conn.execute(SWEEPS.delete().where(SWEEPS.c.started_at < cutoff)).rowcount
            else:
                deleted = 0
            vram_cutoff = now.astimezone(UTC) - timedelta(days=policy.vram_days)
            conn.execute(VRAM_SAMPLES.delete().where(VRAM_SAMPLES.c.sampled_at < vram_cutoff))
        return int(deleted or 0)

    def latest_states(self) -> dict[tuple[str, str], ProbeResult]:
        """The most recent sweep's result per (node, endpoint); empty before the first sweep.

        Only the latest sweep is read (an indexed lookup), so the cost does not grow with
        history. Results come back without `models` and `loaded`, which are not stored.
        """
        latest = sa.select(sa.func.max(SWEEPS.c.id)).scalar_subquery()
        with translate_errors("read the latest sweep"), self.engine.connect() as conn:
            rows = conn.execute(sa.select(PROBES).where(PROBES.c.sweep_id == latest)).mappings().all()
        return {(row["node"], row["endpoint"]): _probe_result(row) for row in rows}

    def sweep_results(self, sweep_id: int) -> list[ProbeResult]:
        """The probe results of one sweep, in the order they were stored."""
        query = sa.select(PROBES).where(PROBES.c.sweep_id == sweep_id).order_by(PROBES.c.id)
        with translate_errors(f"read sweep {sweep_id}"), self.engine.connect() as conn:
            return [_probe_result(row) for row in conn.execute(query).mappings()]

    def recent_sweeps(self, n: int = 10) -> list[SweepRecord]:
        """The last `n` sweeps, newest first."""
        query = sa.select(SWEEPS).order_by(SWEEPS.c.id.desc()).limit(n)
        with translate_errors("read recent sweeps"), self.engine.connect() as conn:
            return [SweepRecord.model_validate(dict(row)) for row in conn.execute(query).mappings()]


def open_history(
    url: str, relative_to: Path | None = None, *, busy_timeout_s: float = SQLITE_BUSY_TIMEOUT_S
) -> HistoryStore:
    """Open (creating or upgrading) the history database at a SQLAlchemy URL.

    Args:
        url: e.g. `sqlite:///homelab-history.db` or `postgresql+psycopg://user@host/homelab`.
        relative_to: directory a relative SQLite path is taken from (the cluster file's, so a
            worker started anywhere finds the same database); None: the working directory.
        busy_timeout_s: how long SQLite waits for another writer before the write fails.

    Raises:
        HistoryError: the database cannot be reached, or its schema is newer than this code.
    """
    engine = _create_engine(url, relative_to, busy_timeout_s)
    try:
        ensure_schema(engine)
    except BaseException:
        engine.dispose()
        raise
    return HistoryStore(engine)


def _create_engine(url: str, relative_to: Path | None, busy_timeout_s: float) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return sa.create_engine(parsed, pool_pre_ping=True)
    database = parsed.database or ""
    if database and database != ":memory:" and not database.startswith("file:"):
        path = Path(database).expanduser()
        if not path.is_absolute() and relative_to is not None:
            path = relative_to / path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise HistoryError(f"history: cannot create the directory of {path}: {exc}") from exc
        parsed = parsed.set(database=str(path))
    # sqlite3's `timeout` is SQLite's busy timeout: a locked database is waited for, then an error.
    engine = sa.create_engine(parsed, connect_args={"timeout": busy_timeout_s})
    sa.event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_connection: sqlite3.Connection, _record: object) -> None:
    """WAL: readers (reports) never block the sweep's writer; foreign keys: SQLite's are off by default."""
    cursor = dbapi_connection.cursor()
    try:
        _enable_wal(cursor)
        cursor.execute("PRAGMA foreign_keys=ON")
    finally:
        cursor.close()


def _enable_wal(cursor: sqlite3.Cursor) -> None:
    """Turn the database to WAL, waiting out other connections for up to the busy timeout.

    SQLite does not call its busy handler here: the switch upgrades the read lock it took to
    look at the file's header, and a lock upgrade fails at once rather than risk a deadlock.
    So several processes opening one fresh database (a sweep, a report, a worker) would have
    all but one fail with "database is locked" at once, the more often the busier the machine.
    Once the file is in WAL mode the pragma takes no write lock and succeeds the first time.
    """
    deadline = time.monotonic() + cursor.execute("PRAGMA busy_timeout").fetchone()[0] / 1000
    for pause_s in itertools.chain(_WAL_RETRY_PAUSES_S, itertools.repeat(_WAL_RETRY_PAUSES_S[-1])):
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY or time.monotonic() + pause_s > deadline:
                raise
        time.sleep(pause_s)


def _probe_row(sweep_id: int, result: ProbeResult) -> dict[str, Any]:
    row: dict[str, Any] = {"sweep_id": sweep_id}
    for name in STORED_FIELDS:
        value = getattr(result, name)
        row[name] = value.value if isinstance(value, Enum) else value
    row["url"] = redact_url(row["url"])  # results built elsewhere than the probe are stored too
    return row


def _vram_row(sample: VramSample) -> dict[str, Any]:
    row = sample.model_dump(mode="python")
    row["source"] = sample.source.value
    for name, top in _INT_COLUMN_MAX.items():
        value = row[name]
        if value is not None and not -top - 1 <= value <= top:
            log.warning(
                "VRAM sample of %s (%s): %s is a %d-bit number, past what the history holds; stored as unknown",
                sample.node,
                sample.model or sample.gpu_name or sample.source.value,
                name,
                value.bit_length(),
            )
            row[name] = None
    return row


def _probe_result(row: Any) -> ProbeResult:
    values = {name: row[name] for name in STORED_FIELDS}
    values["capabilities"] = values["capabilities"] or {}  # NULL in rows from before schema version 3
    return ProbeResult.model_validate(values)
