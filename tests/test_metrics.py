"""`homelab metrics` scraped over HTTP: what a real history holds (SQLite and PostgreSQL) is what Prometheus reads.

The exporter runs as the installed console script on a free loopback port; its output is
parsed with prometheus_client's own parser, so a scrape Prometheus would reject fails here.
The sample Grafana dashboard is checked against the names a real scrape serves.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from homelab.health.probe import EndpointState, LoadedModel
from homelab.health.sweep import Prognosis
from homelab.history import open_history
from homelab.inventory import EndpointKind
from homelab.metrics import MAX_LABEL_CHARS, MAX_MODELS_PER_NODE, METRIC_NAMES, metric_families
from homelab.metrics_history import HistorySnapshot
from homelab.recovery.plan import ActionRecord, Incident, Outcome
from homelab.recovery.record import store_incident
from homelab.vram.gpu_facts import GpuFact, GpuReading, GpuStatus, VramSample, VramSource, gpu_samples
from homelab.vram.sampling import model_samples
from tests.fixtures.net import LOOPBACK, free_port, stop_process, wait_http
from tests.test_history import report, result

HOMELAB = Path(sys.executable).parent / "homelab"
DASHBOARD = Path(__file__).parent.parent / "examples" / "grafana-dashboard.json"
NOW = datetime.now(UTC).replace(microsecond=0)
FIRST, LATEST = NOW - timedelta(minutes=10), NOW - timedelta(minutes=5)
GIB = 2**30


@pytest.fixture(autouse=True)
def _times_from_now() -> None:
    """Each test's times are relative to when it runs, not to when the module was collected: the
    exporter judges a VRAM round's age by its own clock, and a long suite reaches this file late."""
    global NOW, FIRST, LATEST
    NOW = datetime.now(UTC).replace(microsecond=0)
    FIRST, LATEST = NOW - timedelta(minutes=10), NOW - timedelta(minutes=5)


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def _cluster(tmp_path: Path, history_url: str, metrics: dict[str, Any] | None = None) -> Path:
    cluster: dict[str, Any] = {
        "version": 1,
        "nodes": [{"name": "gpu", "tier": "primary", "host": "127.0.0.1"}],
        "history": {"url": history_url},
    }
    if metrics is not None:
        cluster["metrics"] = metrics
    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump(cluster))
    return path


def _write_history(url: str, base_dir: Path) -> None:
    """Two sweeps, three VRAM rounds (one too old to serve), incidents from the sweeps and two recoveries."""
    with open_history(url, relative_to=base_dir) as history:
        history.record_sweep(
            report([result("gpu", "a", EndpointState.DOWN, at=FIRST), result("gpu", "b", at=FIRST)], at=FIRST)
        )
        latest = [
            result("gpu", "a", at=LATEST),
            result("gpu", "b", EndpointState.SLOW, at=LATEST).model_copy(update={"latency_ms": 2500.0}),
            result("nas", "c", EndpointState.DOWN, at=LATEST).model_copy(update={"latency_ms": 5000.0}),
        ]
        history.record_sweep(report(latest, at=LATEST, prognosis=Prognosis.DEGRADED))
        loaded = [
            LoadedModel(name="qwen2.5:7b", size_vram_bytes=5 * GIB),
            LoadedModel(name="nomic-embed-text", size_vram_bytes=300_000_000),
        ]
        ollama = result("gpu", "ollama").model_copy(update={"kind": EndpointKind.OLLAMA, "loaded": loaded})
        history.record_vram_samples(
            _gpus("old", NOW - timedelta(hours=2), 1)  # past vram_max_age_s: not served
            + _gpus("gpu", NOW - timedelta(seconds=90), 2)  # an earlier round: its GPU 1 has gone since
            + _gpus("gpu", NOW - timedelta(seconds=30), 1)
            + model_samples([ollama], NOW - timedelta(seconds=30))
        )
    for node, outcome, took_s in (("gpu", Outcome.RECOVERED, 120), ("nas", Outcome.FAILED, 600)):
        started = NOW - timedelta(minutes=30)
        step = ActionRecord(action="restart docker", at=started, seconds=3.0, ok=outcome is Outcome.RECOVERED)
        incident = Incident(
            node=node, started_at=started, finished_at=started + timedelta(seconds=took_s),
            outcome=outcome, reason="probe failed", actions=[step],
        )  # fmt: skip
        store_incident(incident, url, base_dir)


def _gpus(node: str, at: datetime, count: int) -> list[VramSample]:
    readings = [
        GpuReading(index=i, name="RTX 4090", used_bytes=(10 + i) * GIB, total_bytes=24 * GIB, utilization_pct=40.0)
        for i in range(count)
    ]
    return gpu_samples(GpuFact(node=node, sampled_at=at, status=GpuStatus.OK, gpus=readings))


def _samples(text: str) -> Samples:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _named(samples: Samples, name: str) -> dict[frozenset[tuple[str, str]], float]:
    return {labels: value for (n, labels), value in samples.items() if n == name}


def _labels(**labels: str) -> frozenset[tuple[str, str]]:
    return frozenset(labels.items())


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "HOMELAB_INVENTORY"} | {"COLUMNS": "200"}


@pytest.fixture
def exporter(tmp_path: Path) -> Iterator[Callable[..., str]]:
    """Start `homelab metrics` for a cluster file; returns the /metrics URL.

    Without `port`, on a free loopback port given with --listen; with it, on the port the
    cluster file's metrics.listen names (no flag).
    """
    started: list[subprocess.Popen[bytes]] = []

    def start(cluster: Path, port: int | None = None) -> str:
        flag = [] if port is not None else ["--listen", f"{LOOPBACK}:{(port := free_port())}"]
        log = tmp_path / f"metrics-{port}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [HOMELAB, "metrics", "-i", cluster, *flag], stdout=out, stderr=subprocess.STDOUT, env=_env()
            )
        started.append(proc)
        url = f"http://{LOOPBACK}:{port}/metrics"
        wait_http(url, 60, "homelab metrics", log, process=proc)
        return url

    yield start
    for proc in started:
        stop_process(proc)
        assert proc.returncode == 0, f"SIGTERM should end the exporter cleanly, got {proc.returncode}"


@pytest.fixture(params=["sqlite", "postgresql"])
def history_url(request: pytest.FixtureRequest) -> str:
    if request.param == "sqlite":
        return "sqlite:///history.db"  # relative: taken from the cluster file's directory
    return str(request.getfixturevalue("postgres_url")("metrics_scrape"))


def test_a_scrape_serves_what_the_history_holds(tmp_path: Path, history_url: str, exporter: Callable[..., str]) -> None:
    _write_history(history_url, tmp_path)
    samples = _samples(httpx.get(exporter(_cluster(tmp_path, history_url)), timeout=30).text)

    assert _named(samples, "homelab_history_up") == {_labels(): 1.0}
    assert _named(samples, "homelab_last_sweep_timestamp_seconds") == {_labels(): LATEST.timestamp()}
    assert _named(samples, "homelab_last_sweep_duration_seconds") == {_labels(): 0.042}
    assert _named(samples, "homelab_cluster_severity") == {_labels(): 1.0}
    assert _named(samples, "homelab_cluster_prognosis") == {
        _labels(prognosis="OPERATIONAL"): 0.0, _labels(prognosis="DEGRADED"): 1.0, _labels(prognosis="CRITICAL"): 0.0
    }  # fmt: skip
    where = {
        ("gpu", "a"): (EndpointState.UP, 0.0125), ("gpu", "b"): (EndpointState.SLOW, 2.5),
        ("nas", "c"): (EndpointState.DOWN, 5.0),
    }  # fmt: skip
    state, severity, latency = (
        _named(samples, f"homelab_endpoint_{n}") for n in ("state", "severity", "latency_seconds")
    )
    assert len(severity) == len(latency) == 3 and len(state) == 9
    for (node, endpoint), (now, seconds) in where.items():
        labels = {"node": node, "tier": f"tier-of-{node}", "endpoint": endpoint, "kind": "llamacpp"}
        assert severity[_labels(**labels)] == list(EndpointState).index(now)
        assert latency[_labels(**labels)] == seconds
        assert {s: state[_labels(**labels, state=s.value)] for s in EndpointState} == {
            s: float(s is now) for s in EndpointState
        }
    assert _named(samples, "homelab_tier_severity") == {
        _labels(tier="tier-of-gpu"): 1.0,
        _labels(tier="tier-of-nas"): 2.0,
    }
    assert _named(samples, "homelab_tier_state")[_labels(tier="tier-of-gpu", state="DEGRADED")] == 1.0
    assert _named(samples, "homelab_tier_endpoints")[_labels(tier="tier-of-gpu", state="SLOW")] == 1.0

    gpu0 = _labels(node="gpu", gpu="0", gpu_name="RTX 4090")
    assert _named(samples, "homelab_gpu_vram_used_bytes") == {gpu0: 10 * GIB}
    assert _named(samples, "homelab_gpu_vram_total_bytes") == {gpu0: 24 * GIB}
    assert _named(samples, "homelab_gpu_utilization_ratio") == {gpu0: 0.4}
    assert _named(samples, "homelab_model_vram_bytes") == {
        _labels(node="gpu", model="qwen2.5:7b", source="ollama"): 5 * GIB,
        _labels(node="gpu", model="nomic-embed-text", source="ollama"): 300_000_000,
    }
    assert _named(samples, "homelab_vram_sample_timestamp_seconds") == {
        _labels(node="gpu", source=s): (NOW - timedelta(seconds=30)).timestamp() for s in ("nvidia-smi", "ollama")
    }

    assert _named(samples, "homelab_incidents") == {
        _labels(node="gpu", scope="endpoint", outcome="RECOVERED"): 1.0,
        _labels(node="nas", scope="endpoint", outcome="OPEN"): 1.0,
        _labels(node="gpu", scope="node", outcome="RECOVERED"): 1.0,
        _labels(node="nas", scope="node", outcome="FAILED"): 1.0,
    }
    assert _named(samples, "homelab_incident_recovery_seconds_count") == {
        _labels(node="gpu", scope="endpoint"): 1.0, _labels(node="gpu", scope="node"): 1.0
    }  # fmt: skip
    recovery = _named(samples, "homelab_incident_recovery_seconds_sum")
    assert recovery[_labels(node="gpu", scope="endpoint")] == pytest.approx(300.0, abs=0.01)  # the sweeps 5 min apart
    assert recovery[_labels(node="gpu", scope="node")] == pytest.approx(120.0, abs=0.01)
    assert not _named(samples, "homelab_series_left_out")


def test_an_empty_history_serves_every_family_and_no_sample_of_the_cluster(
    tmp_path: Path, exporter: Callable[..., str]
) -> None:
    """Before the first sweep (the exporter creates the database as a sweep would)."""
    text = httpx.get(exporter(_cluster(tmp_path, "sqlite:///history.db")), timeout=30).text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert set(families) >= METRIC_NAMES - {"homelab_incident_recovery_seconds"}
    assert "homelab_incident_recovery_seconds" in families or "# TYPE homelab_incident_recovery_seconds summary" in text
    assert _samples(text) == {("homelab_history_up", _labels()): 1.0}


def test_an_unreadable_history_is_history_up_0_then_served_once_it_is_there(
    tmp_path: Path, exporter: Callable[..., str]
) -> None:
    """The database's directory is a file when the exporter starts (the history cannot be opened); then it is not."""
    (tmp_path / "later").write_text("not a directory")
    url = exporter(_cluster(tmp_path, "sqlite:///later/history.db"))
    assert _samples(httpx.get(url, timeout=30).text) == {("homelab_history_up", _labels()): 0.0}
    (tmp_path / "later").unlink()
    _write_history("sqlite:///later/history.db", tmp_path)
    samples = _samples(httpx.get(url, timeout=30).text)
    assert _named(samples, "homelab_history_up") == {_labels(): 1.0}
    assert _named(samples, "homelab_last_sweep_timestamp_seconds") == {_labels(): LATEST.timestamp()}
    log = next(tmp_path.glob("metrics-*.log")).read_text()
    assert "serving homelab_history_up 0: history: cannot create the directory of" in log


def _run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(HOMELAB), *map(str, args)], capture_output=True, text=True, timeout=120, env=_env(), check=False
    )


def test_the_cluster_files_listen_address_is_served_without_the_flag(
    tmp_path: Path, exporter: Callable[..., str]
) -> None:
    port = free_port()
    cluster = _cluster(tmp_path, "sqlite:///history.db", {"listen": f"{LOOPBACK}:{port}", "vram_max_age_s": 20.0})
    _write_history("sqlite:///history.db", tmp_path)
    url = exporter(cluster, port)
    assert url == f"http://{LOOPBACK}:{port}/metrics"
    samples = _samples(httpx.get(url, timeout=30).text)
    assert _named(samples, "homelab_history_up") == {_labels(): 1.0}
    # The latest VRAM round is 30 s old: past the file's 20 s, so no GPU or model is served (600 s by default).
    assert not _named(samples, "homelab_gpu_vram_used_bytes") and not _named(samples, "homelab_model_vram_bytes")
    assert _named(samples, "homelab_endpoint_severity")  # the sweep is served whatever its age
    log = (tmp_path / f"metrics-{port}.log").read_text()
    assert f"serving the metrics of sqlite:///history.db on {url}" in log


def test_a_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    cluster = _cluster(tmp_path, "sqlite:///history.db")
    with socket.socket() as taken:
        taken.bind((LOOPBACK, 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = _run("metrics", "-i", cluster, "--listen", f"{LOOPBACK}:{port}")
    assert done.returncode == 1, done.stderr
    assert f"cannot listen on {LOOPBACK}:{port} (--listen or metrics.listen): Address already in use" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("where", "value", "message"),
    [
        ("flag", "127.0.0.1", "--listen '127.0.0.1': must be HOST:PORT, e.g. 127.0.0.1:9464 or [::1]:9464"),
        ("flag", "127.0.0.1:70000", "--listen '127.0.0.1:70000': port must be 1 to 65535, got 70000"),
        ("file", "::1:9464", "metrics.listen: must be HOST:PORT, e.g. 127.0.0.1:9464 or [::1]:9464, got '::1:9464'"),
    ],
)
def test_a_bad_listen_address_names_where_it_came_from(tmp_path: Path, where: str, value: str, message: str) -> None:
    if where == "file":
        done = _run("metrics", "-i", _cluster(tmp_path, "sqlite:///h.db", {"listen": value}), "--once")
    else:
        done = _run("metrics", "-i", _cluster(tmp_path, "sqlite:///h.db"), "--listen", value)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr


def test_once_prints_one_scrape_as_text_or_json(tmp_path: Path) -> None:
    _write_history("sqlite:///history.db", tmp_path)
    cluster = _cluster(tmp_path, "sqlite:///history.db")
    text = _run("metrics", "-i", cluster, "--once")
    assert text.returncode == 0, text.stderr
    as_json = _run("metrics", "-i", cluster, "--once", "--json")
    assert as_json.returncode == 0, as_json.stderr
    families = {f["name"]: f for f in json.loads(as_json.stdout)}
    assert set(families) == METRIC_NAMES
    from_json = {
        (s["name"], frozenset(s["labels"].items())): s["value"] for f in families.values() for s in f["samples"]
    }
    assert from_json == _samples(text.stdout)


def test_help_says_what_it_serves_and_how_to_choose_the_address() -> None:
    done = _run("metrics", "--help")
    assert done.returncode == 0
    text = " ".join(done.stdout.split())
    for words in ("--listen HOST:PORT", "127.0.0.1:9464", "--once", "Exit codes", "homelab_history_up 0"):
        assert words in text


def test_model_series_and_long_labels_are_bounded_and_counted() -> None:
    """A confused Ollama listing 100 resident models, one with a 300-character name, and a GPU row twice."""
    at = NOW - timedelta(seconds=10)
    models = [
        VramSample(sampled_at=at, node="gpu", source=VramSource.OLLAMA, model=f"m{i}", used_bytes=1000 + i)
        for i in range(100)
    ]
    models.append(VramSample(sampled_at=at, node="nas", source=VramSource.OLLAMA, model="x" * 300, used_bytes=1))
    twice = _gpus("gpu", at, 1) * 2
    snapshot = HistorySnapshot(sweep=None, results=[], vram=models + twice, incidents=[])
    samples = {(s.name, frozenset(s.labels.items())): s.value for f in metric_families(snapshot) for s in f.samples}
    served = _named(samples, "homelab_model_vram_bytes")
    assert len(served) == MAX_MODELS_PER_NODE
    assert min(served.values()) == 1000 + 100 - MAX_MODELS_PER_NODE  # the largest models are the ones kept
    assert all(len(v) <= MAX_LABEL_CHARS for labels in served for _, v in labels)
    assert _named(samples, "homelab_series_left_out") == {_labels(metric="homelab_model_vram_bytes"): 100 - 64 + 1}
    assert len(_named(samples, "homelab_gpu_vram_used_bytes")) == 1


def _dashboard_targets(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        if isinstance(node.get("expr"), str):
            yield node
        for value in node.values():
            yield from _dashboard_targets(value)
    elif isinstance(node, list):
        for item in node:
            yield from _dashboard_targets(item)


def test_the_grafana_dashboard_asks_only_for_metrics_and_labels_the_exporter_serves(tmp_path: Path) -> None:
    _write_history("sqlite:///history.db", tmp_path)
    done = _run("metrics", "-i", _cluster(tmp_path, "sqlite:///history.db"), "--once")
    labels_of: dict[str, set[str]] = {}
    for name, labels in _samples(done.stdout):
        labels_of.setdefault(name, set()).update(key for key, _ in labels)
    dashboard = json.loads(DASHBOARD.read_text())
    assert [i["name"] for i in dashboard["__inputs"]] == ["DS_PROMETHEUS"]
    targets = list(_dashboard_targets(dashboard["panels"]))
    assert len(targets) >= 10
    for target in targets:
        expr = target["expr"]
        names = set(re.findall(r"\bhomelab_[a-z_]+\b", expr))
        assert names, f"no homelab metric in {expr!r}"
        assert names <= set(labels_of), f"{expr!r} asks for {sorted(names - set(labels_of))}, which is not served"
        known = set().union(*(labels_of[n] for n in names))
        used = {m for group in re.findall(r"\bby\s*\(([^)]*)\)", expr) for m in re.findall(r"\w+", group)}
        used |= {m for group in re.findall(r"\{([^}]*)\}", expr) for m in re.findall(r"(\w+)\s*(?:=|!=|=~|!~)", group)}
        used |= set(re.findall(r"\{\{\s*(\w+)\s*\}\}", target.get("legendFormat", "")))
        assert used <= known, f"{expr!r} uses labels {sorted(used - known)} that {sorted(names)} do not have"
        assert target["datasource"] == {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
