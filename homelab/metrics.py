"""Prometheus metrics from the history: the latest sweep, each node's latest VRAM round, incidents.

`HistoryCollector` is a prometheus_client collector that reads the history on every scrape, so
what Prometheus sees is what the history holds at that moment (no registry of values to go
stale between sweeps). `metric_families` turns one reading into metric families; serving
them over HTTP is the application's part (`homelab metrics`).

Every name starts with `homelab_`. States are exported twice: one-hot (`..._state{state="UP"} 1`,
the other states 0: a Grafana table or an alert on one state) and as a number
(`..._severity`: 0 good, 1 degraded, 2 down: a stat panel with value mappings).

Label cardinality is bounded. Node, tier and endpoint names are the cluster file's (its schema:
lower-case names of at most 63 characters, one series set per endpoint), states and outcomes
are fixed vocabularies. Model and GPU names come from the servers and nvidia-smi, so a node
exports at most `MAX_MODELS_PER_NODE` models (the largest first), a label value longer than
`MAX_LABEL_CHARS` drops its series, and a family holds at most `MAX_SERIES_PER_FAMILY`
series; what is left out is counted in `homelab_series_left_out{metric}`.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from enum import StrEnum

from prometheus_client.core import GaugeMetricFamily, Metric, SummaryMetricFamily
from prometheus_client.registry import Collector

from homelab.errors import HistoryError
from homelab.health.probe import EndpointState
from homelab.health.sweep import Prognosis, TierState, classify_tier
from homelab.history import HistoryStore
from homelab.metrics_history import HistorySnapshot, read_snapshot, refresh_incidents
from homelab.vram.gpu_facts import VramSource

__all__ = [
    "MAX_LABEL_CHARS",
    "MAX_MODELS_PER_NODE",
    "MAX_SERIES_PER_FAMILY",
    "METRIC_NAMES",
    "HistoryCollector",
    "metric_families",
]

log = logging.getLogger(__name__)

MAX_LABEL_CHARS = 200
MAX_MODELS_PER_NODE = 64
MAX_SERIES_PER_FAMILY = 10_000

_ENDPOINT = ["node", "tier", "endpoint", "kind"]
_GPU = ["node", "gpu", "gpu_name"]
# name -> (type, help, labels): the families every scrape serves, samples or not.
_FAMILIES: dict[str, tuple[str, str, list[str]]] = {
    "homelab_history_up": ("gauge", "1 when this scrape could read the history database, else 0.", []),
    "homelab_last_sweep_timestamp_seconds": ("gauge", "When the latest sweep started (Unix time).", []),
    "homelab_last_sweep_duration_seconds": ("gauge", "How long the latest sweep took.", []),
    "homelab_cluster_prognosis": (
        "gauge", "1 for the latest sweep's cluster prognosis (OPERATIONAL, DEGRADED, CRITICAL), 0 for the others.",
        ["prognosis"],
    ),
    "homelab_cluster_severity": ("gauge", "The latest prognosis: 0 OPERATIONAL, 1 DEGRADED, 2 CRITICAL.", []),
    "homelab_tier_state": (
        "gauge", "1 for the tier's state in the latest sweep (HEALTHY, DEGRADED, DOWN), 0 for the others.",
        ["tier", "state"],
    ),
    "homelab_tier_severity": ("gauge", "The tier's state: 0 HEALTHY, 1 DEGRADED (some serve), 2 DOWN.", ["tier"]),
    "homelab_tier_endpoints": ("gauge", "The tier's endpoints in each state in the latest sweep.", ["tier", "state"]),
    "homelab_endpoint_state": (
        "gauge", "1 for the endpoint's state in the latest sweep (UP, SLOW, DOWN), 0 for the others.",
        [*_ENDPOINT, "state"],
    ),
    "homelab_endpoint_severity": (
        "gauge", "The endpoint's state in the latest sweep: 0 UP, 1 SLOW (late or loading), 2 DOWN.", _ENDPOINT
    ),
    "homelab_endpoint_latency_seconds": (
        "gauge", "How long the endpoint's probe took in the latest sweep (a DOWN one: until it failed).", _ENDPOINT
    ),
    "homelab_gpu_vram_used_bytes": ("gauge", "VRAM in use on the GPU (nvidia-smi, latest round).", _GPU),
    "homelab_gpu_vram_total_bytes": ("gauge", "The GPU's VRAM (nvidia-smi, latest round).", _GPU),
    "homelab_gpu_utilization_ratio": ("gauge", "The GPU's utilisation, 0 to 1 (nvidia-smi, latest round).", _GPU),
    "homelab_model_vram_bytes": (
        "gauge", "VRAM a loaded model holds, by its server's account (Ollama /api/ps), latest round.",
        ["node", "model", "source"],
    ),
    "homelab_vram_sample_timestamp_seconds": (
        "gauge", "When the node's latest VRAM round of this source was taken (Unix time).", ["node", "source"]
    ),
    "homelab_incidents": (
        "gauge",
        "Incidents in the history. scope=endpoint: DOWN until serving again, outcome OPEN or RECOVERED; "
        "scope=node: recovery runs, outcome RECOVERED, FLAP or FAILED.",
        ["node", "scope", "outcome"],
    ),
    "homelab_incident_recovery_seconds": (
        "summary", "Time from an incident's start to the endpoint or node serving again, over RECOVERED incidents.",
        ["node", "scope"],
    ),
    "homelab_series_left_out": (
        "gauge", "Series this scrape left out to bound label cardinality (see homelab.metrics).", ["metric"]
    ),
}  # fmt: skip
METRIC_NAMES: frozenset[str] = frozenset(_FAMILIES)


class _Families:
    """The families of one scrape; `admit` keeps each within the cardinality bounds."""

    def __init__(self) -> None:
        self.gauges = {n: GaugeMetricFamily(n, t, labels=ls) for n, (k, t, ls) in _FAMILIES.items() if k == "gauge"}
        self.summaries = {
            n: SummaryMetricFamily(n, t, labels=ls) for n, (k, t, ls) in _FAMILIES.items() if k == "summary"
        }
        self._seen: dict[str, set[tuple[str, ...]]] = {name: set() for name in _FAMILIES}
        self.left_out: Counter[str] = Counter()

    def admit(self, name: str, labels: Sequence[str]) -> list[str] | None:
        """The labels of a new series of `name`, or None when it is a duplicate or past a bound."""
        key, seen = tuple(labels), self._seen[name]
        if key in seen:  # a duplicate series would make the whole scrape invalid
            return None
        if len(seen) >= MAX_SERIES_PER_FAMILY or any(len(v) > MAX_LABEL_CHARS for v in key):
            self.left_out[name] += 1
            return None
        seen.add(key)
        return list(key)

    def add(self, name: str, labels: Sequence[str], value: float) -> None:
        if (admitted := self.admit(name, labels)) is not None:
            self.gauges[name].add_metric(admitted, value)

    def add_summary(self, name: str, labels: Sequence[str], count: int, total: float) -> None:
        if (admitted := self.admit(name, labels)) is not None:
            self.summaries[name].add_metric(admitted, count, total)

    def all(self) -> list[Metric]:
        """Every family, in the order `_FAMILIES` lists them."""
        families: dict[str, Metric] = {**self.gauges, **self.summaries}
        return [families[name] for name in _FAMILIES]

    def one_hot(self, name: str, labels: Sequence[str], states: Iterable[StrEnum], now: StrEnum) -> None:
        for state in states:
            self.add(name, [*labels, state.value], 1.0 if state == now else 0.0)


def _severity(state: StrEnum) -> int:
    """A state's place in its enum, which lists the good state first and the worst last (UP, SLOW, DOWN)."""
    return list(type(state)).index(state)


def metric_families(snapshot: HistorySnapshot | None) -> list[Metric]:
    """Every family `METRIC_NAMES` lists, with samples from `snapshot` (None: the history could not be read)."""
    out = _Families()
    out.add("homelab_history_up", [], 0.0 if snapshot is None else 1.0)
    if snapshot is not None:
        _sweep(out, snapshot)
        _vram(out, snapshot)
        for group in snapshot.incidents:
            out.add("homelab_incidents", [group.node, group.scope, group.outcome], group.count)
            if group.outcome == "RECOVERED":
                out.add_summary(
                    "homelab_incident_recovery_seconds", [group.node, group.scope], group.count, group.recovered_s
                )
    for name, count in sorted(out.left_out.items()):
        out.add("homelab_series_left_out", [name], count)
    return out.all()


def _sweep(out: _Families, snapshot: HistorySnapshot) -> None:
    sweep = snapshot.sweep
    if sweep is None:
        return
    out.add("homelab_last_sweep_timestamp_seconds", [], sweep.started_at.timestamp())
    out.add("homelab_last_sweep_duration_seconds", [], sweep.duration_ms / 1000)
    out.one_hot("homelab_cluster_prognosis", [], Prognosis, sweep.prognosis)
    out.add("homelab_cluster_severity", [], _severity(sweep.prognosis))
    for r in snapshot.results:
        labels = [r.node, r.tier, r.endpoint, r.kind.value]
        out.one_hot("homelab_endpoint_state", labels, EndpointState, r.state)
        out.add("homelab_endpoint_severity", labels, _severity(r.state))
        out.add("homelab_endpoint_latency_seconds", labels, r.latency_ms / 1000)
    for tier in dict.fromkeys(r.tier for r in snapshot.results):
        health = classify_tier(tier, [r for r in snapshot.results if r.tier == tier])
        out.one_hot("homelab_tier_state", [tier], TierState, health.state)
        out.add("homelab_tier_severity", [tier], _severity(health.state))
        counts = {EndpointState.UP: health.up, EndpointState.SLOW: health.slow, EndpointState.DOWN: health.down}
        for state, count in counts.items():
            out.add("homelab_tier_endpoints", [tier, state.value], count)


def _vram(out: _Families, snapshot: HistorySnapshot) -> None:
    models: Counter[str] = Counter()
    for s in sorted(snapshot.vram, key=lambda s: -(s.used_bytes or 0)):  # a node's largest models first
        out.add("homelab_vram_sample_timestamp_seconds", [s.node, s.source.value], s.sampled_at.timestamp())
        if s.source is VramSource.NVIDIA_SMI and s.gpu_index is not None:
            labels = [s.node, str(s.gpu_index), s.gpu_name]
            for name, value in (
                ("homelab_gpu_vram_used_bytes", s.used_bytes),
                ("homelab_gpu_vram_total_bytes", s.total_bytes),
                ("homelab_gpu_utilization_ratio", None if s.utilization_pct is None else s.utilization_pct / 100),
            ):
                if value is not None:  # "[N/A]" from nvidia-smi: no sample rather than a made-up 0
                    out.add(name, labels, value)
        elif s.model is not None and s.used_bytes is not None:
            models[s.node] += 1
            if models[s.node] > MAX_MODELS_PER_NODE:
                out.left_out["homelab_model_vram_bytes"] += 1
                continue
            out.add("homelab_model_vram_bytes", [s.node, s.model, s.source.value], s.used_bytes)


class HistoryCollector(Collector):
    """Reads the history on each scrape (`collect`); register it on a `CollectorRegistry(auto_describe=False)`.

    The history is opened at the first scrape, not before: an exporter started before the
    database is reachable serves `homelab_history_up 0` (the reason logged) until it is, then
    the data. A read that fails drops the connection pool, so the next scrape opens afresh.
    Scrapes are served one at a time (the server's threads share one store).
    """

    def __init__(self, open_store: Callable[[], HistoryStore], vram_max_age_s: float) -> None:
        self._open_store = open_store
        self._vram_max_age_s = vram_max_age_s
        self._store: HistoryStore | None = None
        self._lock = threading.Lock()
        self.history_up = False  # whether the latest scrape could read the history

    def collect(self) -> Iterator[Metric]:
        """One scrape: read the history, yield every family."""
        with self._lock:
            snapshot = self._read()
            self.history_up = snapshot is not None
        yield from metric_families(snapshot)

    def _read(self) -> HistorySnapshot | None:
        try:
            if self._store is None:
                self._store = self._open_store()
            refresh_incidents(self._store)
            return read_snapshot(self._store, datetime.now(UTC), self._vram_max_age_s)
        except HistoryError as exc:
            log.warning("metrics: serving homelab_history_up 0: %s", exc)
            self.close()
            return None

    def close(self) -> None:
        """Close the store's connections (a later scrape opens it again)."""
        if self._store is not None:
            self._store.close()
            self._store = None
