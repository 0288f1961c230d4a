"""`homelab rollout` end to end: the real console script, a real engine, real llama-server containers.

Asserted is what the user sees: the plan and its reasons, the step table, the exit code
(0 done or nothing to do, 1 failed, 2 bad input) and the `--json` document.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest
import yaml

from tests.fixtures.net import free_port
from tests.fixtures.rollout import EndpointPlan, RolloutLab, chat, rollout_lab  # noqa: F401 (fixture)
from tests.offline_node import offline_cluster

HOMELAB = Path(sys.executable).with_name("homelab")


def homelab(*args: str | Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "HOMELAB_INVENTORY"} | {"COLUMNS": "250"}
    command = [str(HOMELAB), *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, env=env, check=False)


@pytest.mark.docker
@pytest.mark.llama
def test_dry_run_prints_the_plan_and_changes_nothing_then_a_rollout_is_idempotent(rollout_lab: RolloutLab) -> None:
    lab = rollout_lab
    lab.write_model("model.gguf", seed=7)
    endpoint = EndpointPlan(f"cli{lab.tag}", "model.gguf")
    cluster = lab.write_cluster([endpoint])
    container = f"homelab-cli{lab.tag}"
    options = ["rollout", "--inventory", cluster, "--node", "gpu2", "--models-dir", lab.models_dir]
    options += ["--helper-image", lab.helper_image]

    planned = homelab(*options, "--dry-run")

    assert planned.returncode == 0, planned.stderr
    assert "rollout plan on gpu2" in planned.stdout
    # The file's view first (start order and gates), then the plan checked against the engine.
    assert f"containers on gpu2 ({lab.docker_engine.base_url}), in start order" in planned.stdout
    assert f"gate {container}: llamacpp probe of http://127.0.0.1:{endpoint.port}/health then " in planned.stdout
    assert "not checked" not in planned.stdout
    for line in (
        f"create volume {lab.volume}: missing",
        f"copy model.gguf into volume {lab.volume}: not in the volume",
        f"create {container}: missing",
    ):
        assert line in planned.stdout
    with closing(lab.client()) as client:
        assert lab.volume not in {v.name for v in client.volumes.list()}
        assert container not in {c.name for c in client.containers.list(all=True)}

    gateway = lab.root / "litellm.yaml"
    done = homelab(*options, "--gateway-config", gateway, "--json")

    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert [o["status"] for o in report["containers"]["outcomes"]] == ["done", "done", "done"]
    assert report["failure"] is None
    assert report["gateway"] == f"{gateway} regenerated; restart the proxy to load it"
    assert f"model: openai/{endpoint.name}" in gateway.read_text()
    chat(endpoint.port)

    again = homelab(*options, "--gateway-config", gateway)

    assert again.returncode == 0, again.stderr
    assert "rollout on gpu2: nothing to do" in again.stdout
    assert f"gateway: {gateway} up to date" in again.stdout
    assert f"= volume {lab.volume} holds model.gguf, sha256 ok" in again.stdout
    assert f"= container {container} up to date" in again.stdout


def test_bad_input_exits_2_and_a_dead_engine_exits_1(tmp_path: Path) -> None:
    models = tmp_path / "models"
    models.mkdir()
    cluster = tmp_path / "cluster.yaml"
    node = {
        "name": "gpu2",
        "tier": "secondary",
        "host": "127.0.0.1",
        "docker": {"url": "unix:///nonexistent/docker.sock"},
        "endpoints": [
            {
                "name": "solo",
                "kind": "llamacpp",
                "url": "http://127.0.0.1:18080",
                "container": {"image": "llama:none", "model_file": "model.gguf"},
            }
        ],
    }
    cluster.write_text(yaml.safe_dump({"nodes": [node]}))
    base = ["rollout", "--inventory", cluster, "--node", "gpu2", "--models-dir", models]

    unknown = homelab("rollout", "--inventory", cluster, "--node", "nope", "--models-dir", models)
    assert unknown.returncode == 2
    assert "no node 'nope' in" in unknown.stderr

    missing = homelab(*base)
    assert missing.returncode == 2
    assert f"not in {models}: model.gguf" in missing.stderr

    (models / "model.gguf").write_bytes(b"GGUF")
    dead = homelab(*base)
    assert dead.returncode == 1
    assert "node gpu2 (unix:///nonexistent/docker.sock): the Docker engine does not answer" in dead.stderr
    assert "Traceback" not in dead.stderr


@pytest.mark.docker
@pytest.mark.llama
def test_a_gpu_node_gets_the_vram_plans_layers_and_a_model_too_big_is_refused_before_any_change(
    rollout_lab: RolloutLab,
) -> None:
    lab = rollout_lab
    lab.write_model("model.gguf", n_layer=3)
    endpoint = EndpointPlan(f"vram{lab.tag}", "model.gguf")
    cluster = lab.cluster([endpoint])
    path = lab.root / "gpu.yaml"
    options = ["rollout", "--inventory", path, "--node", "gpu2", "--models-dir", lab.models_dir]
    options += ["--helper-image", lab.helper_image]

    cluster["nodes"][0]["gpus"] = [{"name": "RTX 3090", "vram_gib": 24}]
    path.write_text(yaml.safe_dump(cluster))
    planned = homelab(*options, "--dry-run", "--json")

    assert planned.returncode == 0, planned.stderr
    report = json.loads(planned.stdout)
    [create] = [s for s in report["containers"]["plan"]["steps"] if s["kind"] == "create_container"]
    assert create["spec"]["gpu_layers"] == 4  # 3 blocks and the output layer
    [line] = report["containers"]["vram"]
    assert line.startswith(f"{endpoint.name}: all layers on gpu2 GPU0 (RTX 3090), ")

    cluster["nodes"][0]["gpus"] = [{"name": "tiny", "vram_gib": 0.5}]
    path.write_text(yaml.safe_dump(cluster))
    refused = homelab(*options)

    assert refused.returncode == 2
    assert f"node gpu2: does not fit its GPUs: {endpoint.name}: needs " in refused.stderr
    assert "Traceback" not in refused.stderr
    with closing(lab.client()) as client:
        assert lab.volume not in {v.name for v in client.volumes.list()}


@pytest.mark.parametrize(
    ("engine_url", "why"),
    [
        ("unix:///nonexistent/docker.sock", "No such file or directory"),
        (f"tcp://127.0.0.1:{free_port()}", "Connection refused"),
    ],
)
def test_a_dry_run_without_a_live_engine_shows_the_plan_from_the_file(
    tmp_path: Path, engine_url: str, why: str
) -> None:
    cluster = offline_cluster(tmp_path, engine_url)
    base = ["rollout", "--inventory", cluster, "--node", "gpu2", "--models-dir", tmp_path / "models", "--dry-run"]

    shown = homelab(*base)

    assert shown.returncode == 0, shown.stderr
    text = shown.stdout
    assert text.index("homelab-chat") < text.index("homelab-coder"), "start order, not file order"
    assert "│ 1 │ homelab-chat  │ chat.gguf (models) │ 1024 │ 3 (the VRAM plan)    │ no      │" in text
    assert "│ 2 │ homelab-coder │ coder.gguf (code)  │ 4096 │ 2 (the cluster file) │ always  │" in text
    assert "gate homelab-chat: llamacpp probe of http://127.0.0.1:" in text and "/health then http" in text
    assert "run homelab-coder: llama:none -m /models/coder.gguf --host 0.0.0.0 --port 8080 -c 4096 -np 1 " in text
    assert "-ngl 2" in text and "GPUs: all" in text
    assert "up to 300 s or 200 probes" in text
    assert "ollama ollama (http://127.0.0.1:" in text and "qwen2.5:0.5b from qwen2.5:0.5b, num_ctx 2048" in text
    assert "! containers: not checked against the engine (node gpu2 (" in text and why in text
    assert "! Ollama models: not checked against the Ollama endpoints (gpu2/ollama: " in text
    assert "Traceback" not in shown.stderr

    as_json = homelab(*base, "--json")

    assert as_json.returncode == 0, as_json.stderr
    report = json.loads(as_json.stdout)
    assert report["containers"] is None and report["ollama"] is None and report["failure"] is None
    assert report["engine_not_checked"].startswith(f"node gpu2 ({engine_url}): the Docker engine does not answer")
    assert "Connection refused" in report["ollama_not_checked"]
    chat, coder = report["preview"]["containers"]
    assert (chat["name"], chat["position"], chat["restart_policy"], chat["gpu_layers"]) == ("homelab-chat", 1, "no", 3)
    assert (coder["volume"], coder["model_file"]) == ("code", "coder.gguf")
    assert coder["gpu_layers_from"] == "the cluster file"
    assert chat["published"].endswith(" -> 8080") and chat["gpus"] == "all"
    assert chat["command"][:4] == ["-m", "/models/chat.gguf", "--host", "0.0.0.0"]
    health, models = chat["gate"]["urls"]
    assert health.endswith("/health") and models.endswith("/v1/models") and chat["gate"]["timeout_s"] == 300.0
    [model] = report["preview"]["ollama"]
    assert model["parameters"]["num_ctx"] == 2048 and model["model"] == "qwen2.5:0.5b"


@pytest.mark.docker
@pytest.mark.llama
def test_a_symlinked_gateway_config_is_refused_before_the_engine_changes(rollout_lab: RolloutLab) -> None:
    lab = rollout_lab
    lab.write_model("model.gguf", seed=8)
    cluster = lab.write_cluster([EndpointPlan(f"gw{lab.tag}", "model.gguf")])
    options = ["rollout", "--inventory", cluster, "--node", "gpu2", "--models-dir", lab.models_dir]
    options += ["--helper-image", lab.helper_image]
    real = lab.root / "real-litellm.yaml"
    real.write_text("model_list: []\n")
    link = lab.root / "litellm.yaml"
    link.symlink_to(real)

    # The other targets it refuses are rows of tests/cases/hostile/gateway/rollout-*.yaml.
    refused = homelab(*options, "--gateway-config", link)

    assert refused.returncode == 2, (refused.stdout, refused.stderr)
    assert f"{link}: is a symlink; refusing to write through it" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert real.read_text() == "model_list: []\n"
    with closing(lab.client()) as client:
        assert lab.volume not in {v.name for v in client.volumes.list()}, "refused before anything changed"
        assert not [c for c in client.containers.list(all=True) if c.name.startswith(lab.prefix)]
