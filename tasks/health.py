"""Prefect tasks of the health sweep: probe, judge each node, record, emit events, publish the artifact.

Each task calls into `homelab` and returns its model; what a task adds is what the Prefect UI
and automations see: a task run per node that ends Failed when the node is down, the events
that triggers (node recovery) listen for, and a table artifact of the sweep.

Only the probe retries (`tasks.options`): a DOWN endpoint is data, not an exception, so a retry
runs only when the sweep itself broke. A node's verdict does not retry: its Failed state is a
finding, and a retry would judge the same results again. A history write that failed may or
may not have committed (a retry could store the sweep twice), and events and the artifact go
out once. Nothing is cached or persisted either: every sweep must look afresh.
"""

from __future__ import annotations

import gc
from pathlib import Path
from uuid import UUID

from prefect import task
from prefect.artifacts import acreate_table_artifact
from prefect.client.schemas.objects import State
from prefect.events import emit_event
from prefect.states import Completed, Failed

from homelab.alerts import ALERT_LABEL, AlertKind, Notify, alert_mark
from homelab.health.http import open_probe_client
from homelab.health.probe import ProbeResult
from homelab.health.sweep import SweepReport, sweep
from homelab.history import (
    EndpointChange,
    NodeDown,
    SweepChanges,
    compare_with_previous,
    down_node,
    open_history,
)
from homelab.inventory import Inventory
from tasks.options import task_options

__all__ = [
    "ARTIFACT_KEY",
    "emit_sweep_events",
    "probe_cluster",
    "publish_sweep_artifact",
    "record_sweep_history",
    "report_node_health",
]

ARTIFACT_KEY = "health-sweep"

# Columns of the artifact table, in order.
_ARTIFACT_COLUMNS = ("node", "tier", "endpoint", "kind", "state", "reason", "latency_ms", "detail")


class _NodeResults(list[ProbeResult]):
    """A node's results, with a short repr: Prefect logs a Failed state's data with `repr`."""

    def __repr__(self) -> str:
        return f"<{len(self)} probe results>"


@task(name="probe-cluster", **task_options(idempotent=True))
async def probe_cluster(inv: Inventory) -> SweepReport:
    """Probe every endpoint at once: the core sweep, exactly as `homelab sweep` runs it.

    One task for all nodes, not one per node: with a task per node, Prefect's own work for
    50 task runs (in this event loop, and in the server on the other core) ran while the
    probes' clocks were running, and on a busy two-core machine healthy endpoints timed out
    (benchmarks/sweep_bench.py). The per-node verdicts come after, from `report_node_health`.

    The garbage collector is frozen meanwhile: in a process that has imported Prefect, a full
    collection scans a large heap and stalled the event loop for up to 0.28 s during a
    500-endpoint sweep (0.07 s frozen), time every in-flight probe counted as latency.
    """
    gc.freeze()
    try:
        async with open_probe_client() as client:
            return await sweep(inv, client)
    finally:
        gc.unfreeze()


@task(name="report-node-health", task_run_name="node-{node}", **task_options(idempotent=False))
async def report_node_health(node: str, results: list[ProbeResult]) -> State[list[ProbeResult]]:
    """One node's verdict in the UI: Failed, with every endpoint's reason, when none answered.

    Args:
        node: the node's name (also the task run's name).
        results: the node's results from the sweep.

    Returns:
        Completed with the results and how many serve, or Failed with the results as data
        and a message naming each endpoint's failure.
    """
    results = _NodeResults(results)
    down = down_node(results)
    if down is not None:
        return Failed(message=down.summary, data=results)
    return Completed(message=f"{sum(r.serving for r in results)} of {len(results)} endpoints serve", data=results)


@task(name="record-sweep-history", **task_options(idempotent=False))
def record_sweep_history(url: str, base_dir: str, report: SweepReport) -> SweepChanges:
    """Store the sweep (one transaction) and compare it with the sweep before it.

    Args:
        url: the inventory's `history.url`.
        base_dir: directory a relative SQLite path is taken from (the cluster file's).
        report: the sweep to store.
    """
    with open_history(url, relative_to=Path(base_dir)) as history:
        previous = history.latest_states()
        sweep_id = history.record_sweep(report)
    return compare_with_previous(sweep_id, previous, report)


def _endpoint_event(change: EndpointChange, sweep_id: int) -> None:
    result = change.result
    emit_event(
        event="homelab.endpoint.down" if change.went_down else "homelab.endpoint.recovered",
        resource={
            "prefect.resource.id": f"homelab.endpoint.{result.node}.{result.endpoint}",
            "prefect.resource.name": f"{result.node}/{result.endpoint}",
            "homelab.node": result.node,
            "homelab.tier": result.tier,
            "homelab.endpoint": result.endpoint,
        },
        payload={
            "sweep_id": sweep_id,
            "state": result.state.value,
            "previous": change.previous.value if change.previous else None,
            "reason": result.reason.value,
            "detail": result.detail,
            "url": result.url,
            "latency_ms": result.latency_ms,
        },
    )


def _node_down_event(down: NodeDown, sweep_id: int, notify: Notify | None) -> None:
    mark = alert_mark(notify, AlertKind.NODE_DOWN, down.tier, down.results[0].checked_at, first=down.new)
    emit_event(
        event="homelab.node.down",
        resource={
            "prefect.resource.id": f"homelab.node.{down.node}",
            "prefect.resource.name": down.node,
            "homelab.node": down.node,
            "homelab.tier": down.tier,
            ALERT_LABEL: mark.value,
        },
        payload={
            "sweep_id": sweep_id,
            "new": down.new,
            "summary": down.summary,
            "endpoints": [{"endpoint": r.endpoint, "reason": r.reason.value, "detail": r.detail} for r in down.results],
        },
    )


@task(name="emit-sweep-events", **task_options(idempotent=False))
def emit_sweep_events(changes: SweepChanges, notify: Notify | None = None) -> int:
    """Emit `homelab.endpoint.down` / `.recovered` per change and `homelab.node.down` per down node.

    `homelab.node.down` is emitted on every sweep while the node stays down (payload `new`
    says whether it is the first), so a recovery trigger can retry; its resource carries
    the node's name in `homelab.node` for the deployment's parameters, and in `homelab.alert`
    whether the alert automations send a message for it (`homelab.alerts.alert_mark`).

    Returns:
        how many events were emitted.
    """
    for change in changes.endpoints:
        _endpoint_event(change, changes.sweep_id)
    for down in changes.nodes_down:
        _node_down_event(down, changes.sweep_id, notify)
    return len(changes.endpoints) + len(changes.nodes_down)


def _artifact_description(report: SweepReport, sweep_id: int) -> str:
    tiers = ", ".join(f"{t.name} {t.state} ({t.up} up, {t.slow} slow, {t.down} down)" for t in report.tiers)
    lines = [
        (
            f"**{report.cluster.prognosis}**: sweep {sweep_id}, {len(report.endpoints)} endpoints "
            f"in {report.duration_ms:.0f} ms"
        ),
        "",
        f"Tiers: {tiers}",
        "",
        *(f"- {reason}" for reason in report.cluster.reasons),
    ]
    return "\n".join(lines).rstrip()


@task(name="publish-sweep-artifact", **task_options(idempotent=False))
async def publish_sweep_artifact(report: SweepReport, sweep_id: int) -> UUID:
    """A table artifact (key `health-sweep`): one row per endpoint, the prognosis above it."""
    rows = [r.model_dump(mode="json", include=set(_ARTIFACT_COLUMNS)) for r in report.endpoints]
    table = [{column: row[column] for column in _ARTIFACT_COLUMNS} for row in rows]
    return await acreate_table_artifact(
        table=table, key=ARTIFACT_KEY, description=_artifact_description(report, sweep_id)
    )
