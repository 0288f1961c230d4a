"""The VRAM plan of Ollama models: the context Ollama really launches llama-server with.

Ollama clamps `num_ctx` to the model's training context (server/sched.go:161
`effectiveContext` at v0.33.0-rc2) and launches `-c num_ctx*OLLAMA_NUM_PARALLEL`
(llm/llama_server.go:375); the plan sizes the KV cache for exactly that.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from homelab.inventory import load_inventory
from homelab.tiny_gguf import write_tiny_llama
from homelab.vram.lineup import lineup_from_inventory
from homelab.vram.node_plan import plan_node_vram

TRAINING_CONTEXT = 2048  # write_tiny_llama's default


def _cluster(tmp_path: Path, num_ctx: int, num_parallel: int | None) -> Path:
    node: dict[str, Any] = {
        "name": "box", "tier": "gpu", "host": "127.0.0.1", "gpus": [{"name": "Lab GPU", "vram_gib": 8}],
        "endpoints": [{
            "name": "ollama", "kind": "ollama", "url": "http://127.0.0.1:11434",
            "models": [{"name": "alpha", "alias": "a", "deploy": {"gguf": "alpha.gguf", "num_ctx": num_ctx}}],
        }],
    }  # fmt: skip
    if num_parallel is not None:
        node["ollama_num_parallel"] = num_parallel
    path = tmp_path / f"cluster-{num_ctx}-{num_parallel}.yaml"
    path.write_text(yaml.safe_dump({"nodes": [node]}, sort_keys=False))
    return path


@pytest.fixture
def models(tmp_path: Path) -> Path:
    folder = tmp_path / "models"
    folder.mkdir()
    write_tiny_llama(folder / "alpha.gguf", seed=1, context_length=TRAINING_CONTEXT)
    return folder


@pytest.mark.parametrize(
    ("num_ctx", "num_parallel", "ctx_size", "parallel"),
    [
        (1024, None, 1024, 1),  # Ollama's default: one sequence
        (1024, 4, 4096, 4),  # -c num_ctx*parallel
        (8192, None, TRAINING_CONTEXT, 1),  # clamped to the training context
        (8192, 2, 2 * TRAINING_CONTEXT, 2),  # clamped, then multiplied
    ],
)
def test_ollama_models_are_planned_with_the_context_ollama_launches(
    tmp_path: Path, models: Path, num_ctx: int, num_parallel: int | None, ctx_size: int, parallel: int
) -> None:
    inventory = load_inventory(_cluster(tmp_path, num_ctx, num_parallel))

    (entry,) = lineup_from_inventory(inventory, models_dir=models).entries

    assert (entry.ctx_size, entry.parallel) == (ctx_size, parallel)


def test_more_parallel_sequences_take_more_vram_and_a_clamped_context_no_more(tmp_path: Path, models: Path) -> None:
    def planned(num_ctx: int, num_parallel: int | None) -> int:
        inventory = load_inventory(_cluster(tmp_path, num_ctx, num_parallel))
        return plan_node_vram(inventory, inventory.nodes[0], models_dir=models).models["a"].gpu_bytes

    assert planned(1024, 2) > planned(1024, None)
    assert planned(65536, None) == planned(TRAINING_CONTEXT, None)
