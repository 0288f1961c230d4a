"""`homelab plan` and `homelab plan estimate` as a user runs them: output, JSON, exit codes, errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from homelab.tiny_gguf import write_tiny_llama
from homelab.vram.estimate import estimate
from homelab.vram.metadata import read_gguf
from homelab.vram.settings import RunSettings
from tests.hostile_gguf import build_gguf, load_cases
from tests.vram_shapes import write_bare_gguf

ROOT = Path(__file__).resolve().parents[1]
HOMELAB = Path(sys.executable).parent / "homelab"
EXAMPLE = ROOT / "examples" / "three-tier.yaml"
INTERFACE = ("weights_gpu_bytes", "weights_cpu_bytes", "kv_bytes", "compute_bytes", "gpu_total_bytes",
             "cpu_total_bytes", "n_gpu_layers")  # fmt: skip


def homelab(*args: str | Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in {"FORCE_COLOR", "COLUMNS", "HOMELAB_INVENTORY"}}
    return subprocess.run(
        [str(HOMELAB), *map(str, args)], cwd=ROOT, env=env | {"NO_COLOR": "1", "COLUMNS": "200"},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def assert_clean_error(result: subprocess.CompletedProcess[str], message: str) -> None:
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_llama(tmp_path_factory.mktemp("cli-gguf") / "tiny.gguf", n_layer=4)


def test_plan_of_the_example_inventory_reads_like_a_plan() -> None:
    result = homelab("plan", "--inventory", EXAMPLE)

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "24.0 GiB GPU (mark-i, RTX 4090)"
    assert "24.0 GiB GPU (mark-ii, RTX 3090)" in lines
    general = next(line for line in lines if line.strip().startswith("general Q4_K_M"))
    assert general.endswith("28/49 layers on GPU")
    assert any(line.strip().startswith("coder Q4_K_M") and line.endswith("all 29 layers") for line in lines)
    assert any(line.strip().startswith("total") and "% of 24.0 GiB; 0.5 GiB reserve" in line for line in lines)
    assert any(line.strip().startswith("chat Q4_K_M") and line.endswith("all 49 layers") for line in lines)  # Ollama
    assert lines[-1].startswith("estimated from names, not GGUF files: chat, reason, vision, coder, general, quick")


def test_plan_json_has_every_gpu_and_model() -> None:
    result = homelab("plan", "-i", EXAMPLE, "--json")

    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    mark_ii = plan["gpus"][1]
    assert [p["model"] for p in mark_ii["placements"]] == ["coder", "general", "quick"]
    assert mark_ii["used_bytes"] == sum(p["estimate"]["gpu_total_bytes"] for p in mark_ii["placements"])
    assert mark_ii["free_bytes"] >= 0
    # mark-i's Ollama models without deploy: (its node is not reachable here) are planned too.
    assert [(c["model"], c["source"]) for c in plan["cpu_only"]] == [("vision", "name")]
    assert [u["model"] for u in plan["unsized"]] == ["embed"]


def test_plan_with_a_model_that_does_not_fit(tmp_path: Path) -> None:
    inventory = tmp_path / "small.yaml"
    inventory.write_text(
        "nodes:\n"
        "  - name: box\n    tier: gpu\n    host: box.home.arpa\n    gpus: [{name: RTX 3060, vram_gib: 12}]\n"
        "    endpoints:\n"
        "      - name: big\n        kind: llamacpp\n        url: http://box.home.arpa:3001\n"
        "        models: [{name: qwen2.5-72b, alias: big}]\n"
        "        container: {image: llama, model_file: qwen2.5-72b-instruct-q4_k_m.gguf, ctx_size: 8192}\n"
    )
    result = homelab("plan", "-i", inventory)

    assert result.returncode == 0, result.stderr
    assert "CPU only: big (needs 44.1 GiB with 8k context, 11.5 GiB free on box GPU0 (RTX 3060))" in result.stdout
    assert "(nothing placed)" in result.stdout


def test_plan_needs_an_inventory() -> None:
    assert_clean_error(homelab("plan"), "homelab plan needs --inventory FILE")


def test_plan_with_an_invalid_inventory(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("nodes: []\n")
    result = homelab("plan", "-i", bad)
    assert result.returncode == 2 and "Traceback" not in result.stderr


def test_plan_with_a_bad_lineup_file(tmp_path: Path) -> None:
    lineup = tmp_path / "lineup.yaml"
    lineup.write_text("models: [{model: nobody}]\n")
    assert_clean_error(homelab("plan", "-i", EXAMPLE, "--lineup", lineup), "serves: nobody")


def test_estimate_json_matches_the_library(tiny: Path) -> None:
    result = homelab("plan", "estimate", tiny, "--ctx", "1024", "--ngl", "3", "--parallel", "2", "--cache-type", "q8_0",
                     "--flash-attn", "--json")  # fmt: skip

    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert all(name in data for name in INTERFACE)
    settings = RunSettings(
        ctx_size=1024, n_gpu_layers=3, parallel=2, cache_type_k="q8_0", cache_type_v="q8_0", flash_attn=True
    )
    expected = estimate(read_gguf(tiny), settings)
    assert {k: data[k] for k in INTERFACE} == {k: getattr(expected, k) for k in INTERFACE}
    assert (data["settings"]["parallel"], data["settings"]["cache_type_v"]) == (2, "q8_0")


def test_estimate_table_and_name_estimates(tiny: Path) -> None:
    table = homelab("plan", "estimate", tiny, "--ctx", "512")
    named = homelab("plan", "estimate", "qwen2.5-14b Q4_K_M", "--ctx", "8192", "--flash-attn")

    assert table.returncode == 0 and "tiny.gguf: context 512 (512 per sequence), 5/5 layers on GPU" in table.stdout
    assert "KV cache" in table.stdout and "total" in table.stdout
    assert named.returncode == 0 and "qwen2.5-14b Q4_K_M (estimated from its name)" in named.stdout


def test_estimate_fit_budget(tiny: Path) -> None:
    fitted = json.loads(homelab("plan", "estimate", "qwen2.5-14b", "--ctx", "8192", "--fit-gib", "6", "--json").stdout)
    assert 0 < fitted["n_gpu_layers"] < 49 and fitted["gpu_total_bytes"] <= 6 * 1024**3

    assert_clean_error(homelab("plan", "estimate", tiny, "--fit-gib", "0.01"), "not even -ngl 0 fits")


def test_estimate_bad_inputs_are_clean_errors(tmp_path: Path, tiny: Path) -> None:
    truncated = tmp_path / "truncated.gguf"
    truncated.write_bytes(tiny.read_bytes()[:5000])
    text = tmp_path / "notes.gguf"
    text.write_text("not a model\n")

    assert_clean_error(homelab("plan", "estimate", truncated), "corrupt or truncated GGUF")
    assert_clean_error(homelab("plan", "estimate", text), "not a GGUF file")
    assert_clean_error(homelab("plan", "estimate", tmp_path / "missing.gguf"), "cannot read")
    assert_clean_error(
        homelab("plan", "estimate", write_bare_gguf(tmp_path / "rwkv.gguf", "rwkv6")),
        "architecture 'rwkv6' is not modelled",
    )
    assert_clean_error(homelab("plan", "estimate", "my-favourite-model"), "no parameter count")
    assert_clean_error(homelab("plan", "estimate", tiny, "--cache-type", "q7"), "cache_type_k: Input should be")
    assert_clean_error(homelab("plan", "estimate", tiny, "--cache-type", "q8_0"), "needs flash attention")


def test_estimate_of_a_fifo_or_dev_zero_is_refused_at_once(tmp_path: Path) -> None:
    """Once, `plan estimate` on a FIFO waited forever for a writer, and /dev/zero was read without end."""
    fifo = tmp_path / "model.gguf"
    os.mkfifo(fifo)
    lineup = tmp_path / "lineup.yaml"
    os.mkfifo(lineup)

    assert_clean_error(homelab("plan", "estimate", fifo), f"{fifo}: cannot read: not a regular file")
    assert_clean_error(homelab("plan", "estimate", "/dev/zero"), "/dev/zero: cannot read: not a regular file")
    assert_clean_error(homelab("plan", "-i", EXAMPLE, "--lineup", lineup), f"{lineup}: not a regular file")


def test_plan_with_a_nul_byte_in_a_lineup_gguf_path(tmp_path: Path) -> None:
    lineup = tmp_path / "lineup.yaml"
    lineup.write_text('models:\n  - model: general\n    gguf: "/srv/a\\0b.gguf"\n')
    assert_clean_error(homelab("plan", "-i", EXAMPLE, "--lineup", lineup), "a file name cannot hold a NUL byte")


@pytest.mark.parametrize(("case", "message"), [
    ("array-claims-2^40-items", "general.languages: array length is 1,099,511,627,776"),
    ("block-count-nan", "metadata key 'llama.block_count': nan is not a whole number"),
    ("head-count-0", "metadata key 'llama.attention.head_count': 0 is out of range"),
])  # fmt: skip
def test_estimate_of_a_hostile_gguf_names_file_and_key(tmp_path: Path, case: str, message: str) -> None:
    """Three rows of tests/cases/hostile/gguf as the user meets them (the table itself runs in-process)."""
    path = tmp_path / f"{case}.gguf"
    path.write_bytes(build_gguf(next(c for c in load_cases() if c["id"] == case)))

    result = homelab("plan", "estimate", path)
    assert_clean_error(result, f"{path}: ")
    assert message in result.stderr
