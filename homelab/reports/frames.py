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

from homelab.history import LATENCY_EDGES_MS

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
    return frame


def uptime(hours: pd.DataFrame, level: str) -> pd.DataFrame:
    """Uptime over the period per `endpoint` (node, endpoint, tier), `node` (node, tier) or `tier`."""
    keys = {"endpoint": ["node", "endpoint", "tier"], "node": ["node", "tier"], "tier": ["tier"]}[level]
    if hours.empty:
        return pd.DataFrame(columns=[*keys, *_UPTIME_COLUMNS, "uptime_pct"])
    grouped = hours.groupby(keys, as_index=False)[_UPTIME_COLUMNS].sum()
    if level == "endpoint":
        latency = hours.groupby(keys, as_index=False)[["latency_sum_ms"]].sum()
        grouped = grouped.merge(latency, on=keys)
        grouped["latency_mean_ms"] = grouped.pop("latency_sum_ms") / grouped["probes"]
    return _with_uptime(grouped).sort_values(keys, ignore_index=True)


def uptime_by_day(hours: pd.DataFrame, level: str) -> pd.DataFrame:
    """Uptime per UTC day and `node` or `tier` (endpoints per day are in the CSV only: too many rows)."""
    keys = {"endpoint": ["node", "endpoint"], "node": ["node"], "tier": ["tier"]}[level]
    if hours.empty:
        return pd.DataFrame(columns=["day", *keys, *_UPTIME_COLUMNS, "uptime_pct"])
    frame = hours.assign(day=hours["hour"].dt.floor("D"))
    grouped = frame.groupby(["day", *keys], as_index=False)[_UPTIME_COLUMNS].sum()
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


def latency_percentiles(histogram: pd.DataFrame) -> pd.DataFrame:
    """p50, p95, p99 (ms) per endpoint from the period's latency histogram."""
    columns = ["node", "endpoint", "probes", "p50_ms", "p95_ms", "p99_ms"]
    if histogram.empty:
        return pd.DataFrame(columns=columns)
    width = len(LATENCY_EDGES_MS) + 1
    rows = []
    for (node, endpoint), group in histogram.groupby(["node", "endpoint"]):
        counts = np.zeros(width)
        np.add.at(counts, group["bucket"].to_numpy(dtype=int), group["probes"].to_numpy(dtype=float))
        quantiles = [round(_quantile(counts, q), 1) for q in (0.5, 0.95, 0.99)]
        rows.append([node, endpoint, int(counts.sum()), *quantiles])
    return pd.DataFrame(rows, columns=columns)


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
    steps = actions.assign(step=actions["action"] + ": " + actions["outcome"])
    joined = steps.groupby("incident_id")["step"].agg("; ".join) if not steps.empty else pd.Series(dtype=str)
    frame["actions"] = frame["id"].map(joined).fillna("")
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
    """Per GPU over the period: mean and peak use, total, headroom (GiB), mean utilisation, plan."""
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


def uptime_timeline(hours: pd.DataFrame) -> pd.DataFrame:
    """Hour x tier of uptime percent: the uptime chart's data."""
    if hours.empty:
        return pd.DataFrame()
    grouped = hours.groupby(["hour", "tier"], as_index=False)[_UPTIME_COLUMNS].sum()
    return _with_uptime(grouped).pivot(index="hour", columns="tier", values="uptime_pct")
