"""Report tables as pandas DataFrames, computed from the aggregates of `homelab.reports.queries`.

Definitions, so that every rendering means the same thing:

- *uptime* is the share of probes that were not DOWN (UP or SLOW): a slow endpoint still
  answers. Node and tier uptime weigh each endpoint by its probes.
- *latency percentiles* come from the hourly latency histogram (`LATENCY_EDGES_MS`),
  interpolated linearly inside the bucket: exact to within one bucket.
- *time to recover* is closed_at - opened_at of a closed incident; an open one has none yet.
- an endpoint is *flapping* when `flap_threshold` or more incidents opened in the period.
- *headroom* is a GPU's total memory minus its peak use in the period.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd

from homelab.history import BUCKET_COLUMNS, LATENCY_EDGES_MS

__all__ = [
    "flapping",
    "gpu_summary",
    "gpu_timeline",
    "incidents_table",
    "latency_percentiles",
    "uptime",
    "uptime_by_day",
    "uptime_timeline",
]

GIB = 1024**3
_UPTIME_COLUMNS = ["probes", "up", "slow", "down"]


def _with_uptime(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.copy()
    frame["uptime_pct"] = 100.0 * (frame["up"] + frame["slow"]) / frame["probes"]
    frame[_UPTIME_COLUMNS] = frame[_UPTIME_COLUMNS].astype(int)
    return frame


def uptime(totals: pd.DataFrame, level: str) -> pd.DataFrame:
    """Uptime over the period per `endpoint` (node, endpoint, tier), `node` (node, tier) or `tier`,
    from `queries.endpoint_totals`."""
    keys = {"endpoint": ["node", "endpoint", "tier"], "node": ["node", "tier"], "tier": ["tier"]}[level]
    if totals.empty:
        return pd.DataFrame(columns=[*keys, *_UPTIME_COLUMNS, "uptime_pct"])
    grouped = totals.groupby(keys, as_index=False)[[*_UPTIME_COLUMNS, "latency_sum_ms"]].sum()
    latency_sum = grouped.pop("latency_sum_ms")
    if level == "endpoint":
        grouped["latency_mean_ms"] = (latency_sum / grouped["probes"]).round(1)
    return _with_uptime(grouped).sort_values(keys, ignore_index=True)


def uptime_by_day(days: pd.DataFrame, level: str) -> pd.DataFrame:
    """Uptime per UTC day and `endpoint`, `node` or `tier`, from `queries.endpoint_days`."""
    keys = {"endpoint": ["node", "endpoint"], "node": ["node"], "tier": ["tier"]}[level]
    if days.empty:
        return pd.DataFrame(columns=["day", *keys, *_UPTIME_COLUMNS, "uptime_pct"])
    grouped = days.groupby(["day", *keys], as_index=False)[_UPTIME_COLUMNS].sum()
    return _with_uptime(grouped).sort_values(["day", *keys], ignore_index=True)


def _quantile(counts: np.ndarray, q: float) -> float:
    """The q-quantile of a histogram over `LATENCY_EDGES_MS`, interpolated inside its bucket."""
    edges = np.array([0.0, *LATENCY_EDGES_MS, LATENCY_EDGES_MS[-1] * 2])
    cumulative = np.cumsum(counts)
    target = q * cumulative[-1]
    bucket = int(np.searchsorted(cumulative, target))
    before = cumulative[bucket - 1] if bucket else 0.0
    share = (target - before) / counts[bucket] if counts[bucket] else 0.0
    return float(edges[bucket] + share * (edges[bucket + 1] - edges[bucket]))


def latency_percentiles(totals: pd.DataFrame) -> pd.DataFrame:
    """p50, p95, p99 (ms) per endpoint from the period's latency histogram columns."""
    columns = ["node", "endpoint", "probes", "p50_ms", "p95_ms", "p99_ms"]
    if totals.empty:
        return pd.DataFrame(columns=columns)
    counts = totals[list(BUCKET_COLUMNS)].to_numpy(dtype=float)
    rows = [
        [node, endpoint, int(row.sum()), *(round(_quantile(row, q), 1) for q in (0.5, 0.95, 0.99))]
        for node, endpoint, row in zip(totals["node"], totals["endpoint"], counts, strict=True)
    ]
    return pd.DataFrame(rows, columns=columns).sort_values(["node", "endpoint"], ignore_index=True)


def incidents_table(incidents: pd.DataFrame, actions: pd.DataFrame, now: datetime) -> pd.DataFrame:
    """One row per incident: start, end, duration (to now while open), time to recover, actions."""
    columns = ["id", "node", "endpoint", "start", "end", "ongoing", "duration_min", "time_to_recover_min", "actions"]
    if incidents.empty:
        return pd.DataFrame(columns=columns)
    frame = incidents.rename(columns={"opened_at": "start", "closed_at": "end"})
    frame["ongoing"] = frame["end"].isna()
    until = frame["end"].fillna(pd.Timestamp(now))
    frame["duration_min"] = ((until - frame["start"]).dt.total_seconds() / 60).round(1)
    frame["time_to_recover_min"] = frame["duration_min"].where(~frame["ongoing"])
    steps: dict[int, str] = {}
    for row in actions.itertuples(index=False):
        step = f"{row.action}: {row.outcome}"
        steps[row.incident_id] = f"{steps[row.incident_id]}; {step}" if row.incident_id in steps else step
    frame["actions"] = [steps.get(int(i), "") for i in frame["id"]]
    frame["endpoint"] = frame["endpoint"].fillna("(node)")
    return frame[columns].sort_values("start", ignore_index=True)


def flapping(incidents: pd.DataFrame, flap_threshold: int = 3) -> pd.DataFrame:
    """Endpoints with at least `flap_threshold` incidents in the period, most first."""
    columns = ["node", "endpoint", "incidents", "mean_duration_min"]
    if incidents.empty:
        return pd.DataFrame(columns=columns)
    grouped = incidents.groupby(["node", "endpoint"], as_index=False).agg(
        incidents=("id", "count"), mean_duration_min=("duration_min", "mean")
    )
    grouped["mean_duration_min"] = grouped["mean_duration_min"].round(1)
    return grouped[grouped["incidents"] >= flap_threshold].sort_values("incidents", ascending=False, ignore_index=True)


def gpu_summary(gpu_hours: pd.DataFrame, planned_gib: dict[tuple[str, int], float] | None = None) -> pd.DataFrame:
    """Per GPU over the period: mean and peak use, total, headroom (GiB), mean utilisation, and
    the VRAM plan's use of it (`planned_gib`), so planned and used sit side by side."""
    columns = ["node", "gpu_index", "gpu_name", "used_mean_gib", "used_peak_gib", "total_gib", "headroom_gib"]
    if gpu_hours.empty:
        return pd.DataFrame(columns=[*columns, "util_mean_pct", "planned_gib"])
    weighted = gpu_hours.assign(used_sum=gpu_hours["used_mean"] * gpu_hours["samples"])
    grouped = weighted.groupby(["node", "gpu_index"], as_index=False).agg(
        gpu_name=("gpu_name", "max"),
        used_sum=("used_sum", "sum"),
        samples=("samples", "sum"),
        used_peak=("used_peak", "max"),
        total=("total", "max"),
        util_mean_pct=("util_mean", "mean"),
    )
    grouped["used_mean_gib"] = grouped["used_sum"] / grouped["samples"] / GIB
    grouped["used_peak_gib"] = grouped["used_peak"] / GIB
    grouped["total_gib"] = grouped["total"] / GIB
    grouped["headroom_gib"] = grouped["total_gib"] - grouped["used_peak_gib"]
    plan = planned_gib or {}
    grouped["planned_gib"] = [plan.get((n, int(i))) for n, i in zip(grouped["node"], grouped["gpu_index"], strict=True)]
    out = grouped[[*columns, "util_mean_pct", "planned_gib"]]
    return out.round({c: 2 for c in columns[3:]} | {"util_mean_pct": 1})


def gpu_timeline(gpu_hours: pd.DataFrame) -> pd.DataFrame:
    """Hour x GPU (`node/gpuN`) of peak use in GiB: the VRAM chart's data."""
    if gpu_hours.empty:
        return pd.DataFrame()
    frame = gpu_hours.assign(gpu=gpu_hours["node"] + "/gpu" + gpu_hours["gpu_index"].astype(str))
    return frame.pivot_table(index="hour", columns="gpu", values="used_peak", aggfunc="max") / GIB


def uptime_timeline(tier_hours: pd.DataFrame) -> pd.DataFrame:
    """Hour x tier of uptime percent (from `queries.tier_hours`): the uptime chart's data."""
    if tier_hours.empty:
        return pd.DataFrame()
    return _with_uptime(tier_hours).pivot(index="hour", columns="tier", values="uptime_pct")
