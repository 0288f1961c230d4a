"""The `health-sweep` flow: probe every endpoint at once, judge each node, record, tell the UI and triggers.

Failure semantics: a node whose endpoints are all DOWN ends its own `node-<name>` task run
Failed with the reason, and a `homelab.node.down` event goes out; the flow still records every
result and finishes Completed. The flow run stands for "the sweep was taken and stored", not
for "the cluster is fine": the cluster's state is in the node task runs, the artifact, the
events and the history. An automation on flow-run failure then means one thing only, that the
monitoring itself is broken (invalid cluster file, history database unreachable), which does
end the flow Failed.

Order: the probes run first, all together in one task (the core sweep), and the per-node task
runs come after, so Prefect's bookkeeping never competes with probes whose timeouts are running.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from pathlib import Path
from typing import cast

from prefect import flow
from prefect.client.schemas.objects import State

from flows.quoting import quoted
from homelab.health.probe import ProbeResult
from homelab.health.sweep import SweepReport
from homelab.inventory import load_inventory
from tasks.health import (
    emit_sweep_events,
    probe_cluster,
    publish_sweep_artifact,
    record_sweep_history,
    report_node_health,
)

__all__ = ["health_sweep"]


@flow(
    name="health-sweep",
    description="Probe every endpoint of the cluster, record the sweep, emit down/recovered events.",
    persist_result=False,
)
async def health_sweep(inventory: str = "cluster.yaml") -> SweepReport:
    """Sweep the cluster described by the cluster file at `inventory`.

    Big arguments are wrapped in `quoted`: otherwise Prefect walks every field of every task
    argument looking for upstream futures, which for a 500-endpoint inventory cost more CPU
    than the probes themselves.

    Args:
        inventory: path of the cluster file, read at run time so a changed file needs no
            redeploy; a relative SQLite `history.url` is taken relative to its directory.

    Returns:
        The sweep's report (also stored in the history; the artifact names its id).
    """
    path = Path(inventory)
    inv = load_inventory(path)
    report = await probe_cluster(quoted(inv))
    by_node: dict[str, list[ProbeResult]] = {node.name: [] for node in inv.nodes}
    for result in report.endpoints:
        by_node[result.node].append(result)
    # return_state: a Failed node is a finding to show, not an exception to stop the flow. Prefect
    # types such a call of an async task as the State; in a running loop it is a coroutine of one.
    verdicts = (
        cast("Awaitable[State[list[ProbeResult]]]", report_node_health(node, quoted(results), return_state=True))
        for node, results in by_node.items()
    )
    await asyncio.gather(*verdicts)
    changes = record_sweep_history(inv.history.url, str(path.resolve().parent), quoted(report))
    emit_sweep_events(quoted(changes), inv.notify)
    await publish_sweep_artifact(quoted(report), changes.sweep_id)
    return report
