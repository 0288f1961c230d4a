"""`homelab report` and the daily-report flow on a generated history: tables, renderings, bad input.

The history is written by `homelab.reports.synthetic` (two days, 20 endpoints on two nodes,
two of them flapping every six hours, six GPUs); the CLI runs as the installed console script.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from prefect import get_client
from prefect.cli.deploy._models import PrefectYamlModel
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
from prefect.flows import load_flow_from_entrypoint

from flows.daily_report import daily_report
from homelab.errors import ReportError
from homelab.health.probe import EndpointState
from homelab.history import open_history
from homelab.inventory import load_inventory
from homelab.reports import (
    HealthReport,
    Period,
    build_report,
    parse_since,
    to_html,
    to_json,
    to_markdown,
    write_csv,
)
from homelab.reports.build import planned_vram_gib
from homelab.reports.period import MAX_PERIOD
from homelab.reports.synthetic import SyntheticHistory, write_synthetic_history
from tasks.reports import ARTIFACT_KEY
from tests.test_history import report, result

HOMELAB = Path(sys.executable).parent / "homelab"
NOW = datetime.now(UTC).replace(second=0, microsecond=0)
START = NOW - timedelta(days=2)


def _cluster(tmp_path: Path, nodes: list[str], db: str = "history.db") -> Path:
    cluster = {
        "version": 1,
        "nodes": [
            {
                "name": name,
                "tier": "primary",
                "host": "127.0.0.1",
                "gpus": [{"name": "RTX 4090", "vram_gib": 24.0}],
                "endpoints": [{"name": "ep", "kind": "ollama", "url": "http://127.0.0.1:9"}],
            }
            for name in nodes
        ],
        "history": {"url": f"sqlite:///{db}"},
    }
    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump(cluster))
    return path


@pytest.fixture(scope="module")
def history_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two days of generated history ending now, written once for the module."""
    root = tmp_path_factory.mktemp("report")
    with open_history(f"sqlite:///{root}/history.db") as history:
        write_synthetic_history(history, SyntheticHistory(start=START, days=2, endpoints=20))
    return root / "history.db"


@pytest.fixture
def cluster_dir(tmp_path: Path, history_db: Path) -> Path:
    (tmp_path / "history.db").write_bytes(history_db.read_bytes())
    return tmp_path


def _run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "HOMELAB_INVENTORY"} | {"COLUMNS": "200"}
    return subprocess.run(
        [str(HOMELAB), *map(str, args)], capture_output=True, text=True, timeout=120, env=env, check=False
    )


def _report(db: Path, days: float = 3) -> HealthReport:
    with open_history(f"sqlite:///{db}") as history:
        return build_report(history, parse_since(f"{days}d"))


def test_report_tables_on_generated_history(cluster_dir: Path) -> None:
    rep = _report(cluster_dir / "history.db")
    tiers = rep.tables["uptime_tier"].set_index("tier")
    assert set(tiers.index) == {"primary", "secondary"}
    assert tiers["probes"].sum() == 20 * 2 * 24 * 60
    assert 95 < tiers.loc["primary", "uptime_pct"] < 100
    flapping = rep.tables["flapping"]
    assert {"ep000", "ep001"} <= set(flapping["endpoint"])  # the two designed to flap
    latency = rep.tables["latency"]
    assert ((latency["p50_ms"] <= latency["p95_ms"]) & (latency["p95_ms"] <= latency["p99_ms"])).all()
    gpus = rep.tables["gpus"]
    assert len(gpus) == 6 and (gpus["headroom_gib"] > 0).all()
    assert set(rep.tables["models"]["model"]) == {"qwen0:7b", "qwen2:7b", "qwen4:7b"}
    assert len(rep.tables["uptime_node_daily"]) in (4, 6)  # two nodes over two or three UTC days


def test_cli_writes_html_csv_and_json(cluster_dir: Path) -> None:
    cluster = _cluster(cluster_dir, ["node00"])
    html, csv = cluster_dir / "report.html", cluster_dir / "csv"
    result_ = _run("report", "--inventory", cluster, "--since", "3d", "--html", html, "--csv", csv)
    assert result_.returncode == 0, result_.stderr
    assert "node node01 is in the history but no longer in the inventory" in result_.stdout
    page = html.read_text()
    assert page.startswith("<!DOCTYPE html>") and page.count("data:image/png;base64,") == 2
    assert {p.name for p in csv.iterdir()} >= {"uptime_endpoint.csv", "incidents.csv", "gpus.csv", "vram.png"}
    as_json = _run("report", "--inventory", cluster, "--since", "3d", "--json")
    data = json.loads(as_json.stdout)
    assert len(data["tables"]["uptime_endpoint"]) == 20
    node00 = next(r for r in data["tables"]["uptime_node"] if r["node"] == "node00")
    assert node00["in_inventory"] is True


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--since", "yesterday"], "--since 'yesterday': expected a span such as 7d"),
        (["--since", "2999-01-01"], "is not in the past"),
    ],
)
def test_cli_bad_period_exits_2(cluster_dir: Path, args: list[str], message: str) -> None:
    result_ = _run("report", "--inventory", _cluster(cluster_dir, ["node00"]), *args)
    assert result_.returncode == 2
    assert message in result_.stderr and "Traceback" not in result_.stderr


def test_cli_html_to_a_fifo_or_a_folder_exits_2_at_once(cluster_dir: Path) -> None:
    """Once, --html naming a FIFO waited forever for a reader."""
    cluster = _cluster(cluster_dir, ["node00"])
    fifo = cluster_dir / "report.html"
    os.mkfifo(fifo)
    for target, message in ((fifo, "not a regular file"), (cluster_dir, "is a directory")):
        result_ = _run("report", "--inventory", cluster, "--since", "1d", "--html", target)
        assert result_.returncode == 2, result_.stdout[-500:]
        assert f"{target}: {message}" in result_.stderr and "Traceback" not in result_.stderr


def test_cli_missing_or_broken_database_exits_2(tmp_path: Path) -> None:
    gone = _run("report", "--inventory", _cluster(tmp_path, ["node00"], db="nowhere/history.db"))
    assert gone.returncode == 2
    assert "no database at" in gone.stderr and "Traceback" not in gone.stderr
    assert not (tmp_path / "nowhere" / "history.db").exists()  # a report never creates one
    (tmp_path / "junk.db").write_bytes(b"this is not a database" * 100)
    broken = _run("report", "--inventory", _cluster(tmp_path, ["node00"], db="junk.db"))
    assert broken.returncode == 2
    assert "history: cannot" in broken.stderr and "Traceback" not in broken.stderr


def test_cli_unwritable_outputs_exit_2(cluster_dir: Path) -> None:
    (cluster_dir / "file").write_text("x")
    result_ = _run("report", "--inventory", _cluster(cluster_dir, ["node00"]), "--csv", cluster_dir / "file" / "csv")
    assert result_.returncode == 2
    assert "cannot write the report's CSV files" in result_.stderr


def test_empty_history_and_empty_period_give_empty_tables_and_notes(tmp_path: Path, history_db: Path) -> None:
    with open_history(f"sqlite:///{tmp_path}/empty.db") as history:
        empty = build_report(history, parse_since("7d"))
    assert empty.empty
    assert empty.notes == ["no sweep in this period: uptime and latency are empty", "no VRAM sample in this period"]
    for text in (to_markdown(empty), to_html(empty)):
        assert "no rows" in text
    assert json.dumps(to_json(empty))
    assert len(write_csv(empty, tmp_path / "csv")) == 13
    with open_history(f"sqlite:///{history_db}") as history:
        old = build_report(history, Period(start=START - timedelta(days=30), end=START - timedelta(days=20)))
    assert old.empty


def test_samples_from_the_future_are_left_out_and_counted(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    with open_history(f"sqlite:///{tmp_path}/skew.db") as history:
        history.record_sweep(report([result("gpu", "a", at=now - timedelta(minutes=5))], at=now - timedelta(minutes=5)))
        future = now + timedelta(hours=3)
        history.record_sweep(report([result("gpu", "a", EndpointState.DOWN, at=future)], at=future))
        rep = build_report(history, parse_since("1d", now=now))
        history.roll_up(now + timedelta(hours=1))  # an hour later: the future sweep's hour is still ahead
        later = build_report(history, parse_since("1d", now=now + timedelta(hours=1)), refresh=False)
    assert rep.tables["uptime_endpoint"]["probes"].tolist() == [1]
    assert rep.tables["uptime_endpoint"]["down"].tolist() == [0]
    assert "1 sweeps rows are stamped in the future (clock skew?) and were left out" in rep.notes
    assert later.tables["uptime_endpoint"]["down"].tolist() == [0]


def test_a_database_locked_by_a_writer_still_reports(tmp_path: Path) -> None:
    """Another process holds the write lock (a sweep mid-write): a read-only report still works (WAL)."""
    db = tmp_path / "locked.db"
    with open_history(f"sqlite:///{db}") as history:
        history.record_sweep(report([result("gpu", "a")]))
    holder = sqlite3.connect(db)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with open_history(f"sqlite:///{db}") as history:
            rep = build_report(
                history,
                Period(start=datetime(2026, 3, 1, tzinfo=UTC), end=datetime(2026, 3, 2, tzinfo=UTC)),
                refresh=False,
            )
    finally:
        holder.rollback()
        holder.close()
    assert rep.tables["uptime_endpoint"]["probes"].tolist() == [1]


def test_parse_since_forms() -> None:
    now = datetime(2026, 3, 8, tzinfo=UTC)
    assert parse_since("7d", now=now).start == datetime(2026, 3, 1, tzinfo=UTC)
    assert parse_since("36h", now=now).start == now - timedelta(hours=36)
    assert parse_since("2026-03-01", now=now).start == datetime(2026, 3, 1, tzinfo=UTC)
    with pytest.raises(ReportError):
        parse_since("soon", now=now)
    assert parse_since("3660d", now=now).days == 3660


@pytest.mark.parametrize(
    ("since", "message"),
    [("99999999999d", "longer than 3660 days"), ("3661d", "longer than 3660 days"), ("1" * 400 + "w", "longer than"),
     ("0001-01-01", "more than 3660 days ago"), ("0001-01-01T00:00+14:00", "expected a span"), ("x" * 5000, "xxx...'")],
)  # fmt: skip
def test_parse_since_refuses_spans_datetime_cannot_hold(since: str, message: str) -> None:
    """Once an OverflowError from timedelta or astimezone; a long value is shortened in the message."""
    with pytest.raises(ReportError, match=f"^--since .*{message}") as info:
        parse_since(since, now=datetime(2026, 3, 8, tzinfo=UTC))
    assert len(str(info.value)) < 200


@settings(max_examples=300, deadline=1000)
@given(since=st.text(max_size=40) | st.from_regex(r"\A\s*\d{1,30}(\.\d{1,5})?\s*[mhdw]\s*\Z") | st.datetimes().map(str))
def test_any_since_gives_a_period_or_a_report_error(since: str) -> None:
    try:
        period = parse_since(since, now=datetime(2026, 3, 8, tzinfo=UTC))
    except ReportError as exc:
        assert str(exc).startswith("--since ")
        return
    assert timedelta(0) < period.end - period.start <= MAX_PERIOD


@pytest.mark.usefixtures("prefect_harness")
async def test_daily_report_flow_publishes_markdown_with_charts(cluster_dir: Path) -> None:
    cluster = _cluster(cluster_dir, ["node00", "node01"])
    html = cluster_dir / "daily.html"
    state = await daily_report(str(cluster), since="3d", html=str(html), return_state=True)
    assert state.is_completed(), state.message
    assert html.read_text().count("data:image/png;base64,") == 2
    async with get_client() as client:
        [artifact] = await client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[ARTIFACT_KEY])), limit=1
        )
    assert artifact.type == "markdown"
    assert "# Cluster health report" in artifact.data and "![uptime](data:image/png;base64," in artifact.data


@pytest.mark.parametrize("name", ["sample-vram", "daily-report"])
def test_prefect_yaml_declares_the_deployment_with_its_flows_parameters(name: str) -> None:
    root = Path(__file__).parent.parent
    raw = yaml.safe_load((root / "prefect.yaml").read_text())
    [deployment] = [d for d in PrefectYamlModel.model_validate(raw).deployments if d.name == name]
    assert deployment.work_pool is not None and deployment.work_pool.name == "homelab"
    assert deployment.schedules
    flow = load_flow_from_entrypoint(str(root / deployment.entrypoint))
    assert flow.name == name
    assert set(deployment.parameters) == set(flow.parameters.properties)


def test_planned_vram_comes_from_the_vram_plan() -> None:
    planned = planned_vram_gib(load_inventory(Path(__file__).parent.parent / "examples" / "three-tier.yaml"))

    assert 0 < planned[("mark-i", 0)] <= 24.0 - 0.5  # Ollama's box: the two models its rollout deploys
    assert 0 < planned[("mark-ii", 0)] <= 24.0 - 0.5  # three containers, never past VRAM minus reserve
