"""The history's version-2 tables on SQLite and on a real PostgreSQL: upgrade, roll-ups, retention, incidents.

Every test runs on both backends (`backend` fixture). The upgrade test builds its version-1
database with the frozen version-1 code (tests/cases/history/history_v1.py), not by hand, so
"a database at the old version" is exactly what an existing install has on disk.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType

import pandas as pd
import pandas.testing as pdt
import pytest
import sqlalchemy as sa

from homelab.health.probe import EndpointState
from homelab.history import SCHEMA_VERSION, RetentionPolicy, open_history
from homelab.reports import Period, build_report
from homelab.vram.gpu_facts import VramSample, VramSource
from tests.test_history import report, result

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
V1 = Path(__file__).parent / "cases" / "history" / "history_v1.py"


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[str], str]:
    """A factory of empty databases on the parametrized backend: `backend("name")` -> URL."""
    if request.param == "sqlite":
        return lambda name: f"sqlite:///{tmp_path}/{name}.db"
    make: Callable[[str], str] = request.getfixturevalue("postgres_url")
    return make


def _v1_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("history_v1_frozen", V1)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _sweeps(n: int, start: datetime = T0, down_at: set[int] = frozenset()) -> list:  # type: ignore[assignment]
    """n one-minute sweeps of two endpoints; gpu/b is DOWN in the sweeps listed in `down_at`."""
    out = []
    for i in range(n):
        at = start + timedelta(minutes=i)
        state = EndpointState.DOWN if i in down_at else EndpointState.UP
        out.append(report([result("gpu", "a", at=at), result("gpu", "b", state, at=at)], at=at))
    return out


def test_a_version_1_database_upgrades_with_its_rows_intact(backend: Callable[[str], str]) -> None:
    url = backend("upgrade")
    v1 = _v1_module()
    with v1.open_history(url) as old:
        assert old.schema_version() == 1
        ids = [old.record_sweep(r) for r in _sweeps(3, down_at={1})]
        before = {i: old.sweep_results(i) for i in ids}
        recent_before = [s.model_dump() for s in old.recent_sweeps(10)]
    with open_history(url) as history:
        assert history.schema_version() == SCHEMA_VERSION == 3
        assert {i: history.sweep_results(i) for i in ids} == before
        assert [s.model_dump() for s in history.recent_sweeps(10)] == recent_before
        tables = set(sa.inspect(history.engine).get_table_names())
        assert {"vram_samples", "incidents", "incident_actions", "rollouts", "probe_hourly"} <= tables
        columns = {c["name"] for c in sa.inspect(history.engine).get_columns("probe_results")}
        assert "capabilities" in columns  # version 3; the rows of version 1 read back with none
        # and the upgraded database takes new rows of every kind
        history.record_sweep(_sweeps(1, start=T0 + timedelta(minutes=3))[0])
        assert history.track_incidents() == 1
    with open_history(url) as again:  # reopening at the current version changes nothing
        assert again.schema_version() == 3
        assert len(again.recent_sweeps(10)) == 4


def test_roll_up_is_incremental_and_reports_match_raw(backend: Callable[[str], str]) -> None:
    with open_history(backend("rollup")) as history:
        for sweep in _sweeps(150, down_at={70, 71, 72}):
            history.record_sweep(sweep)
        period = Period(start=T0, end=T0 + timedelta(hours=3))
        raw = build_report(history, period, refresh=False)  # nothing rolled up: all from raw rows
        assert history.roll_up(T0 + timedelta(hours=2, minutes=10)) == 2
        assert history.roll_up(T0 + timedelta(hours=2, minutes=50)) == 0  # same hour: nothing new
        rolled = build_report(history, period)
    for name in ("uptime_endpoint", "uptime_tier_daily", "latency"):
        pd_equal(raw.tables[name], rolled.tables[name])
    b = rolled.tables["uptime_endpoint"].set_index("endpoint").loc["b"]
    assert (b["probes"], b["down"]) == (150, 3)
    [incident] = rolled.tables["incidents"].to_dict("records")
    assert (incident["endpoint"], incident["duration_min"], incident["ongoing"]) == ("b", 3.0, False)


def pd_equal(a: pd.DataFrame, b: pd.DataFrame) -> None:
    pdt.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True), check_dtype=False)


def test_retention_deletes_old_raw_rows_only_after_their_roll_up(backend: Callable[[str], str]) -> None:
    with open_history(backend("retention")) as history:
        for sweep in _sweeps(3, start=T0) + _sweeps(3, start=T0 + timedelta(days=10)):
            history.record_sweep(sweep)
        now = T0 + timedelta(days=10, hours=2)
        policy = RetentionPolicy(raw_days=5)
        assert history.prune(now, policy) == 0  # nothing rolled up yet: nothing may go
        history.roll_up(now)
        assert history.prune(now, policy) == 3
        remaining = [s.started_at for s in history.recent_sweeps(10)]
        report_ = build_report(history, Period(start=T0 - timedelta(hours=1), end=now))
    assert remaining and min(remaining) == T0 + timedelta(days=10)
    # the old sweeps live on in the roll-ups: the report still counts them
    assert int(report_.tables["uptime_endpoint"]["probes"].sum()) == 12


def test_vram_incidents_and_rollouts_round_trip(backend: Callable[[str], str]) -> None:
    with open_history(backend("rows")) as history:
        samples = [
            VramSample(sampled_at=T0, node="gpu", source=VramSource.NVIDIA_SMI, gpu_index=0, gpu_name="H200",
                       used_bytes=10 * 2**30, total_bytes=140 * 2**30, utilization_pct=None),
            VramSample(sampled_at=T0, node="gpu", source=VramSource.OLLAMA, model="qwen:7b", used_bytes=5 * 2**30),
        ]  # fmt: skip
        assert history.record_vram_samples(samples) == 2
        incident = history.open_incident("gpu", None, T0, "node down")
        history.add_incident_action(incident, T0 + timedelta(minutes=1), "restart-docker", "ok")
        history.close_incident(incident, T0 + timedelta(minutes=4))
        history.record_rollout(
            {"started_at": T0, "node": "gpu", "endpoint": "llama", "model_file": "q.gguf", "outcome": "ok"}
        )
        rep = build_report(history, Period(start=T0 - timedelta(hours=1), end=T0 + timedelta(hours=1)))
    [gpu] = rep.tables["gpus"].to_dict("records")
    assert (gpu["used_peak_gib"], gpu["total_gib"], gpu["headroom_gib"]) == (10.0, 140.0, 130.0)
    [model] = rep.tables["models"].to_dict("records")
    assert (model["model"], model["used_peak_gib"]) == ("qwen:7b", 5.0)
    [row] = rep.tables["incidents"].to_dict("records")
    assert (row["endpoint"], row["time_to_recover_min"], row["actions"]) == ("(node)", 4.0, "restart-docker: ok")
