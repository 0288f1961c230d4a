"""`homelab plan` on Ollama models without `deploy:`: sized by their node, by their tag, or unsized with why.

The node is the Ollama stand-in (homelab_app.ollama_standin, not Ollama), answering `/api/show`
with `verbose: true` as Ollama does; "down" is a free port nobody listens on.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

from homelab.inventory import load_inventory
from homelab.tiny_gguf import write_tiny_llama
from homelab.vram.lineup import ollama_default_ctx
from homelab_app.ollama_standin import ModelSpec
from tests.fixtures.net import LOOPBACK, free_port
from tests.fixtures.ollama import StandInServer

StartStandIn = Callable[[Sequence[ModelSpec]], StandInServer]
ROOT = Path(__file__).resolve().parents[1]
HOMELAB = Path(sys.executable).parent / "homelab"

# qwen2.5:14b as Ollama describes its GGUF; 30 blocks instead of 48, so a shape built from the
# node's keys cannot be mistaken for the name estimator's qwen2.5-14b.
QWEN_KEYS = {
    "qwen2.block_count": 30, "qwen2.embedding_length": 5120, "qwen2.attention.head_count": 40,
    "qwen2.attention.head_count_kv": 8, "qwen2.feed_forward_length": 13824,
}  # fmt: skip
QWEN = ModelSpec(
    name="qwen2.5:14b", size=5_600_000_000, family="qwen2", parameter_size="9.3B", quantization_level="Q4_K_M",
    context_length=32768, gguf_keys=QWEN_KEYS, n_vocab=152064,
)  # fmt: skip
EMBED = ModelSpec(name="nomic-embed-text", size=274_302_450, family="nomic-bert", parameter_size="137M")


def homelab(*args: str | Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in {"FORCE_COLOR", "COLUMNS", "HOMELAB_INVENTORY"}}
    return subprocess.run(
        [str(HOMELAB), *map(str, args)], cwd=ROOT, env=env | {"NO_COLOR": "1", "COLUMNS": "300"},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def cluster(tmp_path: Path, url: str, tags: dict[str, str], vram_gib: int = 24) -> Path:
    """One GPU node whose Ollama serves `tags` (alias -> tag), none with `deploy:`."""
    models = "".join(f"          - {{name: {tag!r}, alias: {alias}}}\n" for alias, tag in tags.items())
    path = tmp_path / "cluster.yaml"
    path.write_text(
        "defaults:\n  probe: {connect_s: 2, total_s: 5}\n"
        "nodes:\n"
        f"  - name: box\n    tier: gpu\n    host: box.home.arpa\n    gpus: [{{name: RTX 3090, vram_gib: {vram_gib}}}]\n"
        "    endpoints:\n"
        f"      - name: ollama\n        kind: ollama\n        url: {url}\n        models:\n{models}"
    )
    return path


def plan_json(path: Path) -> dict[str, Any]:
    result = homelab("plan", "-i", path, "--json")
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout))


def placements(plan: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {p["model"]: p for g in plan["gpus"] for p in g["placements"]}


def test_a_reachable_node_sizes_its_models_from_its_keys(ollama_standin_factory: StartStandIn, tmp_path: Path) -> None:
    server = ollama_standin_factory([QWEN])
    path = cluster(tmp_path, server.url, {"chat": "qwen2.5:14b"})

    chat = placements(plan_json(path))["chat"]
    text = homelab("plan", "-i", path)

    # 30 blocks: the node's keys, not the 48 of the name estimator's qwen2.5-14b.
    assert (chat["source"], chat["estimate"]["n_layers_total"], chat["estimate"]["estimated_shape"]) == (
        "ollama",
        31,
        True,
    )
    assert chat["estimate"]["n_ctx"] == 32768  # Ollama's default on a 24 GiB node, within the model's 32k
    line = next(x for x in text.stdout.splitlines() if x.strip().startswith("chat Q4_K_M"))
    assert line.split()[4:] == ["node", "counts", "all", "31", "layers"], text.stdout
    assert "estimated from names" not in text.stdout


def test_a_node_that_reports_the_tensors_gives_the_files_shape(
    ollama_standin_factory: StartStandIn, tmp_path: Path
) -> None:
    server = ollama_standin_factory([])
    blob = write_tiny_llama(tmp_path / "tiny.gguf", n_layer=4).read_bytes()
    digest = f"sha256:{hashlib.sha256(blob).hexdigest()}"
    assert httpx.post(f"{server.url}/api/blobs/{digest}", content=blob, timeout=10).status_code == 201
    create = {"model": "tiny", "files": {"tiny.gguf": digest}, "stream": False}
    assert httpx.post(f"{server.url}/api/create", json=create, timeout=30).status_code == 200
    path = cluster(tmp_path, server.url, {"small": "tiny"})

    small = placements(plan_json(path))["small"]
    text = homelab("plan", "-i", path).stdout

    assert (small["source"], small["estimate"]["estimated_shape"], small["estimate"]["n_layers_total"]) == (
        "ollama",
        False,
        5,
    )
    line = next(x for x in text.splitlines() if x.strip().startswith("small"))
    assert line.split()[-5:] == ["GiB", "node", "all", "5", "layers"], text


def test_a_node_that_is_down_leaves_the_tag_to_the_name_estimator(tmp_path: Path) -> None:
    path = cluster(tmp_path, f"http://{LOOPBACK}:{free_port()}", {"chat": "qwen2.5:14b"})

    chat = placements(plan_json(path))["chat"]
    text = homelab("plan", "-i", path).stdout

    assert (chat["source"], chat["estimate"]["n_layers_total"], chat["estimate"]["n_ctx"]) == ("name", 49, 32768)
    line = next(x for x in text.splitlines() if x.strip().startswith("chat Q4_K_M"))
    assert "name estimate" in line and line.endswith("all 49 layers")
    assert text.splitlines()[-1].startswith("estimated from names, not GGUF files: chat")


def test_a_tag_nothing_can_size_says_why(ollama_standin_factory: StartStandIn, tmp_path: Path) -> None:
    down = cluster(tmp_path, f"http://{LOOPBACK}:{free_port()}", {"embed": "nomic-embed-text"})
    server = ollama_standin_factory([QWEN])  # up, but without the embedding model
    (tmp_path / "up").mkdir()
    missing = cluster(tmp_path / "up", server.url, {"embed": "nomic-embed-text"})

    [unsized] = plan_json(down)["unsized"]
    text = homelab("plan", "-i", down).stdout
    [not_there] = plan_json(missing)["unsized"]

    assert unsized["model"] == "embed"
    assert unsized["reason"].startswith("node: not reachable: box/ollama: ask its version: cannot talk to")
    assert unsized["reason"].endswith(
        "name: 'nomic-embed-text': no parameter count (like '14b') in the name; give its GGUF"
    )
    assert f"not sized: embed ({unsized['reason']})" in text
    assert "(nothing placed)" in text
    assert not_there["reason"].startswith("node: box/ollama: show nomic-embed-text: Ollama has no model")


def test_a_model_the_node_cannot_size_falls_back_to_its_tag(
    ollama_standin_factory: StartStandIn, tmp_path: Path
) -> None:
    # No parameter count and no tensor table: the node's answer cannot size it, its tag can.
    bare = ModelSpec(name="mystery:7b", size=4_000_000_000, family="mystery", parameter_size="?")
    server = ollama_standin_factory([bare])
    path = cluster(tmp_path, server.url, {"odd": "mystery:7b"})

    odd = placements(plan_json(path))["odd"]

    assert (odd["source"], odd["estimate"]["estimated_shape"]) == ("name", True)


def test_without_asking_the_nodes_every_model_is_sized_by_its_tag(
    ollama_standin_factory: StartStandIn, tmp_path: Path
) -> None:
    server = ollama_standin_factory([QWEN])
    path = cluster(tmp_path, server.url, {"chat": "qwen2.5:14b"})

    result = homelab("plan", "-i", path, "--no-ask-nodes", "--json")

    assert result.returncode == 0, result.stderr
    assert placements(json.loads(result.stdout))["chat"]["source"] == "name"
    assert placements(plan_json(path))["chat"]["source"] == "ollama"


@pytest.mark.parametrize(("gpus", "ctx"), [([8], 4096), ([24], 32768), ([16, 8], 32768), ([24, 24], 262144)])
def test_ollamas_default_context_follows_the_nodes_vram(tmp_path: Path, gpus: list[int], ctx: int) -> None:
    listed = ", ".join(f"{{name: GPU, vram_gib: {g}}}" for g in gpus)
    path = tmp_path / "c.yaml"
    path.write_text(f"nodes:\n  - name: box\n    tier: gpu\n    host: box.home.arpa\n    gpus: [{listed}]\n")

    assert ollama_default_ctx(load_inventory(path).nodes[0]) == ctx


def test_a_tag_is_not_looked_up_as_a_file_in_the_models_folder(tmp_path: Path) -> None:
    models = tmp_path / "models"
    models.mkdir()
    write_tiny_llama(models / "qwen2.5:14b", n_layer=4)  # a file that happens to bear the tag's name
    path = cluster(tmp_path, f"http://{LOOPBACK}:{free_port()}", {"chat": "qwen2.5:14b"})

    result = homelab("plan", "-i", path, "--models-dir", models, "--json")

    assert result.returncode == 0, result.stderr
    chat = placements(json.loads(result.stdout))["chat"]
    assert (chat["source"], chat["estimate"]["n_layers_total"]) == ("name", 49)


def test_a_model_left_to_the_cpu_says_where_its_figures_come_from(tmp_path: Path) -> None:
    path = cluster(tmp_path, f"http://{LOOPBACK}:{free_port()}", {"chat": "qwen2.5:14b"}, vram_gib=4)

    text = homelab("plan", "-i", path).stdout

    [line] = [x for x in text.splitlines() if x.startswith("CPU only: chat")]
    assert line.startswith("CPU only: chat (needs ") and line.endswith(" free on box GPU0 (RTX 3090)) [name estimate]")


def test_the_nodes_training_context_bounds_ollamas_default(
    ollama_standin_factory: StartStandIn, tmp_path: Path
) -> None:
    # nomic-bert is no architecture the estimator models: the configuration is borrowed, the context is the node's.
    server = ollama_standin_factory([EMBED.model_copy(update={"context_length": 2048})])
    path = cluster(tmp_path, server.url, {"embed": "nomic-embed-text"})

    embed = placements(plan_json(path))["embed"]

    assert (embed["source"], embed["estimate"]["n_ctx"]) == ("ollama", 2048)
