"""The `daily-report` flow: keep the history tidy (incidents, roll-ups, retention), then report.

Maintenance runs first so the report reads roll-ups rather than millions of raw rows, and
raw rows past retention go only after their hours are rolled up (nothing is lost).
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow

from flows.quoting import quoted
from homelab.inventory import load_inventory
from homelab.reports import HealthReport
from tasks.reports import build_health_report, maintain_history, publish_health_report, write_report_html

__all__ = ["daily_report"]


@flow(
    name="daily-report",
    description="Roll up the history, then publish the health and VRAM report.",
    persist_result=False,
)
async def daily_report(
    inventory: str = "cluster.yaml", since: str = "1d", raw_days: float = 30.0, html: str | None = None
) -> HealthReport:
    """Report the last `since` of the cluster described by `inventory`.

    Args:
        inventory: the cluster file, read at run time.
        since: the period, e.g. `1d` or `7d`.
        raw_days: days raw probe rows are kept (hourly roll-ups are kept for good).
        html: also write the standalone HTML report there (relative to the working directory).
    """
    path = Path(inventory)
    inv = load_inventory(path)
    base_dir = str(path.resolve().parent)
    maintain_history(inv.history.url, base_dir, raw_days)
    report = build_health_report(quoted(inv), base_dir, since)
    await publish_health_report(quoted(report))
    if html:
        write_report_html(quoted(report), html)
    return report
