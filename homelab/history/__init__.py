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

Version 3 (issue #17) adds one nullable column, `probe_results.capabilities` (JSON: what the
server said each model can do, by model name), so routing knows it without probing again.

The hourly roll-ups are what reports read, so a report over months costs thousands of rows,
not millions; raw probe rows older than the retention (`RetentionPolicy.raw_days`) are
deleted once rolled up, and the roll-ups are kept for good (`HistoryStore.roll_up`, `HistoryStore.prune`).

A fresh database gets the current tables and is stamped with `SCHEMA_VERSION`; an older one
gets each missing upgrade in its own transaction; a newer one is refused, so an old install
never writes rows a newer schema does not expect.

One sweep is one transaction: the sweep row and all its probe rows commit together or not
at all. A crash mid-write leaves no half sweep, and earlier sweeps are untouched.
"""

from homelab.history.changes import (
    EndpointChange,
    NodeDown,
    SweepChanges,
    compare_with_previous,
    down_node,
)
from homelab.history.rollup import hour_of, hourly_probe_select, rolled_up_until
from homelab.history.schema import (
    BUCKET_COLUMNS,
    LATENCY_EDGES_MS,
    SCHEMA_VERSION,
    TABLES,
    translate_errors,
)
from homelab.history.store import (
    HistoryStore,
    RetentionPolicy,
    SweepRecord,
    open_history,
)

__all__ = [
    "BUCKET_COLUMNS",
    "LATENCY_EDGES_MS",
    "SCHEMA_VERSION",
    "TABLES",
    "EndpointChange",
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
