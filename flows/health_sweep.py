"""The `health-sweep` flow: probe every node at once, record the sweep, tell the UI and triggers.

Failure semantics: a node whose endpoints are all DOWN ends its own `probe-<node>` task run
Failed with the reason, and a `homelab.node.down` event goes out; the flow still probes the
other nodes, records every result and finishes Completed. The flow run stands for "the sweep
was taken and stored", not for "the cluster is fine": the cluster's state is in the task
runs, the artifact, the events and the history, and an automation on flow-run failure then
means one thing only, that the monitoring itself is broken (invalid cluster file, history
database unreachable), which does end the flow Failed.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path

from prefect import flow

from homelab.health import SweepReport, classify_cluster, classify_tier, open_probe_client
from homelab.inventory import Inventory, load_inventory
from homelab.probe import ProbeResult
from tasks.health import emit_sweep_events, probe_node, publish_sweep_artifact, record_sweep_history

__all__ = ["health_sweep"]


async def _probe_all(inv: Inventory) -> SweepReport:
    """One probe task per node, all at once over one client, judged as one sweep."""
    started_at = datetime.now(UTC)
    started = time.perf_counter()
    async with open_probe_client() as client:
        states = await asyncio.gather(
            *(probe_node(inv, node.name, client, return_state=True) for node in inv.nodes)
        )
    # A down node's Failed state carries its results as data; only a crashed task raises here.
    results: list[ProbeResult] = []
    for state in states:
        data = await state.result(raise_on_failure=False)
        if isinstance(data, BaseException):
            raise data
        results.extend(data)
    tiers = [classify_tier(tier, [r for r in results if r.tier == tier]) for tier in inv.tiers()]
    return SweepReport(
        started_at=started_at,
        duration_ms=round((time.perf_counter() - started) * 1000, 1),
        endpoints=results,
        tiers=tiers,
        cluster=classify_cluster(inv, results),
    )


@flow(
    name="health-sweep",
    description="Probe every endpoint of the cluster, record the sweep, emit down/recovered events.",
    persist_result=False,
)
async def health_sweep(inventory: str = "cluster.yaml") -> SweepReport:
    """Sweep the cluster described by the cluster file at `inventory`.

    Args:
        inventory: path of the cluster file, read at run time so a changed file needs no
            redeploy; a relative SQLite `history.url` is taken relative to its directory.

    Returns:
        The sweep's report (also stored in the history, with the id in the artifact).
    """
    path = Path(inventory)
    inv = load_inventory(path)
    report = await _probe_all(inv)
    changes = record_sweep_history(inv.history.url, str(path.resolve().parent), report)
    emit_sweep_events(changes)
    await publish_sweep_artifact(report, changes.sweep_id)
    return report
