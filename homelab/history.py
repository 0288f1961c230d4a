"""The history store: every sweep and its probe results, in SQL (SQLite by default, any SQLAlchemy URL).

Why SQL: the reports ask questions across months of sweeps (uptime per endpoint, latency
percentiles, time to recover), which are joins and aggregates, and a bigger setup moves the
same tables to PostgreSQL by changing `history.url` in the cluster file.

Schema, version 1:

    schema_version  version PK, applied_at          one row per version this database reached
    sweeps          id PK, started_at, duration_ms, prognosis, reasons (JSON list)
    probe_results   id PK, sweep_id -> sweeps.id, node, tier, endpoint, kind, url, state,
                    reason, detail, latency_ms, checked_at; UNIQUE (sweep_id, node, endpoint)

Version 2 (issue #9) adds tables only, so no row of version 1 is touched:

    vram_samples          id, sampled_at, node, source, gpu_index, gpu_name, model,
                          used_bytes, total_bytes, utilization_pct
    incidents             id, node, endpoint (NULL: the whole node), opened_at, closed_at,
                          first_sweep_id, last_sweep_id, summary
    incident_actions      id, incident_id -> incidents.id, at, action, outcome, detail
    rollouts              id, started_at, finished_at, node, endpoint, model_file, outcome, detail
    probe_hourly          hour, node, endpoint PK; tier, probes, up, slow, down,
                          latency_sum_ms, latency_max_ms, lat_b00..lat_b21 (a latency
                          histogram: probes per bucket of LATENCY_EDGES_MS)
    history_marks         name PK, value: the last sweep id an incremental pass has seen

The hourly roll-ups are what reports read, so a report over months costs thousands of rows,
not millions; raw probe rows older than the retention (`RetentionPolicy.raw_days`) are
deleted once rolled up, and the roll-ups are kept for good (`HistoryStore.roll_up`, `HistoryStore.prune`).

A fresh database gets the current tables and is stamped with `SCHEMA_VERSION`; an older one
gets each missing upgrade in its own transaction; a newer one is refused, so an old install
never writes rows a newer schema does not expect.

One sweep is one transaction: the sweep row and all its probe rows commit together or not
at all. A crash mid-write leaves no half sweep, and earlier sweeps are untouched.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from enum import Enum
from pathlib import Path
from typing import Any, Self

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.engine import Connection, Engine, make_url

from homelab.errors import HomelabError
from homelab.gpu_facts import VramSample
from homelab.health import Prognosis, SweepReport
from homelab.probe import EndpointState, ProbeResult

__all__ = [
    "BUCKET_COLUMNS",
    "LATENCY_EDGES_MS",
    "SCHEMA_VERSION",
    "TABLES",
    "EndpointChange",
    "HistoryError",
    "HistoryStore",
    "NodeDown",
    "RetentionPolicy",
    "SweepChanges",
    "SweepRecord",
    "compare_with_previous",
    "down_node",
    "hour_of",
    "hourly_probe_select",
    "open_history",
    "rolled_up_until",
    "translate_errors",
]

SCHEMA_VERSION = 2

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


# --- version 2 -------------------------------------------------------------------------------
_VRAM = sa.Table(
    "vram_samples",
    _METADATA,
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
_INCIDENTS = sa.Table(
    "incidents",
    _METADATA,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("node", sa.String, nullable=False),
    sa.Column("endpoint", sa.String, nullable=True),
    sa.Column("opened_at", _UTCDateTime, nullable=False, index=True),
    sa.Column("closed_at", _UTCDateTime, nullable=True, index=True),
    sa.Column("first_sweep_id", sa.Integer, nullable=True),
    sa.Column("last_sweep_id", sa.Integer, nullable=True),
    sa.Column("summary", sa.Text, nullable=False, default=""),
)
_ACTIONS = sa.Table(
    "incident_actions",
    _METADATA,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("incident_id", sa.Integer, sa.ForeignKey("incidents.id", ondelete="CASCADE"), nullable=False, index=True),
    sa.Column("at", _UTCDateTime, nullable=False),
    sa.Column("action", sa.String, nullable=False),
    sa.Column("outcome", sa.String, nullable=False),
    sa.Column("detail", sa.Text, nullable=False, default=""),
)
_ROLLOUTS = sa.Table(
    "rollouts",
    _METADATA,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("started_at", _UTCDateTime, nullable=False, index=True),
    sa.Column("finished_at", _UTCDateTime, nullable=True),
    sa.Column("node", sa.String, nullable=False),
    sa.Column("endpoint", sa.String, nullable=False),
    sa.Column("model_file", sa.String, nullable=False),
    sa.Column("outcome", sa.String, nullable=False),
    sa.Column("detail", sa.Text, nullable=False, default=""),
)
_HOURLY = sa.Table(
    "probe_hourly",
    _METADATA,
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
_MARKS = sa.Table(
    "history_marks",
    _METADATA,
    sa.Column("name", sa.String(32), primary_key=True),
    sa.Column("value", sa.Integer, nullable=False),
)
_INCIDENT_MARK = "incidents"
_V2_TABLES = (_VRAM, _INCIDENTS, _ACTIONS, _ROLLOUTS, _HOURLY, _MARKS)
# The tables by name, for `homelab.reports` queries (read-only use).
TABLES: dict[str, sa.Table] = dict(_METADATA.tables)


def _upgrade_to_2(conn: Connection) -> None:
    """Version 2 only adds tables: every row of version 1 stays as it was."""
    _METADATA.create_all(conn, tables=list(_V2_TABLES))


# version reached -> the step that takes a database from the version before it there.
_UPGRADES: dict[int, Callable[[Connection], None]] = {2: _upgrade_to_2}


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


class EndpointChange(BaseModel):
    """An endpoint that went DOWN, or came back from DOWN, since the previous sweep."""

    model_config = ConfigDict(frozen=True)

    result: ProbeResult
    previous: EndpointState | None = None

    @property
    def went_down(self) -> bool:
        return self.result.state is EndpointState.DOWN


class NodeDown(BaseModel):
    """A node none of whose endpoints answered, with each endpoint's result."""

    model_config = ConfigDict(frozen=True)

    node: str
    tier: str
    results: list[ProbeResult]
    new: bool = True

    @property
    def summary(self) -> str:
        """One line for a UI: which endpoints failed and why."""
        failures = ", ".join(f"{r.endpoint} {r.reason}" for r in self.results)
        return f"node {self.node} is down: all {len(self.results)} endpoints failed ({failures})"


class SweepChanges(BaseModel):
    """What a sweep says that the previous one did not, for events and triggers."""

    model_config = ConfigDict(frozen=True)

    sweep_id: int
    endpoints: list[EndpointChange]
    nodes_down: list[NodeDown]


def down_node(results: Sequence[ProbeResult], new: bool = True) -> NodeDown | None:
    """The node of `results` (one node's endpoints) when every endpoint is DOWN, else None.

    A node without endpoints is never down: there is nothing to judge it by.
    """
    if not results or any(r.state is not EndpointState.DOWN for r in results):
        return None
    return NodeDown(node=results[0].node, tier=results[0].tier, results=list(results), new=new)


def compare_with_previous(
    sweep_id: int, previous: dict[tuple[str, str], ProbeResult], report: SweepReport
) -> SweepChanges:
    """Endpoints that changed between DOWN and not DOWN, and nodes that are wholly down.

    An endpoint with no previous state (the first sweep, or new in the inventory) counts as
    not DOWN before: seeing it DOWN for the first time is news, seeing it UP is not.
    A node that is down is reported on every sweep, with `new` telling whether it was
    not yet wholly down in the previous sweep, so a trigger can react to the first sighting
    or keep retrying while the node stays down.
    """
    changes: list[EndpointChange] = []
    by_node: dict[str, list[ProbeResult]] = {}
    for result in report.endpoints:
        by_node.setdefault(result.node, []).append(result)
        before = previous.get((result.node, result.endpoint))
        was_down = before is not None and before.state is EndpointState.DOWN
        if was_down != (result.state is EndpointState.DOWN):
            changes.append(EndpointChange(result=result, previous=before.state if before else None))
    nodes_down: list[NodeDown] = []
    for node, results in by_node.items():
        before = [p for (n, _), p in previous.items() if n == node]
        if (down := down_node(results, new=down_node(before) is None)) is not None:
            nodes_down.append(down)
    return SweepChanges(sweep_id=sweep_id, endpoints=changes, nodes_down=nodes_down)


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

    def record_vram_samples(self, samples: Sequence[VramSample]) -> int:
        """Store one sampling round in one transaction; returns how many rows were written."""
        if not samples:
            return 0
        rows = [s.model_dump(mode="python") for s in samples]
        for row in rows:
            row["source"] = row["source"].value
        with _translated("record VRAM samples"), self.engine.begin() as conn:
            conn.execute(_VRAM.insert(), rows)
        return len(rows)

    def open_incident(self, node: str, endpoint: str | None, at: datetime, summary: str = "") -> int:
        """Open an incident (endpoint None: the whole node), for the recovery flow; returns its id."""
        values = {"node": node, "endpoint": endpoint, "opened_at": at, "summary": summary}
        with _translated(f"open an incident for {node}"), self.engine.begin() as conn:
            return int(conn.execute(_INCIDENTS.insert().values(**values)).inserted_primary_key[0])

    def add_incident_action(self, incident_id: int, at: datetime, action: str, outcome: str, detail: str = "") -> None:
        """Record one recovery step (e.g. `restart-docker`, `ok`) taken for an incident."""
        values = {"incident_id": incident_id, "at": at, "action": action, "outcome": outcome, "detail": detail}
        with _translated(f"record an action of incident {incident_id}"), self.engine.begin() as conn:
            conn.execute(_ACTIONS.insert().values(**values))

    def close_incident(self, incident_id: int, at: datetime) -> None:
        """Mark an incident recovered at `at`."""
        query = _INCIDENTS.update().where(_INCIDENTS.c.id == incident_id).values(closed_at=at)
        with _translated(f"close incident {incident_id}"), self.engine.begin() as conn:
            conn.execute(query)

    def record_rollout(self, values: dict[str, Any]) -> int:
        """Store one rollout (columns of `rollouts` but `id`); returns its id."""
        with _translated("record a rollout"), self.engine.begin() as conn:
            return int(conn.execute(_ROLLOUTS.insert().values(**values)).inserted_primary_key[0])

    def roll_up(self, now: datetime) -> int:
        """Roll every complete hour not yet rolled up into the hourly tables; returns hours added.

        Hours are taken from the sweep's start, and only hours before `now`'s are rolled, so a
        sweep stamped in the future (a skewed clock) waits for its hour instead of freezing
        a partial one. Idempotent: a second call in the same hour adds nothing.
        """
        end = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        with _translated("roll up probe history"), self.engine.begin() as conn:
            start = rolled_up_until(conn)
            if start is not None and start >= end:
                return 0
            hourly = hourly_probe_select(conn.dialect.name, start, end)
            conn.execute(_HOURLY.insert().from_select(list(hourly.selected_columns.keys()), hourly))
            added = sa.select(sa.func.count(sa.distinct(_HOURLY.c.hour)))
            if start is not None:
                added = added.where(_HOURLY.c.hour >= start)
            return int(conn.execute(added).scalar() or 0)

    def track_incidents(self) -> int:
        """Derive endpoint incidents (DOWN until serving again) from sweeps not yet scanned;
        returns how many were opened. Reports call it first, so their incidents are current."""
        with _translated("derive incidents from probe history"), self.engine.begin() as conn:
            return _track_endpoint_incidents(conn)

    def prune(self, now: datetime, policy: RetentionPolicy) -> int:
        """Delete raw probe rows (and their sweeps) past `policy.raw_days` that are rolled up,
        and VRAM samples past `policy.vram_days`; returns the sweeps deleted."""
        cutoff = now.astimezone(UTC) - timedelta(days=policy.raw_days)
        with _translated("prune old history"), self.engine.begin() as conn:
            _track_endpoint_incidents(conn)  # an outage in rows about to go is kept as its incident
            rolled = rolled_up_until(conn)
            if rolled is not None:
                cutoff = min(cutoff, rolled)
                old = sa.select(_SWEEPS.c.id).where(_SWEEPS.c.started_at < cutoff)
                conn.execute(_PROBES.delete().where(_PROBES.c.sweep_id.in_(old)))
                deleted = conn.execute(_SWEEPS.delete().where(_SWEEPS.c.started_at < cutoff)).rowcount
            else:
                deleted = 0
            vram_cutoff = now.astimezone(UTC) - timedelta(days=policy.vram_days)
            conn.execute(_VRAM.delete().where(_VRAM.c.sampled_at < vram_cutoff))
        return int(deleted or 0)

    def latest_states(self) -> dict[tuple[str, str], ProbeResult]:
        """The most recent sweep's result per (node, endpoint); empty before the first sweep.

        Only the latest sweep is read (an indexed lookup), so the cost does not grow with
        history. Results come back without `models` and `loaded`, which are not stored.
        """
        latest = sa.select(sa.func.max(_SWEEPS.c.id)).scalar_subquery()
        with _translated("read the latest sweep"), self.engine.connect() as conn:
            rows = conn.execute(sa.select(_PROBES).where(_PROBES.c.sweep_id == latest)).mappings().all()
        return {(row["node"], row["endpoint"]): _probe_result(row) for row in rows}

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


# Public name for readers of the store outside this module (reports): same translation.
translate_errors = _translated


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


def _transitions(conn: Connection, after_sweep: int) -> list[Any]:
    """Probe rows after sweep `after_sweep` where an endpoint's DOWN-ness changed, plus each
    endpoint's first row there (its state carried over from before), in sweep order."""
    down = sa.case((_PROBES.c.state == EndpointState.DOWN.value, 1), else_=0)
    window = sa.func.lag(down).over(partition_by=(_PROBES.c.node, _PROBES.c.endpoint), order_by=_PROBES.c.sweep_id)
    inner = (
        sa.select(
            _PROBES.c.node,
            _PROBES.c.endpoint,
            _PROBES.c.sweep_id,
            _PROBES.c.checked_at,
            _PROBES.c.reason,
            _PROBES.c.detail,
            down.label("down"),
            window.label("before"),
        )
        .where(_PROBES.c.sweep_id > after_sweep)
        .subquery()
    )
    query = (
        sa.select(inner)
        .where(sa.or_(inner.c.before.is_(None), inner.c.before != inner.c.down))
        .order_by(inner.c.sweep_id)
    )
    return list(conn.execute(query))


def _track_endpoint_incidents(conn: Connection) -> int:
    """Open an incident where an endpoint went DOWN, close it where it served again; returns
    how many incidents were opened. Reads only sweeps after the last one scanned (a mark)."""
    after = conn.execute(sa.select(_MARKS.c.value).where(_MARKS.c.name == _INCIDENT_MARK)).scalar()
    last = conn.execute(sa.select(sa.func.max(_SWEEPS.c.id))).scalar()
    if last is None or (after is not None and after >= last):
        return 0
    query = sa.select(_INCIDENTS.c.id, _INCIDENTS.c.node, _INCIDENTS.c.endpoint).where(
        _INCIDENTS.c.closed_at.is_(None), _INCIDENTS.c.endpoint.is_not(None)
    )
    open_ = {(row.node, row.endpoint): row.id for row in conn.execute(query)}
    opened = 0
    for row in _transitions(conn, after or 0):
        key = (row.node, row.endpoint)
        if row.down and key not in open_:
            values = {
                "node": row.node,
                "endpoint": row.endpoint,
                "opened_at": row.checked_at,
                "first_sweep_id": row.sweep_id,
                "summary": f"{row.reason}: {row.detail}"[:500],
            }
            open_[key] = conn.execute(_INCIDENTS.insert().values(**values)).inserted_primary_key[0]
            opened += 1
        elif not row.down and key in open_:
            update = _INCIDENTS.update().where(_INCIDENTS.c.id == open_.pop(key))
            conn.execute(update.values(closed_at=row.checked_at, last_sweep_id=row.sweep_id))
    mark = {"name": _INCIDENT_MARK, "value": last}
    if after is None:
        conn.execute(_MARKS.insert().values(**mark))
    else:
        conn.execute(_MARKS.update().where(_MARKS.c.name == _INCIDENT_MARK).values(value=last))
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
    hour = hour_of(_SWEEPS.c.started_at, dialect).label("hour")
    where = []
    if start is not None:
        where.append(_SWEEPS.c.started_at >= start)
    if end is not None:
        where.append(_SWEEPS.c.started_at < end)
    state, latency = _PROBES.c.state, _PROBES.c.latency_ms

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
            hour, _PROBES.c.node, _PROBES.c.endpoint, sa.func.max(_PROBES.c.tier).label("tier"),
            sa.func.count().label("probes"), count_if(state == EndpointState.UP.value).label("up"),
            count_if(state == EndpointState.SLOW.value).label("slow"),
            count_if(state == EndpointState.DOWN.value).label("down"),
            sa.func.sum(latency).label("latency_sum_ms"), sa.func.max(latency).label("latency_max_ms"), *buckets,
        )
        .select_from(_PROBES.join(_SWEEPS, _SWEEPS.c.id == _PROBES.c.sweep_id))
        .where(*where)
        .group_by(hour, _PROBES.c.node, _PROBES.c.endpoint)
    )  # fmt: skip


def rolled_up_until(conn: Connection) -> datetime | None:
    """The end of the last rolled-up hour (hours before it are in `probe_hourly`); None: nothing yet."""
    last = conn.execute(sa.select(sa.func.max(_HOURLY.c.hour))).scalar()
    if last is None:
        return None
    if isinstance(last, str):  # SQLite's MAX() returns the stored text, not a typed value
        last = datetime.fromisoformat(last)
    last = last.replace(tzinfo=UTC) if last.tzinfo is None else last.astimezone(UTC)
    return last + timedelta(hours=1)
