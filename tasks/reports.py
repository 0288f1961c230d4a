"""Prefect tasks of the daily report: refresh the history's roll-ups, build the report, publish it.

The report lands in the Prefect UI as a markdown artifact (`health-report`) with the charts
inline as base64 PNG data URIs, plus one table artifact per headline table; the same report
can be written as a standalone HTML file and CSV files next to the cluster file.

Building the report only reads, and writing the HTML file again writes the same file, so those
two retry (`tasks.options`); maintenance rewrites the history and the artifacts go out once, so
those do not.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID

from prefect import task
from prefect.artifacts import acreate_markdown_artifact, acreate_table_artifact

from homelab.history import RetentionPolicy, open_history
from homelab.inventory import Inventory
from homelab.reports import TITLES, HealthReport, build_report, open_report_history, parse_since, to_html, to_markdown
from tasks.options import task_options

__all__ = ["ARTIFACT_KEY", "build_health_report", "maintain_history", "publish_health_report", "write_report_html"]

ARTIFACT_KEY = "health-report"
# Tables that also get their own table artifact (short enough to read in the UI).
_TABLE_ARTIFACTS = ("uptime_tier", "uptime_node", "incidents", "flapping", "gpus")


@task(name="maintain-history", **task_options(idempotent=False))
def maintain_history(url: str, base_dir: str, raw_days: float) -> dict[str, int]:
    """Derive incidents, roll up complete hours, then delete raw rows past retention."""
    now = datetime.now(UTC)
    with open_history(url, relative_to=Path(base_dir)) as history:
        incidents = history.track_incidents()
        hours = history.roll_up(now)
        pruned = history.prune(now, RetentionPolicy(raw_days=raw_days))
    return {"incidents_opened": incidents, "hours_rolled_up": hours, "sweeps_pruned": pruned}


@task(name="build-health-report", **task_options(idempotent=True))
def build_health_report(inv: Inventory, base_dir: str, since: str) -> HealthReport:
    """The report of the last `since` (e.g. `1d`) from the history of `inv`."""
    with open_report_history(inv.history.url, relative_to=Path(base_dir)) as history:
        return build_report(history, parse_since(since), inv)


@task(name="publish-health-report", **task_options(idempotent=False))
async def publish_health_report(report: HealthReport) -> UUID:
    """The markdown artifact (charts inline) and a table artifact per headline table."""
    for name in _TABLE_ARTIFACTS:
        frame = report.tables[name]
        rows = frame.astype(object).where(frame.notna(), None).astype(str).to_dict("records")
        await acreate_table_artifact(
            table=rows, key=f"{ARTIFACT_KEY}-{name.replace('_', '-')}", description=TITLES[name]
        )
    return await acreate_markdown_artifact(markdown=to_markdown(report), key=ARTIFACT_KEY, description="health report")


@task(name="write-report-html", **task_options(idempotent=True))
def write_report_html(report: HealthReport, path: str) -> str:
    """The standalone HTML report at `path`; returns the path written."""
    Path(path).write_text(to_html(report))
    return path
