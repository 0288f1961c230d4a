"""Reports of historical health and VRAM use: pandas DataFrames first, renderings second.

    period.py   the period a report covers (`--since 7d`), and `ReportError`
    queries.py  SQL aggregates (GROUP BY hour, roll-ups plus the raw tail) as DataFrames
    frames.py   the report tables: uptime, latency percentiles, incidents, flapping, VRAM
    build.py    `build_report`: every table of a period in one `HealthReport`
    charts.py   matplotlib (Agg) PNG charts
    render.py   markdown (Prefect artifact), standalone HTML, CSV, JSON

Nothing here imports Prefect; `tasks/reports.py` publishes the artifacts.
"""

from homelab.reports.build import (
    TABLE_NAMES,
    HealthReport,
    build_report,
    open_report_history,
)
from homelab.reports.period import Period, parse_since
from homelab.reports.render import (
    TITLES,
    cell_text,
    charts,
    to_html,
    to_json,
    to_markdown,
    write_csv,
)

__all__ = [
    "TABLE_NAMES",
    "TITLES",
    "HealthReport",
    "Period",
    "build_report",
    "cell_text",
    "charts",
    "open_report_history",
    "parse_since",
    "to_html",
    "to_json",
    "to_markdown",
    "write_csv",
]
