"""The history store's version-1 contract on a real PostgreSQL (tests/fixtures/postgres.py).

tests/test_history.py checks it on SQLite files; the same promises must hold when
`history.url` points at PostgreSQL: round trips with aware UTC times, one transaction per
sweep, a 500-endpoint sweep as one bulk insert, a newer schema refused, a gone server a
`HistoryError`. The version-2 tables run on both backends in tests/test_report_history.py.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
import sqlalchemy as sa

from homelab.errors import HistoryError
from homelab.health.probe import EndpointState
from homelab.history import SCHEMA_VERSION, open_history
from tests.fixtures.net import free_port
from tests.fixtures.postgres import PostgresServer
from tests.test_history import T0, big_report, report, result


def test_round_trip_latest_states_and_aware_times(postgres_url: Callable[[str], str]) -> None:
    with open_history(postgres_url("roundtrip")) as history:
        first = report([result("gpu", "a", EndpointState.DOWN), result("gpu", "b")])
        sweep_id = history.record_sweep(first)
        assert history.sweep_results(sweep_id) == first.endpoints
        later = T0 + timedelta(minutes=5)
        history.record_sweep(report([result("gpu", "a", at=later)], at=later))
        states = history.latest_states()
        [newest, _] = history.recent_sweeps(5)
    assert {k: r.state for k, r in states.items()} == {("gpu", "a"): EndpointState.UP}
    assert newest.started_at == later and newest.started_at.tzinfo is not None


def test_failing_sweep_leaves_no_trace_and_bulk_insert(postgres_url: Callable[[str], str]) -> None:
    statements: list[tuple[str, bool]] = []
    with open_history(postgres_url("atomic")) as history:
        kept = history.record_sweep(big_report(20))
        broken = big_report(30, at=T0 + timedelta(minutes=5))
        broken = broken.model_copy(update={"endpoints": [*broken.endpoints, broken.endpoints[0]]})
        with pytest.raises(HistoryError, match=r"cannot record the sweep of .*IntegrityError"):
            history.record_sweep(broken)
        assert [s.id for s in history.recent_sweeps(10)] == [kept]

        def seen(conn, cursor, statement, parameters, context, executemany) -> None:  # type: ignore[no-untyped-def]
            statements.append((statement.split()[0] + " " + statement.split()[2], executemany))

        sa.event.listen(history.engine, "before_cursor_execute", seen)
        history.record_sweep(big_report(500, at=T0 + timedelta(minutes=10)))
    assert statements == [("INSERT sweeps", False), ("INSERT probe_results", True)]


def test_newer_schema_refused_and_gone_server_is_history_error(
    postgres_url: Callable[[str], str],
    postgres_server: PostgresServer,
) -> None:
    url = postgres_url("versions")
    with open_history(url) as history:
        assert history.schema_version() == SCHEMA_VERSION
        with history.engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO schema_version VALUES (:v, now())"), {"v": SCHEMA_VERSION + 1})
    with pytest.raises(HistoryError, match=f"schema version {SCHEMA_VERSION + 1}, newer than"):
        open_history(url)
    nobody = f"postgresql+psycopg://{postgres_server.user}@127.0.0.1:{free_port()}/x"
    with pytest.raises(HistoryError, match="cannot create or upgrade the schema: OperationalError"):
        open_history(nobody)
