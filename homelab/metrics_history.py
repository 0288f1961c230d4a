"""What `homelab metrics` reads from the history on each scrape: the latest sweep, the latest VRAM round, incidents.

Every read is bounded whatever the history holds: one sweep (its rows are the cluster file's
endpoints), the VRAM rows of each node's latest round within `vram_max_age_s` (an index range
on `sampled_at`, at most `MAX_VRAM_ROWS`), and incidents counted by the database in groups of
(node, scope, outcome), so a scrape costs the same after a year of history as after a day.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from pydantic import Field
from sqlalchemy.engine import Connection

from homelab.errors import HistoryError
from homelab.frozen import Frozen
from homelab.health.probe import ProbeResult
from homelab.history import TABLES, HistoryStore, SweepRecord, translate_errors
from homelab.vram.gpu_facts import VramSample

__all__ = [
    "MAX_VRAM_ROWS",
    "HistorySnapshot",
    "IncidentGroup",
    "incident_groups",
    "latest_vram",
    "read_snapshot",
    "refresh_incidents",
]

log = logging.getLogger(__name__)

# More VRAM rows than any real round holds (a GPU row per card, a row per loaded model): a
# history written by something else cannot make one scrape read millions of rows.
MAX_VRAM_ROWS = 10_000
# The action row `homelab.recovery.record` writes last, its outcome the recovery's (RECOVERED, FLAP, FAILED).
_OUTCOME_ACTION = "outcome"


class IncidentGroup(Frozen):
    """Incidents of one node, scope and outcome, and the time they took to recover.

    Scope `endpoint`: derived from sweeps (DOWN until it served again), outcome OPEN or RECOVERED.
    Scope `node`: a recovery run (`homelab recover`, the recover-node flow), outcome its own:
    RECOVERED, FLAP or FAILED (UNKNOWN when its outcome row was never written).
    """

    node: str
    scope: str
    outcome: str
    count: int
    recovered_s: float = Field(description="seconds from opening to closing, summed over RECOVERED incidents; else 0")


class HistorySnapshot(Frozen):
    """One scrape's reading of the history."""

    sweep: SweepRecord | None = Field(description="the latest sweep; None before the first")
    results: list[ProbeResult] = Field(description="the latest sweep's probe results, in the order stored")
    vram: list[VramSample] = Field(description="each node's latest VRAM round (per source) within the age limit")
    incidents: list[IncidentGroup]


def refresh_incidents(store: HistoryStore) -> None:
    """Derive incidents from the sweeps not yet scanned, as reports do, so open incidents are current.

    A history the exporter may only read (a read-only PostgreSQL role) still serves: the
    incidents already derived are shown, and the reason is logged.
    """
    try:
        store.track_incidents()
    except HistoryError as exc:
        log.warning("metrics: incidents not brought up to date, serving those already derived: %s", exc)


def read_snapshot(store: HistoryStore, now: datetime, vram_max_age_s: float) -> HistorySnapshot:
    """The latest sweep and its results, the latest VRAM rounds of the last `vram_max_age_s`, and incidents.

    Raises:
        HistoryError: the database cannot be read.
    """
    recent = store.recent_sweeps(1)
    sweep = recent[0] if recent else None
    # By id, not "the latest": a sweep stored between the two reads cannot mix into this one.
    results = store.sweep_results(sweep.id) if sweep is not None else []
    with translate_errors("read VRAM samples and incidents for metrics"), store.engine.connect() as conn:
        vram = latest_vram(conn, now - timedelta(seconds=vram_max_age_s), now)
        incidents = incident_groups(conn)
    return HistorySnapshot(sweep=sweep, results=results, vram=vram, incidents=incidents)


def latest_vram(conn: Connection, since: datetime, until: datetime) -> list[VramSample]:
    """Rows of each (node, source)'s latest sampling round stamped in [since, until], oldest row first.

    A round's rows share one `sampled_at` (`gpu_samples`, `model_samples`), so a GPU that left a
    node, or a model that was unloaded, is gone from the next round. Rows stamped after `until`
    (a sampler's clock ahead) wait for their time, as in reports.
    """
    t = TABLES["vram_samples"]
    window = (t.c.sampled_at >= since, t.c.sampled_at <= until)
    last = (
        sa.select(t.c.node, t.c.source, sa.func.max(t.c.sampled_at).label("at"))
        .where(*window)
        .group_by(t.c.node, t.c.source)
        .subquery()
    )
    on = sa.and_(t.c.node == last.c.node, t.c.source == last.c.source, t.c.sampled_at == last.c.at)
    query = sa.select(t).join(last, on).where(*window).order_by(t.c.id.desc()).limit(MAX_VRAM_ROWS)
    rows = conn.execute(query).mappings().all()
    return [VramSample.model_validate({k: v for k, v in row.items() if k != "id"}) for row in reversed(rows)]


def _seconds_between(start: Any, end: Any, dialect: str) -> Any:
    if dialect == "sqlite":  # timestamps are text there; julianday reads that form (to ~0.1 ms)
        return (sa.func.julianday(end) - sa.func.julianday(start)) * 86400.0
    return sa.extract("epoch", end - start)


def incident_groups(conn: Connection) -> list[IncidentGroup]:
    """Every incident in the history (they are kept for good), counted by node, scope and outcome."""
    i, a = TABLES["incidents"], TABLES["incident_actions"]
    outcome = (
        sa.select(a.c.incident_id, sa.func.max(a.c.outcome).label("outcome"))
        .where(a.c.action == _OUTCOME_ACTION)
        .group_by(a.c.incident_id)
        .subquery()
    )
    whole_node, still_open = i.c.endpoint.is_(None), i.c.closed_at.is_(None)
    query = (
        sa.select(
            i.c.node,
            whole_node.label("whole_node"),
            still_open.label("still_open"),
            outcome.c.outcome,
            sa.func.count().label("incidents"),
            sa.func.sum(_seconds_between(i.c.opened_at, i.c.closed_at, conn.dialect.name)).label("seconds"),
        )
        .select_from(i.outerjoin(outcome, outcome.c.incident_id == i.c.id))
        .group_by(i.c.node, whole_node, still_open, outcome.c.outcome)
        .order_by(i.c.node)
    )
    merged: dict[tuple[str, str, str], tuple[int, float]] = {}
    for row in conn.execute(query):
        if row.whole_node:
            scope, label = "node", row.outcome or "UNKNOWN"
        else:
            scope, label = "endpoint", "OPEN" if row.still_open else "RECOVERED"
        count, seconds = merged.get((row.node, scope, label), (0, 0.0))
        recovered = float(row.seconds or 0.0) if label == "RECOVERED" else 0.0
        merged[(row.node, scope, label)] = (count + int(row.incidents), seconds + recovered)
    return [
        IncidentGroup(node=node, scope=scope, outcome=label, count=count, recovered_s=seconds)
        for (node, scope, label), (count, seconds) in merged.items()
    ]
