"""`homelab sweep` end to end: the real console script against loopback servers.

What the user sees is asserted: the tier tables, the prognosis line, the reasons, the exit
code (0 all up, 1 degraded, 3 critical, 2 invalid file) and the `--json` document.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fixtures.fault_servers import FaultServer, Handler, blackhole, canned, json_route
from tests.fixtures.net import LOOPBACK, free_port
from tests.fixtures.ollama import StandInServer

HOMELAB = Path(sys.executable).with_name("homelab")
StartServer = Callable[[Handler], FaultServer]

OPENAI = canned({"/v1/models": json_route({"object": "list", "data": [{"id": "coder-7b"}]})})
LITELLM = canned({"/health/liveliness": json_route("I'm alive!")})
PROBE = {"connect_s": 1.0, "total_s": 3.0, "slow_ms": 2500}


def _run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "HOMELAB_INVENTORY"} | {"COLUMNS": "200"}
    command = [str(HOMELAB), *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, env=env, check=False)


def _cluster(ollama: str, coder: str, gateway: str, extra: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Two tiers: Ollama and the gateway on the GPU box, a coder on the CPU box."""
    return {
        "name": "cli-test",
        "defaults": {"probe": PROBE},
        "nodes": [
            {
                "name": "gpu-box",
                "tier": "gpu",
                "host": LOOPBACK,
                "endpoints": [
                    {
                        "name": "ollama",
                        "kind": "ollama",
                        "url": ollama,
                        "models": [{"name": "qwen2.5:0.5b", "alias": "chat"}],
                    },
                    {"name": "gateway", "kind": "litellm", "url": gateway},
                ],
            },
            {
                "name": "cpu-box",
                "tier": "cpu",
                "host": LOOPBACK,
                "endpoints": [
                    {
                        "name": "coder",
                        "kind": "openai",
                        "url": coder,
                        "models": [{"name": "coder-7b", "alias": "coder"}],
                    },
                    *(extra or []),
                ],
            },
        ],
        "experts": {"chat": ["chat"], "code": ["coder", "chat"]},
        "gateway": {"endpoint": "gpu-box/gateway"},
    }


def _write(tmp_path: Path, cluster: dict[str, Any]) -> Path:
    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump(cluster, sort_keys=False))
    return path


@pytest.fixture(autouse=True)
def _console_script() -> None:
    assert HOMELAB.exists(), f"no homelab console script next to {sys.executable}: pip install -e ."


def _refused() -> str:
    return f"http://{LOOPBACK}:{free_port()}"


def test_all_up_is_operational_and_exits_0(
    tmp_path: Path, ollama_standin: StandInServer, fault_server: StartServer
) -> None:
    inventory = _write(tmp_path, _cluster(ollama_standin.url, fault_server(OPENAI).url, fault_server(LITELLM).url))
    result = _run("sweep", "--inventory", inventory)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "tier gpu: HEALTHY" in result.stdout
    assert "tier cpu: HEALTHY" in result.stdout
    assert "gpu-box/ollama" in result.stdout and "cpu-box/coder" in result.stdout
    assert "cluster: OPERATIONAL" in result.stdout


def test_lost_expert_with_fallback_is_degraded_and_exits_1(
    tmp_path: Path, ollama_standin: StandInServer, fault_server: StartServer
) -> None:
    inventory = _write(tmp_path, _cluster(ollama_standin.url, _refused(), fault_server(LITELLM).url))
    result = _run("sweep", "-i", inventory)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "tier cpu: DOWN" in result.stdout
    assert "connection refused" in result.stdout
    assert "cluster: DEGRADED" in result.stdout
    assert "code falls back to chat (coder does not serve)" in result.stdout


def test_gateway_down_is_critical_and_exits_3(
    tmp_path: Path, ollama_standin: StandInServer, fault_server: StartServer
) -> None:
    inventory = _write(tmp_path, _cluster(ollama_standin.url, fault_server(OPENAI).url, _refused()))
    result = _run("sweep", "--inventory", inventory)
    assert result.returncode == 3, result.stdout + result.stderr
    assert "tier gpu: DEGRADED" in result.stdout
    assert "cluster: CRITICAL" in result.stdout
    assert "gateway gpu-box/gateway is DOWN (refused)" in result.stdout


def test_invalid_file_exits_2_with_located_problem(tmp_path: Path) -> None:
    cluster = _cluster(_refused(), _refused(), _refused())
    cluster["nodes"][0]["tire"] = cluster["nodes"][0].pop("tier")
    result = _run("sweep", "--inventory", _write(tmp_path, cluster))
    assert result.returncode == 2
    assert "cluster.yaml:" in result.stderr and "'tire'" in result.stderr
    assert result.stdout == ""


def test_json_report_parses_and_probes_run_concurrently(
    tmp_path: Path, ollama_standin: StandInServer, fault_server: StartServer
) -> None:
    holes = [
        {"name": f"hole{i}", "kind": "openai", "url": fault_server(blackhole).url, "probe": {"total_s": 1.5}}
        for i in range(3)
    ]
    cluster = _cluster(ollama_standin.url, fault_server(OPENAI).url, fault_server(LITELLM).url, extra=holes)
    result = _run("sweep", "--inventory", _write(tmp_path, cluster), "--json")
    assert result.returncode == 1, result.stdout + result.stderr
    report = json.loads(result.stdout)
    states = {f"{e['node']}/{e['endpoint']}": (e["state"], e["reason"]) for e in report["endpoints"]}
    assert states == {
        "gpu-box/ollama": ("UP", "ok"),
        "gpu-box/gateway": ("UP", "ok"),
        "cpu-box/coder": ("UP", "ok"),
        "cpu-box/hole0": ("DOWN", "timeout"),
        "cpu-box/hole1": ("DOWN", "timeout"),
        "cpu-box/hole2": ("DOWN", "timeout"),
    }
    tiers = [(t["name"], t["state"], t["down"]) for t in report["tiers"]]
    assert tiers == [("gpu", "HEALTHY", 0), ("cpu", "DEGRADED", 3)]
    assert report["cluster"]["prognosis"] == "DEGRADED"
    assert "qwen2.5:0.5b" in next(e for e in report["endpoints"] if e["endpoint"] == "ollama")["models"]
    # Three 1.5 s timeouts side by side, not one after another.
    assert report["duration_ms"] < (1.5 + 1.0) * 1000
