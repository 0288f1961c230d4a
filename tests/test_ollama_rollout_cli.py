"""`homelab rollout` on an Ollama node as a user runs it: the console script against an Ollama stand-in (not Ollama).

Asserted is what the user sees: the plan, the step table and the load checks, the exit code
(0 done or nothing to do, 1 failed, 2 bad input) and the `--json` document.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.net import LOOPBACK, free_port
from tests.fixtures.ollama_lab import OllamaLab, deployed, ollama_lab  # noqa: F401 (fixture)

HOMELAB = Path(sys.executable).with_name("homelab")
ALPHA = deployed("alpha", "a", "alpha.gguf")
BETA = deployed("beta:q8", "b", "beta.gguf", num_ctx=1024)


def homelab(*args: str | Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "HOMELAB_INVENTORY"} | {"COLUMNS": "250", "NO_COLOR": "1"}
    return subprocess.run(
        [str(HOMELAB), *map(str, args)], capture_output=True, text=True, timeout=120, env=env, check=False
    )


def test_dry_run_json_then_a_rollout_then_nothing_to_do(ollama_lab: OllamaLab) -> None:
    lab = ollama_lab
    lab.write_model("alpha.gguf", seed=1)
    lab.write_model("beta.gguf", seed=2)
    server = lab.standin("box")
    options = ["rollout", "--inventory", lab.write_cluster({"box": [ALPHA, BETA]}), "--node", "box"]
    options += ["--models-dir", lab.models_dir]

    planned = homelab(*options, "--dry-run", "--json")

    assert planned.returncode == 0, planned.stderr
    report = json.loads(planned.stdout)
    assert (report["node"], report["dry_run"], report["failure"], report["containers"]) == ("box", True, None, None)
    steps = report["ollama"]["plan"]["steps"]
    assert [(s["kind"], s.get("file") or s.get("model")) for s in steps] == [
        ("upload_blob", "alpha.gguf"), ("upload_blob", "beta.gguf"), ("create_model", "alpha:latest"),
        ("create_model", "beta:q8"), ("preload_model", "alpha:latest"), ("preload_model", "beta:q8"),
    ]  # fmt: skip
    assert steps[2]["request"]["parameters"] == {"num_ctx": 512, "num_gpu": 3}
    assert report["ollama"]["vram"][0].startswith("a: all layers on box GPU0 (Lab GPU)")
    assert server.standin.uploads == [] and server.standin.created == [] and server.standin.loaded == {}

    gateway = lab.models_dir.parent / "litellm.yaml"
    done = homelab(*options, "--gateway-config", gateway)

    assert done.returncode == 0, done.stderr
    assert f"gateway: {gateway} regenerated; restart the proxy to load it" in done.stdout
    assert "model: ollama_chat/alpha" in gateway.read_text(), "an Ollama-only node regenerates it too"
    assert "Ollama rollout on box" in done.stdout
    assert "preload beta:q8 on ollama (keep_alive -1): just created" in done.stdout
    assert "alpha:latest on ollama: size_vram 2.3 MiB, plan 2.3 MiB (+0.0 MiB): matches the plan" in done.stdout
    assert server.standin.created == ["alpha:latest", "beta:q8"]

    again = homelab(*options, "--json")

    assert again.returncode == 0, again.stderr
    report = json.loads(again.stdout)
    assert report["ollama"]["plan"]["steps"] == [] and report["ollama"]["outcomes"] == []
    assert "model alpha:latest on ollama loaded" in report["ollama"]["plan"]["unchanged"]
    assert [u.status for u in server.standin.uploads] == [201, 201]


def test_bad_input_is_exit_2_without_a_traceback(ollama_lab: OllamaLab) -> None:
    lab = ollama_lab
    lab.write_model("alpha.gguf", seed=1)
    lab.standin("box")
    cluster = lab.write_cluster({"box": [ALPHA, BETA]})

    no_folder = homelab("rollout", "--inventory", cluster, "--node", "box")
    missing = homelab("rollout", "--inventory", cluster, "--node", "box", "--models-dir", lab.models_dir)

    assert no_folder.returncode == 2
    assert "node box: its Ollama models are created from GGUF files (alpha.gguf, beta.gguf)" in no_folder.stderr
    assert "--models-dir" in no_folder.stderr
    assert missing.returncode == 2
    assert f"not in {lab.models_dir}: beta.gguf" in missing.stderr
    assert "Traceback" not in no_folder.stderr + missing.stderr


def test_an_endpoint_that_does_not_answer_is_exit_1_naming_it(ollama_lab: OllamaLab) -> None:
    lab = ollama_lab
    lab.write_model("alpha.gguf", seed=1)
    lab.standin("box")
    cluster = lab.write_cluster({"box": [ALPHA]})
    dead = cluster.read_text().replace(lab.standins["box"].url, f"http://{LOOPBACK}:{free_port()}")
    cluster.write_text(dead)

    result = homelab("rollout", "--inventory", cluster, "--node", "box", "--models-dir", lab.models_dir)

    assert result.returncode == 1
    assert "box/ollama: check blob sha256:" in result.stderr and "cannot talk to" in result.stderr
    assert "Traceback" not in result.stderr


def _rollout_json(cluster: Path, models_dir: Path) -> dict[str, Any]:
    result = homelab("rollout", "--inventory", cluster, "--node", "box", "--models-dir", models_dir, "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout)["ollama"]  # type: ignore[no-any-return]


def _kinds(report: dict[str, Any]) -> list[str]:
    return [step["kind"] for step in report["plan"]["steps"]]


@pytest.mark.parametrize("version", ["0.33.0", "0.12.11"])
def test_a_second_rollout_creates_and_uploads_nothing_also_after_a_restart(
    ollama_lab: OllamaLab,
    version: str,
) -> None:
    lab = ollama_lab
    lab.write_model("alpha.gguf", seed=1)
    server = lab.standin("box", version=version)
    cluster = lab.write_cluster({"box": [ALPHA]})

    first = _rollout_json(cluster, lab.models_dir)
    second = _rollout_json(cluster, lab.models_dir)
    restarted = lab.restart("box", hours_later=2)
    third = _rollout_json(cluster, lab.models_dir)

    assert _kinds(first) == ["upload_blob", "create_model", "preload_model"]
    assert first["failure"] is None and server.standin.created == ["alpha:latest"]
    up_to_date = "model alpha:latest on ollama up to date, from alpha.gguf, num_ctx 512, num_gpu 3"
    assert _kinds(second) == [] and up_to_date in second["plan"]["unchanged"]
    assert [u.status for u in server.standin.uploads] == [201], "the second rollout uploaded nothing"
    # After the restart the model is there but not loaded; 0.30+ pruned the uploaded blob (its model
    # uses the rewritten one), yet nothing is uploaded or created again: only the preload.
    assert restarted.standin.pruned == ([] if version == "0.12.11" else [first["plan"]["steps"][0]["digest"]])
    assert _kinds(third) == ["preload_model"] and third["failure"] is None
    assert restarted.standin.uploads == [] and restarted.standin.created == []
    (check,) = third["checks"]
    assert (check["version"], check["comparable"]) == (version, version != "0.12.11")
    assert check["matches"] is (True if version != "0.12.11" else None)
    shown = homelab("rollout", "--inventory", cluster, "--node", "box", "--models-dir", lab.models_dir)
    verdict = "matches the plan" if version != "0.12.11" else "not comparable with the plan (Ollama 0.12.11"
    assert shown.returncode == 0 and "✓ alpha:latest on ollama: size_vram" in shown.stdout and verdict in shown.stdout


def test_an_embedding_model_deploys_and_is_preloaded_through_embed(ollama_lab: OllamaLab) -> None:
    lab = ollama_lab
    lab.write_model("embed.gguf", seed=3, embedding=True)
    server = lab.standin("box")
    cluster = lab.write_cluster({"box": [deployed("embedder", "e", "embed.gguf", keep_alive="30m")]})

    report = _rollout_json(cluster, lab.models_dir)

    assert report["failure"] is None and _kinds(report) == ["upload_blob", "create_model", "preload_model"]
    assert server.standin.models["embedder:latest"].capabilities == ("embedding",)
    requests = server.standin.requests
    assert ("POST", "/api/embed") in requests and ("POST", "/api/generate") not in requests
    assert list(server.standin.resident()) == ["embedder:latest"]
    assert server.standin.sessions["embedder:latest"] == 1800


def test_keep_alive_without_a_unit_is_exit_2_with_its_line(ollama_lab: OllamaLab) -> None:
    lab = ollama_lab
    lab.write_model("alpha.gguf", seed=1)
    server = lab.standin("box")
    cluster = lab.write_cluster({"box": [deployed("alpha", "a", "alpha.gguf", keep_alive="300")]})
    line = next(n for n, text in enumerate(cluster.read_text().splitlines(), 1) if "keep_alive" in text)

    result = homelab("rollout", "--inventory", cluster, "--node", "box", "--models-dir", lab.models_dir)

    assert result.returncode == 2
    assert f"{cluster}:{line}: nodes[0].endpoints[0].models[0].deploy.keep_alive: must be seconds" in result.stderr
    assert "a number in quotes needs a unit" in result.stderr and "Traceback" not in result.stderr
    assert server.standin.requests == [("GET", "/api/version")], "only the fixture's readiness check reached it"
