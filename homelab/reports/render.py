"""Render a `HealthReport`: markdown (Prefect artifact), standalone HTML, CSV files, JSON.

Charts are embedded as base64 PNG data URIs in markdown and HTML, so one file or one
artifact is the whole report: nothing to host, nothing that goes stale beside it. The CSV
directory gets one file per table plus `endpoint_daily.csv` and the two chart PNGs.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import pandas as pd

from homelab.errors import ReportError
from homelab.reports.build import TABLE_NAMES, HealthReport
from homelab.reports.charts import data_uri, line_chart_png

__all__ = ["TITLES", "cell_text", "charts", "to_html", "to_json", "to_markdown", "write_csv"]

TITLES = {
    "uptime_tier": "Uptime per tier",
    "uptime_node": "Uptime per node",
    "uptime_endpoint": "Uptime and latency per endpoint",
    "uptime_tier_daily": "Uptime per tier and day",
    "uptime_node_daily": "Uptime per node and day",
    "latency": "Latency percentiles per endpoint (ms)",
    "incidents": "Incidents",
    "flapping": "Flapping endpoints",
    "gpus": "VRAM per GPU (GiB)",
    "models": "VRAM per loaded model (GiB)",
}
# Tables longer than this are cut in markdown/HTML (the CSV has every row).
_MAX_ROWS = 200


def charts(report: HealthReport) -> dict[str, bytes]:
    """The report's charts as PNG bytes, by file stem."""
    return {
        "uptime": line_chart_png(report.uptime_timeline, "Uptime per tier (hourly)", "% of probes not DOWN"),
        "vram": line_chart_png(report.vram_timeline, "Peak VRAM per GPU (hourly)", "GiB"),
    }


def _header(report: HealthReport) -> str:
    period = report.period
    return f"{period.start:%Y-%m-%d %H:%M} to {period.end:%Y-%m-%d %H:%M} UTC ({period.days:.1f} days)"


def _cut(frame: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    if len(frame) <= _MAX_ROWS:
        return frame, ""
    return frame.head(_MAX_ROWS), f"first {_MAX_ROWS} of {len(frame)} rows; the CSV has all"


def cell_text(value: object) -> str:
    """A table cell as text: missing values blank, floats to two decimals."""
    if value is None or (isinstance(value, float) and pd.isna(value)) or value is pd.NaT:
        return ""
    return f"{value:.2f}" if isinstance(value, float) else str(value)


def _markdown_table(frame: pd.DataFrame) -> str:
    if frame.empty:
        return "_no rows_"
    shown = frame
    lines = ["| " + " | ".join(shown.columns) + " |", "|" + "---|" * len(shown.columns)]
    lines += [
        "| " + " | ".join(cell_text(v).replace("|", "\\|") for v in row) + " |" for row in shown.itertuples(index=False)
    ]
    return "\n".join(lines)


def to_markdown(report: HealthReport, with_charts: bool = True) -> str:
    """The whole report as markdown; charts inline as data URIs when `with_charts`."""
    parts = [f"# Cluster health report\n\n{_header(report)}"]
    parts += [f"> {note}" for note in report.notes]
    if with_charts:
        parts += [f"![{name}]({data_uri(png)})" for name, png in charts(report).items()]
    for name in TABLE_NAMES:
        frame, cut = _cut(report.tables[name])
        parts.append(f"## {TITLES[name]}\n\n{_markdown_table(frame)}" + (f"\n\n_{cut}_" if cut else ""))
    return "\n\n".join(parts) + "\n"


_CSS = (
    "body{font-family:sans-serif;margin:2em;max-width:80em}table{border-collapse:collapse;font-size:90%}"
    "td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}th{background:#eee}"
    ".note{background:#fff3cd;padding:4px 8px}"
)


def to_html(report: HealthReport) -> str:
    """A standalone HTML page (inline CSS and images): open it anywhere, mail it, archive it."""
    body = [f"<h1>Cluster health report</h1><p>{html.escape(_header(report))}</p>"]
    body += [f'<p class="note">{html.escape(note)}</p>' for note in report.notes]
    body += [f'<img alt="{name}" src="{data_uri(png)}">' for name, png in charts(report).items()]
    for name in TABLE_NAMES:
        frame, cut = _cut(report.tables[name])
        table = frame.to_html(index=False, na_rep="", border=0) if not frame.empty else "<p><em>no rows</em></p>"
        body.append(f"<h2>{html.escape(TITLES[name])}</h2>{table}" + (f"<p><em>{cut}</em></p>" if cut else ""))
    return (
        '<!DOCTYPE html><html><head><meta charset="utf-8"><title>Cluster health report</title>'
        f"<style>{_CSS}</style></head><body>{''.join(body)}</body></html>\n"
    )


def write_csv(report: HealthReport, directory: Path) -> list[Path]:
    """One CSV per table (every row), `endpoint_daily.csv`, and the chart PNGs; returns the files.

    Raises:
        ReportError: the directory cannot be created or written.
    """
    written: list[Path] = []
    try:
        directory.mkdir(parents=True, exist_ok=True)
        for name in TABLE_NAMES:
            written.append(directory / f"{name}.csv")
            report.tables[name].to_csv(written[-1], index=False)
        written.append(directory / "endpoint_daily.csv")
        report.endpoint_daily.to_csv(written[-1], index=False)
        for name, png in charts(report).items():
            written.append(directory / f"{name}.png")
            written[-1].write_bytes(png)
    except OSError as exc:
        raise ReportError(f"cannot write the report's CSV files to {directory}: {exc.strerror or exc}") from exc
    return written


def to_json(report: HealthReport) -> dict[str, Any]:
    """The report as JSON-ready data: period, notes, and each table as a list of records."""
    tables = {
        name: json.loads(report.tables[name].to_json(orient="records", date_format="iso")) for name in TABLE_NAMES
    }
    period = {"start": report.period.start.isoformat(), "end": report.period.end.isoformat()}
    return {"period": period, "notes": report.notes, "tables": tables}
