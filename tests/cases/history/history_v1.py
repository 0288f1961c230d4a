"""FROZEN COPY of homelab/history.py at schema version 1 (git HEAD before issue #9), kept as test data:
tests/test_report_history.py builds a real version-1 database with it, then upgrades it.
Only the writer is kept: the schema, opening, recording and reading sweeps (change detection,
which does not touch the schema, was cut).

The history store: every sweep and its probe results, in SQL (SQLite by default, any SQLAlchemy URL).

Why SQL: the reports ask questions across months of sweeps (uptime per endpoint, latency
percentiles, time to recover), which are joins and aggregates, and a bigger setup moves the
same tables to PostgreSQL by changing `history.url` in the cluster file.

Schema, version 1:

    schema_version  version PK, applied_at          one row per version this database reached
    sweeps          id PK, started_at, duration_ms, prognosis, reasons (JSON list)
    probe_results   id PK, sweep_id -> sweeps.id, node, tier, endpoint, kind, url, state,
                    reason, detail, latency_ms, checked_at; UNIQUE (sweep_id, node, endpoint)

Reserved for later issues, each added as a new version in `_UPGRADES` (new tables or new
nullable columns; never a drop, never a rewrite of rows, so no upgrade loses history):

    vram_samples      id, sampled_at, node, gpu_index, model, used_bytes, total_bytes
    incidents         id, node, endpoint (NULL: the whole node), opened_at, closed_at,
                      first_sweep_id, last_sweep_id
    incident_actions  id, incident_id -> incidents.id, at, action, outcome, detail
    rollouts          id, started_at, finished_at, node, endpoint, model_file, outcome, detail

A fresh database gets the current tables and is stamped with `SCHEMA_VERSION`; an older one
gets each missing upgrade in its own transaction; a newer one is refused, so an old install
never writes rows a newer schema does not expect.

One sweep is one transaction: the sweep row and all its probe rows commit together or not
at all. A crash mid-write leaves no half sweep, and earlier sweeps are untouched.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from typing import Any, Self

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict
from sqlalchemy.engine import Connection, Engine, make_url

from homelab.errors import HomelabError
from homelab.health.probe import ProbeResult
from homelab.health.sweep import Prognosis, SweepReport

__all__ = ["SCHEMA_VERSION", "HistoryStore", "SweepRecord", "open_history"]

SCHEMA_VERSION = 1

# SQLite waits this long for another writer (a report reading while a sweep writes) before failing.
SQLITE_BUSY_TIMEOUT_S = 30.0


class HistoryError(HomelabError):
    """The history database could not be opened, read or written (the SQLAlchemy error is the cause)."""


class _UTCDateTime(sa.TypeDecorator[datetime]):
    """Timestamps stored in UTC and read back timezone-aware (SQLite keeps no zone of its own)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: history keeps timezone-aware times only")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


_METADATA = sa.MetaData()

_SCHEMA_VERSION = sa.Table(
    "schema_version",
    _METADATA,
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("applied_at", _UTCDateTime, nullable=False),
)

_SWEEPS = sa.Table(
    "sweeps",
    _METADATA,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("started_at", _UTCDateTime, nullable=False, index=True),
    sa.Column("duration_ms", sa.Float, nullable=False),
    sa.Column("prognosis", sa.String(16), nullable=False),
    sa.Column("reasons", sa.JSON, nullable=False),
)

_PROBES = sa.Table(
    "probe_results",
    _METADATA,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("sweep_id", sa.Integer, sa.ForeignKey("sweeps.id", ondelete="CASCADE"), nullable=False),
    sa.Column("node", sa.String, nullable=False),
    sa.Column("tier", sa.String, nullable=False),
    sa.Column("endpoint", sa.String, nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("state", sa.String(8), nullable=False),
    sa.Column("reason", sa.String(16), nullable=False),
    sa.Column("detail", sa.Text, nullable=False),
    sa.Column("latency_ms", sa.Float, nullable=False),
    sa.Column("checked_at", _UTCDateTime, nullable=False),
    # One result per endpoint per sweep; also the index for "the latest sweep's rows".
    sa.UniqueConstraint("sweep_id", "node", "endpoint", name="uq_probe_results_sweep_endpoint"),
)
# For the reports' per-endpoint time series (uptime, latency, time to recover).
sa.Index("ix_probe_results_endpoint_sweep", _PROBES.c.node, _PROBES.c.endpoint, _PROBES.c.sweep_id)
# The ProbeResult fields a probe row keeps (`models` and `loaded` are not history).
_STORED_FIELDS = tuple(c.name for c in _PROBES.columns if c.name not in {"id", "sweep_id"})

# version reached -> the step that takes a database from the version before it there.
_UPGRADES: dict[int, Callable[[Connection], None]] = {}


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
        with _translated("read the schema version"), self.engine.connect() as conn:
            return _read_version(conn) or 0

    def record_sweep(self, report: SweepReport) -> int:
        """Store a sweep and all its probe results in one transaction; returns the sweep's id.

        Raises:
            HistoryError: nothing of this sweep was stored (earlier sweeps are untouched).
        """
        with _translated(f"record the sweep of {report.started_at.isoformat()}"), self.engine.begin() as conn:
            sweep_id = conn.execute(
                _SWEEPS.insert().values(
                    started_at=report.started_at,
                    duration_ms=report.duration_ms,
                    prognosis=report.cluster.prognosis.value,
                    reasons=list(report.cluster.reasons),
                )
            ).inserted_primary_key[0]
            if report.endpoints:
                # One executemany: a 500-endpoint sweep is one round trip, not 500.
                conn.execute(_PROBES.insert(), [_probe_row(sweep_id, r) for r in report.endpoints])
        return int(sweep_id)

    def sweep_results(self, sweep_id: int) -> list[ProbeResult]:
        """The probe results of one sweep, in the order they were stored."""
        query = sa.select(_PROBES).where(_PROBES.c.sweep_id == sweep_id).order_by(_PROBES.c.id)
        with _translated(f"read sweep {sweep_id}"), self.engine.connect() as conn:
            return [_probe_result(row) for row in conn.execute(query).mappings()]

    def recent_sweeps(self, n: int = 10) -> list[SweepRecord]:
        """The last `n` sweeps, newest first."""
        query = sa.select(_SWEEPS).order_by(_SWEEPS.c.id.desc()).limit(n)
        with _translated("read recent sweeps"), self.engine.connect() as conn:
            return [SweepRecord.model_validate(dict(row)) for row in conn.execute(query).mappings()]


def open_history(url: str, relative_to: Path | None = None) -> HistoryStore:
    """Open (creating or upgrading) the history database at a SQLAlchemy URL.

    Args:
        url: e.g. `sqlite:///homelab-history.db` or `postgresql+psycopg://user@host/homelab`.
        relative_to: directory a relative SQLite path is taken from (the cluster file's, so a
            worker started anywhere finds the same database); None: the working directory.

    Raises:
        HistoryError: the database cannot be reached, or its schema is newer than this code.
    """
    engine = _create_engine(url, relative_to)
    try:
        _ensure_schema(engine)
    except BaseException:
        engine.dispose()
        raise
    return HistoryStore(engine)


def _create_engine(url: str, relative_to: Path | None) -> Engine:
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
    engine = sa.create_engine(parsed, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S})
    sa.event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """WAL: readers (reports) never block the sweep's writer; foreign keys: SQLite's are off by default."""
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
    finally:
        cursor.close()


def _ensure_schema(engine: Engine) -> None:
    with _translated("create or upgrade the schema"):
        with engine.begin() as conn:
            version = _read_version(conn)
            if version is None:
                _METADATA.create_all(conn)
                _stamp(conn, SCHEMA_VERSION)
                return
        if version > SCHEMA_VERSION:
            raise HistoryError(
                f"history database is at schema version {version}, newer than this code's {SCHEMA_VERSION}; "
                "upgrade homelab-cluster"
            )
        for target in range(version + 1, SCHEMA_VERSION + 1):
            with engine.begin() as conn:
                _UPGRADES[target](conn)
                _stamp(conn, target)


def _read_version(conn: Connection) -> int | None:
    if not sa.inspect(conn).has_table(_SCHEMA_VERSION.name):
        return None
    return conn.execute(sa.select(sa.func.max(_SCHEMA_VERSION.c.version))).scalar()


def _stamp(conn: Connection, version: int) -> None:
    conn.execute(_SCHEMA_VERSION.insert().values(version=version, applied_at=datetime.now(UTC)))


@contextmanager
def _translated(action: str) -> Iterator[None]:
    """The one place SQLAlchemy errors become `HistoryError`, naming what was being done."""
    try:
        yield
    except sa.exc.SQLAlchemyError as exc:
        raise HistoryError(f"history: cannot {action}: {exc.__class__.__name__}: {_first_line(exc)}") from exc


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else ""


def _probe_row(sweep_id: int, result: ProbeResult) -> dict[str, Any]:
    row: dict[str, Any] = {"sweep_id": sweep_id}
    for name in _STORED_FIELDS:
        value = getattr(result, name)
        row[name] = value.value if isinstance(value, Enum) else value
    return row


def _probe_result(row: Any) -> ProbeResult:
    return ProbeResult.model_validate({name: row[name] for name in _STORED_FIELDS})
