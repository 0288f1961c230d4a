"""Incident derivation run by several callers at once, on SQLite and on a real PostgreSQL.

`homelab report`, the daily maintenance and every `homelab metrics` scrape derive incidents
from the sweeps after one bookmark (`history_marks`). Eight callers, each with its own engine
as separate processes would have, are released together by a barrier over a history whose
state changes are known; every incident must be recorded exactly once and no caller may fail.
The first round finds no bookmark row yet, the second finds one.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from homelab.health.probe import EndpointState
from homelab.history import TABLES, HistoryStore, open_history
from tests.test_history import T0, report, result

CALLERS = 8
ENDPOINTS = [(f"node{n}", f"ep{e}") for n in range(3) for e in range(4)]
BARRIER_TIMEOUT_S = 60.0

# (node, endpoint, first_sweep_id, last_sweep_id): an incident as the history keeps it.
Incident = tuple[str, str, int, int | None]


@pytest.fixture(params=["sqlite", "postgresql"])
def history_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty history database: a SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/history.db"
    make: Callable[[str], str] = request.getfixturevalue("postgres_url")
    return make("incident_race")


def _down(k: int, i: int) -> bool:
    """Endpoint k flaps with its own period: DOWN for k + 2 sweeps, then UP for k + 2."""
    return (i // (k + 2)) % 2 == 1


def _record(history: HistoryStore, sweeps: range) -> dict[int, list[bool]]:
    """Store sweeps `sweeps` (minute offsets); returns sweep id -> each endpoint's DOWN-ness."""
    stored = {}
    for i in sweeps:
        at = T0 + timedelta(minutes=i)
        downs = [_down(k, i) for k in range(len(ENDPOINTS))]
        states = [EndpointState.DOWN if d else EndpointState.UP for d in downs]
        results = [result(node, ep, state, at=at) for (node, ep), state in zip(ENDPOINTS, states, strict=True)]
        stored[history.record_sweep(report(results, at=at))] = downs
    return stored


def _expected(stored: dict[int, list[bool]]) -> list[Incident]:
    """The incidents the sweeps imply: one per run of DOWN sweeps, closed by the next UP one."""
    incidents: list[Incident] = []
    for k, (node, endpoint) in enumerate(ENDPOINTS):
        opened: int | None = None
        for sweep_id in sorted(stored):
            if stored[sweep_id][k] and opened is None:
                opened = sweep_id
            elif not stored[sweep_id][k] and opened is not None:
                incidents.append((node, endpoint, opened, sweep_id))
                opened = None
        if opened is not None:
            incidents.append((node, endpoint, opened, None))
    return sorted(incidents, key=repr)


def _recorded(history: HistoryStore) -> list[Incident]:
    table = TABLES["incidents"]
    query = sa.select(table.c.node, table.c.endpoint, table.c.first_sweep_id, table.c.last_sweep_id)
    with history.engine.connect() as conn:
        return sorted((tuple(row) for row in conn.execute(query)), key=repr)


def _derive_at_once(stores: Sequence[HistoryStore]) -> list[int]:
    """Each store derives incidents in its own thread, all released at the same moment."""
    barrier = threading.Barrier(len(stores))

    def derive(store: HistoryStore) -> int:
        barrier.wait(BARRIER_TIMEOUT_S)
        return store.track_incidents()

    with ThreadPoolExecutor(len(stores)) as pool:
        futures = [pool.submit(derive, store) for store in stores]
        return [future.result() for future in futures]  # a caller's error is raised here


def test_concurrent_derivations_record_each_incident_once(history_url: str) -> None:
    stores = [open_history(history_url) for _ in range(CALLERS)]
    try:
        stored = _record(stores[0], range(40))
        expected = _expected(stored)
        assert len(expected) > 40 and any(last is None for *_, last in expected)
        opened = _derive_at_once(stores)  # no bookmark row yet
        assert _recorded(stores[0]) == expected
        assert sum(opened) == len(expected)

        stored |= _record(stores[0], range(40, 75))  # incidents still open close, new ones open
        expected = _expected(stored)
        opened_before = len(_recorded(stores[0]))
        opened = _derive_at_once(stores)  # the bookmark row exists now
        assert _recorded(stores[0]) == expected
        assert sum(opened) == len(expected) - opened_before
    finally:
        for store in stores:
            store.close()
