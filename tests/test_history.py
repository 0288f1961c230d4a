"""The history store on real SQLite files: round trips, one transaction per sweep, schema versions."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from homelab.errors import HistoryError
from homelab.health.probe import EndpointState, LoadedModel, ProbeResult, Reason
from homelab.health.sweep import ClusterHealth, Prognosis, SweepReport
from homelab.history import SCHEMA_VERSION, TABLES, compare_with_previous, down_node, open_history
from homelab.inventory import EndpointKind
from homelab.vram.gpu_facts import GpuFact, GpuReading, GpuStatus, gpu_samples
from homelab.vram.sampling import model_samples

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
_REASON = {EndpointState.UP: Reason.OK, EndpointState.SLOW: Reason.SLOW, EndpointState.DOWN: Reason.REFUSED}


def result(node: str, endpoint: str, state: EndpointState = EndpointState.UP, at: datetime = T0) -> ProbeResult:
    return ProbeResult(
        node=node,
        tier=f"tier-of-{node}",
        endpoint=endpoint,
        kind=EndpointKind.LLAMACPP,
        url=f"http://127.0.0.1:9/{node}/{endpoint}",
        state=state,
        reason=_REASON[state],
        detail="" if state is EndpointState.UP else f"{endpoint} says no",
        latency_ms=12.5,
        checked_at=at,
    )


def report(results: list[ProbeResult], at: datetime = T0, prognosis: Prognosis = Prognosis.OPERATIONAL) -> SweepReport:
    reasons = [f"{r.node}/{r.endpoint} is {r.state}" for r in results if r.state is not EndpointState.UP]
    return SweepReport(
        started_at=at,
        duration_ms=42.0,
        endpoints=results,
        tiers=[],
        cluster=ClusterHealth(prognosis=prognosis, reasons=reasons),
    )


def big_report(n: int, at: datetime = T0) -> SweepReport:
    return report([result(f"node{i // 10}", f"ep{i}", at=at) for i in range(n)], at=at)


def test_sweep_round_trips_with_its_probe_results(tmp_path: Path) -> None:
    down = result("nas", "small", EndpointState.DOWN)
    first = report([result("gpu", "ollama"), down], prognosis=Prognosis.DEGRADED)
    with open_history(f"sqlite:///{tmp_path}/h.db") as history:
        sweep_id = history.record_sweep(first)
        assert history.sweep_results(sweep_id) == first.endpoints
        [record] = history.recent_sweeps(5)
    assert (record.id, record.started_at, record.prognosis) == (sweep_id, T0, Prognosis.DEGRADED)
    assert record.reasons == ["nas/small is DOWN"]
    assert record.started_at.tzinfo is not None


def test_latest_states_are_the_newest_sweep_per_endpoint(tmp_path: Path) -> None:
    with open_history(f"sqlite:///{tmp_path}/h.db") as history:
        assert history.latest_states() == {}
        history.record_sweep(report([result("gpu", "a", EndpointState.DOWN)]))
        later = T0 + timedelta(minutes=5)
        history.record_sweep(report([result("gpu", "a", at=later), result("gpu", "b", at=later)], at=later))
        states = history.latest_states()
        newest_first = [s.started_at for s in history.recent_sweeps(1)]
    assert {key: r.state for key, r in states.items()} == {
        ("gpu", "a"): EndpointState.UP,
        ("gpu", "b"): EndpointState.UP,
    }
    assert newest_first == [later]


def test_a_failing_sweep_leaves_no_trace_and_earlier_sweeps_stay(tmp_path: Path) -> None:
    """The duplicate endpoint at the end violates UNIQUE(sweep_id, node, endpoint) mid-insert."""
    with open_history(f"sqlite:///{tmp_path}/h.db") as history:
        kept = history.record_sweep(big_report(20))
        broken = big_report(30, at=T0 + timedelta(minutes=5))
        broken = broken.model_copy(update={"endpoints": [*broken.endpoints, broken.endpoints[0]]})
        with pytest.raises(HistoryError, match=r"cannot record the sweep of .*IntegrityError"):
            history.record_sweep(broken)
        assert [s.id for s in history.recent_sweeps(10)] == [kept]
        assert len(history.sweep_results(kept)) == 20
        assert history.record_sweep(big_report(5)) > kept
    rows = sqlite3.connect(tmp_path / "h.db").execute("SELECT count(*) FROM probe_results").fetchone()
    assert rows == (25,)


def test_a_process_killed_mid_sweep_leaves_no_half_sweep(tmp_path: Path) -> None:
    """The writer dies (os._exit, no rollback) after the sweep row, before its probe rows commit."""
    db = tmp_path / "h.db"
    script = textwrap.dedent(
        f"""
        import os, sqlalchemy
        from tests.test_history import big_report, T0
        from datetime import timedelta
        from homelab.history import open_history
        history = open_history("sqlite:///{db}")
        history.record_sweep(big_report(50))

        def die(conn, cursor, statement, parameters, context, executemany):
            if executemany:
                os._exit(17)

        sqlalchemy.event.listen(history.engine, "before_cursor_execute", die)
        history.record_sweep(big_report(500, at=T0 + timedelta(minutes=5)))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=Path(__file__).parent.parent, capture_output=True, text=True, check=False
    )
    assert done.returncode == 17, done.stderr
    with open_history(f"sqlite:///{db}") as history:
        [survivor] = history.recent_sweeps(10)
        assert survivor.started_at == T0
        assert len(history.latest_states()) == 50
    assert sqlite3.connect(db).execute("SELECT count(*) FROM probe_results").fetchone() == (50,)


def test_a_sweep_is_one_bulk_insert_for_its_probe_rows(tmp_path: Path) -> None:
    statements: list[tuple[str, bool]] = []
    with open_history(f"sqlite:///{tmp_path}/h.db") as history:

        def seen(conn, cursor, statement, parameters, context, executemany) -> None:  # type: ignore[no-untyped-def]
            statements.append((statement.split()[0] + " " + statement.split()[2], executemany))

        sa.event.listen(history.engine, "before_cursor_execute", seen)
        history.record_sweep(big_report(500))
    assert statements == [("INSERT sweeps", False), ("INSERT probe_results", True)]


def test_sqlite_file_gets_parent_dirs_wal_and_a_schema_version(tmp_path: Path) -> None:
    with open_history("sqlite:///deep/er/h.db", relative_to=tmp_path) as history:
        assert history.schema_version() == SCHEMA_VERSION
    db = sqlite3.connect(tmp_path / "deep" / "er" / "h.db")
    assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert db.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]


def test_reopening_keeps_history_and_a_newer_schema_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/h.db"
    with open_history(url) as history:
        history.record_sweep(big_report(3))
    with open_history(url) as history:
        assert len(history.recent_sweeps(10)) == 1
    db = sqlite3.connect(tmp_path / "h.db")
    db.execute("INSERT INTO schema_version VALUES (?, ?)", (SCHEMA_VERSION + 1, T0.isoformat()))
    db.commit()
    with pytest.raises(
        HistoryError, match=f"schema version {SCHEMA_VERSION + 1}, newer than this code's {SCHEMA_VERSION}"
    ):
        open_history(url)


def test_an_unusable_path_is_a_history_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")
    with pytest.raises(HistoryError, match=r"cannot create the directory of .*file/h\.db"):
        open_history(f"sqlite:///{tmp_path}/file/h.db")
    (tmp_path / "dir.db").mkdir()
    with pytest.raises(HistoryError, match=r"cannot create or upgrade the schema: OperationalError: .*unable to open"):
        open_history(f"sqlite:///{tmp_path}/dir.db")


UP, SLOW, DOWN = EndpointState.UP, EndpointState.SLOW, EndpointState.DOWN


@pytest.mark.parametrize(
    ("case", "before", "now", "changed"),
    [
        ("first sweep, up: no news", None, UP, None),
        ("first sweep, down: news", None, DOWN, "down"),
        ("up to down", UP, DOWN, "down"),
        ("slow to down", SLOW, DOWN, "down"),
        ("down to up", DOWN, UP, "recovered"),
        ("down to slow: serving again", DOWN, SLOW, "recovered"),
        ("down stays down", DOWN, DOWN, None),
        ("up to slow is not a down/up change", UP, SLOW, None),
    ],
)
def test_endpoint_changes(case: str, before: EndpointState | None, now: EndpointState, changed: str | None) -> None:
    previous = {} if before is None else {("gpu", "a"): result("gpu", "a", before)}
    changes = compare_with_previous(7, previous, report([result("gpu", "a", now), result("gpu", "b")]))
    assert [("down" if c.went_down else "recovered") for c in changes.endpoints] == ([changed] if changed else [])
    if changed:
        assert changes.endpoints[0].previous == before


def test_a_node_is_down_when_all_its_endpoints_are_and_new_only_the_first_time() -> None:
    both_down = [result("nas", "a", DOWN), result("nas", "b", DOWN)]
    first = compare_with_previous(1, {}, report([result("gpu", "a"), *both_down]))
    [down] = first.nodes_down
    assert (down.node, down.tier, down.new) == ("nas", "tier-of-nas", True)
    assert down.summary == "node nas is down: all 2 endpoints failed (a refused, b refused)"
    previous = {(r.node, r.endpoint): r for r in both_down}
    assert [d.new for d in compare_with_previous(2, previous, report(both_down)).nodes_down] == [False]
    assert compare_with_previous(3, {}, report([result("nas", "a", DOWN), result("nas", "b", SLOW)])).nodes_down == []
    assert down_node([]) is None


def test_a_locked_database_is_a_clear_error_and_loses_nothing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'history.db'}"
    with open_history(url) as history:
        first = history.record_sweep(report([result("a", "x")]))
    locker = sqlite3.connect(tmp_path / "history.db", isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")  # another writer holds the database
    try:
        with pytest.raises(HistoryError, match="locked"), open_history(url, busy_timeout_s=0.2) as history:
            history.record_sweep(report([result("a", "x")], at=T0 + timedelta(minutes=1)))
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    with open_history(url) as history:
        assert [s.id for s in history.recent_sweeps()] == [first]
        assert len(history.sweep_results(first)) == 1
        history.record_sweep(report([result("a", "x")], at=T0 + timedelta(minutes=2)))
        assert len(history.recent_sweeps()) == 2


def test_a_fresh_file_another_connection_holds_is_waited_for_not_refused(tmp_path: Path) -> None:
    """SQLite turns a file to WAL without its busy handler; opening it waits for the holder anyway."""
    locker = sqlite3.connect(tmp_path / "h.db", isolation_level=None, check_same_thread=False)
    locker.execute("BEGIN IMMEDIATE")  # another process mid-way through creating the fresh file
    release = threading.Timer(0.5, locker.execute, ["ROLLBACK"])
    release.start()
    started = time.monotonic()
    try:
        with open_history(f"sqlite:///{tmp_path / 'h.db'}", busy_timeout_s=10) as history:
            waited_s = time.monotonic() - started
            history.record_sweep(report([result("a", "x")]))
            with history.engine.connect() as conn:
                assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    finally:
        release.join()
        locker.close()
    assert waited_s >= 0.4


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_history_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty history database: a SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/h.db"
    make = request.getfixturevalue("postgres_url")
    return str(make("h_" + request.node.originalname[-40:]))


def test_a_vram_figure_past_its_column_is_stored_as_unknown_and_the_round_kept(
    fresh_history_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """An Ollama size_vram of 2^64 (the probe keeps the server's figure) and a GPU reading of 2^70."""
    ollama = result("gpu", "ollama").model_copy(update={
        "kind": EndpointKind.OLLAMA,
        "loaded": [LoadedModel(name="huge", size_vram_bytes=2**64), LoadedModel(name="fine", size_vram_bytes=1000)],
    })  # fmt: skip
    reading = GpuReading(index=0, name="H200", used_bytes=2**70, total_bytes=141 * 2**30, utilization_pct=3.0)
    gpus = gpu_samples(GpuFact(node="gpu", sampled_at=T0, status=GpuStatus.OK, gpus=[reading]))
    with open_history(fresh_history_url) as history:
        assert history.record_vram_samples(model_samples([ollama], T0) + gpus) == 3
        vram = TABLES["vram_samples"]
        query = sa.select(vram.c.model, vram.c.used_bytes, vram.c.total_bytes).order_by(vram.c.id)
        with history.engine.connect() as conn:
            rows = [tuple(row) for row in conn.execute(query)]
    assert rows == [("huge", None, None), ("fine", 1000, None), (None, None, 141 * 2**30)]
    assert "used_bytes is a 65-bit number, past what the history holds" in caplog.text
    assert "used_bytes is a 71-bit number" in caplog.text


_RACE = textwrap.dedent(
    """
    import sys, time
    from tests.test_history import T0, big_report
    from homelab.history import open_history
    start, urls = float(sys.argv[1]), sys.argv[2:]
    for round, url in enumerate(urls):
        while time.time() < start + round * 0.4:  # every process opens the same fresh database at once
            time.sleep(0.001)
        with open_history(url) as history:
            history.record_sweep(big_report(3))
    """
)


def test_four_processes_creating_a_fresh_database_lose_no_sweep(
    request: pytest.FixtureRequest, fresh_history_url: str, tmp_path: Path
) -> None:
    """Five fresh databases, each opened by four processes in the same millisecond."""
    urls = [fresh_history_url.replace("h.db", f"h{i}.db") if "sqlite" in fresh_history_url else
            str(request.getfixturevalue("postgres_url")(f"race{i}")) for i in range(5)]  # fmt: skip
    start = str(time.time() + 4.0)  # after four interpreters have imported homelab
    root = Path(__file__).parent.parent
    procs = [
        subprocess.Popen([sys.executable, "-c", _RACE, start, *urls], cwd=root, stderr=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    errors = [proc.communicate(timeout=120)[1] for proc in procs]
    assert [proc.returncode for proc in procs] == [0] * 4, "\n".join(errors)
    for url in urls:
        with open_history(url) as history:
            assert len(history.recent_sweeps(10)) == 4
            assert history.schema_version() == SCHEMA_VERSION
