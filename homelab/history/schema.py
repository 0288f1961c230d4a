"""The history database's tables, their versions and upgrades, and the SQL error boundary."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from homelab.errors import HistoryError

__all__ = [
    "BUCKET_COLUMNS",
    "INCIDENTS",
    "INCIDENT_ACTIONS",
    "INCIDENT_MARK",
    "LATENCY_EDGES_MS",
    "MARKS",
    "METADATA",
    "PROBES",
    "PROBE_HOURLY",
    "ROLLOUTS",
    "SCHEMA_VERSION",
    "SCHEMA_VERSION_TABLE",
    "SQLITE_BUSY_TIMEOUT_S",
    "STORED_FIELDS",
    "SWEEPS",
    "TABLES",
    "V2_TABLES",
    "VRAM_SAMPLES",
    "ensure_schema",
    "insert_row",
    "read_version",
    "translate_errors",
]

SCHEMA_VERSION = 3

# Upper edges (ms) of the latency histogram buckets of `probe_hourly`; the last bucket
# is open-ended. Percentiles from it are exact to within one bucket, which is what an owner
# asks of a p95 ("under 200 ms?"), and the histogram adds up across hours and endpoints.
LATENCY_EDGES_MS: tuple[float, ...] = (
    1, 2, 5, 10, 20, 35, 50, 75, 100, 150, 200, 300, 500, 750, 1000, 1500, 2000, 3000, 5000, 10000, 30000,
)  # fmt: skip
# The histogram's columns in `probe_hourly`: bucket i counts probes under LATENCY_EDGES_MS[i]
# (and at least the edge before); the last counts the rest.
BUCKET_COLUMNS: tuple[str, ...] = tuple(f"lat_b{i:02d}" for i in range(len(LATENCY_EDGES_MS) + 1))

# SQLite waits this long for another writer (a report reading while a sweep writes) before failing.
SQLITE_BUSY_TIMEOUT_S = 30.0


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


METADATA = sa.MetaData()

SCHEMA_VERSION_TABLE = sa.Table(
    "schema_version",
    METADATA,
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("applied_at", _UTCDateTime, nullable=False),
)

SWEEPS = sa.Table(
    "sweeps",
    METADATA,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("started_at", _UTCDateTime, nullable=False, index=True),
    sa.Column("duration_ms", sa.Float, nullable=False),
    sa.Column("prognosis", sa.String(16), nullable=False),
    sa.Column("reasons", sa.JSON, nullable=False),
)

PROBES = sa.Table(
    "probe_results",
    METADATA,
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
    # Version 3: what the server said its models can do, {model name: [capability]}, so that
    # routing knows it without asking again (NULL in rows written before).
    sa.Column("capabilities", sa.JSON, nullable=True),
    # One result per endpoint per sweep; also the index for "the latest sweep's rows".
    sa.UniqueConstraint("sweep_id", "node", "endpoint", name="uq_probe_results_sweep_endpoint"),
)
# For the reports' per-endpoint time series (uptime, latency, time to recover).
sa.Index("ix_probe_results_endpoint_sweep", PROBES.c.node, PROBES.c.endpoint, PROBES.c.sweep_id)
# The ProbeResult fields a probe row keeps (`models` and `loaded` are not history).
STORED_FIELDS = tuple(c.name for c in PROBES.columns if c.name not in {"id", "sweep_id"})


# --- version 2 -------------------------------------------------------------------------------
VRAM_SAMPLES = sa.Table(
    "vram_samples",
    METADATA,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("sampled_at", _UTCDateTime, nullable=False, index=True),
    sa.Column("node", sa.String, nullable=False),
    sa.Column("source", sa.String(16), nullable=False),
    sa.Column("gpu_index", sa.Integer, nullable=True),
    sa.Column("gpu_name", sa.String, nullable=False, default=""),
    sa.Column("model", sa.String, nullable=True),
    sa.Column("used_bytes", sa.BigInteger, nullable=True),
    sa.Column("total_bytes", sa.BigInteger, nullable=True),
    sa.Column("utilization_pct", sa.Float, nullable=True),
)
INCIDENTS = sa.Table(
    "incidents",
    METADATA,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("node", sa.String, nullable=False),
    sa.Column("endpoint", sa.String, nullable=True),
    sa.Column("opened_at", _UTCDateTime, nullable=False, index=True),
    sa.Column("closed_at", _UTCDateTime, nullable=True, index=True),
    sa.Column("first_sweep_id", sa.Integer, nullable=True),
    sa.Column("last_sweep_id", sa.Integer, nullable=True),
    sa.Column("summary", sa.Text, nullable=False, default=""),
)
INCIDENT_ACTIONS = sa.Table(
    "incident_actions",
    METADATA,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("incident_id", sa.Integer, sa.ForeignKey("incidents.id", ondelete="CASCADE"), nullable=False, index=True),
    sa.Column("at", _UTCDateTime, nullable=False),
    sa.Column("action", sa.String, nullable=False),
    sa.Column("outcome", sa.String, nullable=False),
    sa.Column("detail", sa.Text, nullable=False, default=""),
)
ROLLOUTS = sa.Table(
    "rollouts",
    METADATA,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("started_at", _UTCDateTime, nullable=False, index=True),
    sa.Column("finished_at", _UTCDateTime, nullable=True),
    sa.Column("node", sa.String, nullable=False),
    sa.Column("endpoint", sa.String, nullable=False),
    sa.Column("model_file", sa.String, nullable=False),
    sa.Column("outcome", sa.String, nullable=False),
    sa.Column("detail", sa.Text, nullable=False, default=""),
)
PROBE_HOURLY = sa.Table(
    "probe_hourly",
    METADATA,
    sa.Column("hour", _UTCDateTime, primary_key=True),
    sa.Column("node", sa.String, primary_key=True),
    sa.Column("endpoint", sa.String, primary_key=True),
    sa.Column("tier", sa.String, nullable=False),
    sa.Column("probes", sa.Integer, nullable=False),
    sa.Column("up", sa.Integer, nullable=False),
    sa.Column("slow", sa.Integer, nullable=False),
    sa.Column("down", sa.Integer, nullable=False),
    sa.Column("latency_sum_ms", sa.Float, nullable=False),
    sa.Column("latency_max_ms", sa.Float, nullable=False),
    # One column per bucket, not a row: a period's histogram is then one SUM per column
    # over the hourly rows, 25 times faster on SQLite than grouping bucket rows.
    *(sa.Column(name, sa.Integer, nullable=False) for name in BUCKET_COLUMNS),
)
# Bookkeeping of incremental passes: name -> the last sweep id a pass has seen.
MARKS = sa.Table(
    "history_marks",
    METADATA,
    sa.Column("name", sa.String(32), primary_key=True),
    sa.Column("value", sa.Integer, nullable=False),
)
INCIDENT_MARK = "incidents"
V2_TABLES = (VRAM_SAMPLES, INCIDENTS, INCIDENT_ACTIONS, ROLLOUTS, PROBE_HOURLY, MARKS)
# The tables by name, for `homelab.reports` queries (read-only use).
TABLES: dict[str, sa.Table] = dict(METADATA.tables)


def _upgrade_to_2(conn: Connection) -> None:
    """Version 2 only adds tables: every row of version 1 stays as it was."""
    METADATA.create_all(conn, tables=list(V2_TABLES))


def _upgrade_to_3(conn: Connection) -> None:
    """Version 3 adds one nullable column: rows of earlier sweeps keep NULL (capabilities unknown)."""
    column = PROBES.c.capabilities
    conn.execute(sa.text(f"ALTER TABLE {PROBES.name} ADD COLUMN {column.name} {column.type.compile(conn.dialect)}"))


# version reached -> the step that takes a database from the version before it there.
_UPGRADES: dict[int, Callable[[Connection], None]] = {2: _upgrade_to_2, 3: _upgrade_to_3}


def ensure_schema(engine: Engine) -> None:
    """Create a fresh database's tables, or bring an older one up to `SCHEMA_VERSION`, one step per transaction.

    Several processes may open a fresh database at once (a sweep, a report, the router). Each
    step re-reads the version under a lock held to its commit, so the loser of the race sees
    the winner's tables instead of failing on "table schema_version already exists" and
    losing its sweep. A database already current takes no lock.

    Raises:
        HistoryError: the database cannot be reached, or its schema is newer than this code's.
    """
    with translate_errors("create or upgrade the schema"):
        with engine.connect() as conn:
            if read_version(conn) == SCHEMA_VERSION:
                return
        for _ in range(SCHEMA_VERSION):
            with engine.begin() as conn:
                _lock_schema(conn)
                version = read_version(conn)
                if version is None:
                    METADATA.create_all(conn)
                    _stamp(conn, SCHEMA_VERSION)
                    return
                if version > SCHEMA_VERSION:
                    raise HistoryError(
                        f"history database is at schema version {version}, newer than this code's "
                        f"{SCHEMA_VERSION}; upgrade homelab-cluster"
                    )
                if version == SCHEMA_VERSION:
                    return
                _UPGRADES[version + 1](conn)
                _stamp(conn, version + 1)


# Any constant will do: it names "the homelab schema lock" among the database's advisory locks.
_PG_SCHEMA_LOCK = 0x686F6D656C6162  # "homelab"


def _lock_schema(conn: Connection) -> None:
    """Hold the database's write lock until this transaction ends, before the version is read.

    SQLite: BEGIN IMMEDIATE takes the write lock at once (waiting up to the busy timeout), and
    makes the DDL that follows part of the transaction (pysqlite would run each CREATE on its
    own). PostgreSQL: a transaction-scoped advisory lock; its DDL is transactional already.
    """
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    elif conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_SCHEMA_LOCK})


def read_version(conn: Connection) -> int | None:
    if not sa.inspect(conn).has_table(SCHEMA_VERSION_TABLE.name):
        return None
    return conn.execute(sa.select(sa.func.max(SCHEMA_VERSION_TABLE.c.version))).scalar()


def insert_row(conn: Connection, statement: sa.Insert) -> int:
    """Run a one-row INSERT into a table keyed by an integer id; returns the id it created.

    Raises:
        HistoryError: the statement created no key (it was not a one-row INSERT).
    """
    key = conn.execute(statement).inserted_primary_key
    if key is None:
        raise HistoryError(f"history: {statement.table} got no row id from its INSERT")
    return int(key[0])


def _stamp(conn: Connection, version: int) -> None:
    conn.execute(SCHEMA_VERSION_TABLE.insert().values(version=version, applied_at=datetime.now(UTC)))


@contextmanager
def translate_errors(action: str) -> Iterator[None]:
    """The one place SQLAlchemy errors become `HistoryError`, naming what was being done."""
    try:
        yield
    except sa.exc.SQLAlchemyError as exc:
        raise HistoryError(f"history: cannot {action}: {exc.__class__.__name__}: {_first_line(exc)}") from exc


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else ""
