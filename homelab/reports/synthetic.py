"""A synthetic history for demos, the report notebook's test and the scale benchmark.

Why in the package: the notebook test, `benchmarks/report_bench.py` and a user trying
`homelab report` without a cluster all need a believable month of sweeps: endpoints over
nodes and tiers, some slow answers, outages that recover (a few endpoints flap), GPUs whose
use follows a daily cycle, and loaded models. Rows go in through the DBAPI in bulk
(executemany on SQLite, COPY on PostgreSQL): 8.6 million rows through the ORM would take
an hour.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict

from homelab.history import HistoryStore

__all__ = ["SyntheticHistory", "write_synthetic_history"]

_TIERS = ("primary", "secondary", "nas")
_MIB = 1024 * 1024
_PROBE_COLUMNS = (
    "id",
    "sweep_id",
    "node",
    "tier",
    "endpoint",
    "kind",
    "url",
    "state",
    "reason",
    "detail",
    "latency_ms",
    "checked_at",
)
_VRAM_COLUMNS = (
    "sampled_at",
    "node",
    "source",
    "gpu_index",
    "gpu_name",
    "model",
    "used_bytes",
    "total_bytes",
    "utilization_pct",
)


class SyntheticHistory(BaseModel):
    """Shape of the generated history: `endpoints` spread 10 to a node over three tiers."""

    model_config = ConfigDict(frozen=True)

    start: datetime
    days: float = 7.0
    endpoints: int = 20
    interval_s: int = 60
    gpus: int = 6
    flapping: int = 2
    seed: int = 9


def _ts(moment: datetime, dialect: str) -> Any:
    """SQLite stores `_UTCDateTime` as this text; PostgreSQL takes the aware datetime."""
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f") if dialect == "sqlite" else moment


def _states(rng: np.random.Generator, spec: SyntheticHistory, sweep: int) -> np.ndarray:
    """0 UP, 1 SLOW, 2 DOWN per endpoint: rare random faults, and flapping endpoints down
    for 10 minutes every 6 hours."""
    states = np.where(rng.random(spec.endpoints) < 0.01, 1, 0)
    states[rng.random(spec.endpoints) < 0.0005] = 2
    minute = sweep * spec.interval_s // 60
    if minute % 360 < 10:
        states[: spec.flapping] = 2
    return states


def _probe_rows(spec: SyntheticHistory, dialect: str) -> Iterator[tuple[list[Any], list[tuple[Any, ...]]]]:
    """Per sweep: the sweep row and its probe rows."""
    rng = np.random.default_rng(spec.seed)
    names = [(f"node{i // 10:02d}", _TIERS[(i // 10) % 3], f"ep{i:03d}") for i in range(spec.endpoints)]
    state_text = ("UP", "SLOW", "DOWN")
    reason_text = ("ok", "slow", "refused")
    sweeps = int(spec.days * 86400 // spec.interval_s)
    probe_id = 0
    for n in range(sweeps):
        at = spec.start + timedelta(seconds=n * spec.interval_s)
        stamp = _ts(at, dialect)
        states = _states(rng, spec, n)
        latency = np.round(rng.lognormal(3.5, 0.6, spec.endpoints) + states * 1500.0, 1)
        rows = []
        for (node, tier, endpoint), state, ms in zip(names, states.tolist(), latency.tolist(), strict=True):
            probe_id += 1
            rows.append(
                (
                    probe_id,
                    n + 1,
                    node,
                    tier,
                    endpoint,
                    "ollama",
                    f"http://127.0.0.1:9/{endpoint}",
                    state_text[state],
                    reason_text[state],
                    "",
                    ms,
                    stamp,
                )
            )
        prognosis = "OPERATIONAL" if not states.any() else "DEGRADED"
        yield [n + 1, stamp, 40.0, prognosis, "[]"], rows


def _vram_rows(spec: SyntheticHistory, dialect: str) -> Iterator[tuple[Any, ...]]:
    """One nvidia-smi row per GPU per interval, and one Ollama row per model on GPU 0 of each node."""
    total = 24576 * _MIB
    rng = np.random.default_rng(spec.seed + 1)
    for n in range(int(spec.days * 86400 // spec.interval_s)):
        at = spec.start + timedelta(seconds=n * spec.interval_s)
        stamp = _ts(at, dialect)
        daily = 0.5 + 0.4 * np.sin(2 * np.pi * (at.hour / 24))
        for gpu in range(spec.gpus):
            used = int(total * min(0.98, daily * (0.6 + 0.1 * gpu / max(spec.gpus, 1)) + rng.normal(0, 0.02)))
            node = f"node{gpu // 2:02d}"
            yield (stamp, node, "nvidia-smi", gpu % 2, "NVIDIA RTX 4090", None, used, total, float(daily * 80))
            if gpu % 2 == 0:
                yield (stamp, node, "ollama", None, "", f"qwen{gpu}:7b", used // 2, None, None)


def _insert(raw: Any, dialect: str, table: str, columns: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
    cursor = raw.cursor()
    try:
        if dialect == "postgresql":
            with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            marks = ", ".join("?" for _ in columns)
            cursor.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows)
    finally:
        cursor.close()


def write_synthetic_history(store: HistoryStore, spec: SyntheticHistory, batch_sweeps: int = 500) -> int:
    """Write the history of `spec` into an empty store; returns how many probe rows were written."""
    dialect = store.engine.dialect.name
    raw = store.engine.raw_connection()
    written = 0
    try:
        sweeps: list[tuple[Any, ...]] = []
        probes: list[tuple[Any, ...]] = []
        for sweep, rows in _probe_rows(spec, dialect):
            sweeps.append(tuple(sweep))
            probes.extend(rows)
            if len(sweeps) >= batch_sweeps:
                _insert(raw, dialect, "sweeps", ("id", "started_at", "duration_ms", "prognosis", "reasons"), sweeps)
                _insert(raw, dialect, "probe_results", _PROBE_COLUMNS, probes)
                written += len(probes)
                sweeps, probes = [], []
                raw.commit()
        _insert(raw, dialect, "sweeps", ("id", "started_at", "duration_ms", "prognosis", "reasons"), sweeps)
        _insert(raw, dialect, "probe_results", _PROBE_COLUMNS, probes)
        written += len(probes)
        _insert(raw, dialect, "vram_samples", _VRAM_COLUMNS, list(_vram_rows(spec, dialect)))
        raw.commit()
        if dialect == "postgresql":
            _resync_sequences(raw)
    finally:
        raw.close()
    return written


def _resync_sequences(raw: Any) -> None:
    """Ids were given explicitly: move PostgreSQL's sequences past them so later inserts do not collide."""
    cursor = raw.cursor()
    try:
        for table in ("sweeps", "probe_results"):
            cursor.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT MAX(id) FROM {table}))")
        raw.commit()
    finally:
        cursor.close()
