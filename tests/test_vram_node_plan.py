"""A node's share of the VRAM plan: the GPU layers a rollout gives each container, or its refusal."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from homelab.errors import VramRefused
from homelab.inventory import Inventory
from homelab.tiny_gguf import write_tiny_llama
from homelab.vram.estimate import estimate
from homelab.vram.metadata import read_gguf
from homelab.vram.node_plan import plan_node_vram
from homelab.vram.planner import DEFAULT_POLICY
from homelab.vram.settings import RunSettings
from homelab.vram.sizes import GIB


def _inventory(gpus: list[dict[str, Any]], containers: list[dict[str, Any]]) -> Inventory:
    def node(name: str, port: int) -> dict[str, Any]:
        return {
            "name": name,
            "tier": "secondary",
            "host": "127.0.0.1",
            "gpus": gpus,
            "endpoints": [
                {
                    "name": f"{name}-{c['name']}",
                    "kind": "llamacpp",
                    "url": f"http://127.0.0.1:{port + i}",
                    "container": {"image": "llama:test", "ctx_size": 4096}
                    | {k: v for k, v in c.items() if k != "name"},
                }
                for i, c in enumerate(containers)
            ],
        }

    # A second node whose model files are nowhere: planning gpu2 must not need them.
    return Inventory.model_validate({"nodes": [node("gpu2", 9000), node("other", 9100)]})


@pytest.fixture
def models(tmp_path: Path) -> Path:
    write_tiny_llama(tmp_path / "a.gguf", n_layer=4, seed=1)
    write_tiny_llama(tmp_path / "b.gguf", n_layer=6, n_embd=128, seed=2)
    return tmp_path


def test_every_container_gets_the_plans_layers_and_a_line(models: Path) -> None:
    inv = _inventory(
        [{"name": "RTX 3090", "vram_gib": 24}],
        [{"name": "a", "model_file": "a.gguf"}, {"name": "b", "model_file": "b.gguf"}],
    )

    plan = plan_node_vram(inv, inv.nodes[0], models_dir=models)

    # Whole offload is n_layer + 1: llama.cpp counts the output layer as one more.
    assert plan.gpu_layers == {"gpu2-a": 5, "gpu2-b": 7}
    assert len(plan.lines) == 2
    expected = estimate(read_gguf(models / "a.gguf"), RunSettings(ctx_size=4096, n_gpu_layers=-1, flash_attn=True))
    assert plan.lines[0] == f"gpu2-a: all layers on gpu2 GPU0 (RTX 3090), {expected.gpu_total_bytes / GIB:.2f} GiB"


def test_layers_fixed_in_the_cluster_file_are_kept(models: Path) -> None:
    inv = _inventory([{"name": "RTX", "vram_gib": 24}], [{"name": "a", "model_file": "a.gguf", "gpu_layers": 2}])

    plan = plan_node_vram(inv, inv.nodes[0], models_dir=models)

    assert plan.gpu_layers == {"gpu2-a": 2}
    assert "2/5 layers" in plan.lines[0]


def test_a_model_that_does_not_fit_is_refused_with_the_planners_reason(models: Path) -> None:
    # The default reserve (0.5 GiB) leaves nothing of a 0.5 GiB GPU; the per-process overhead alone does not fit.
    assert DEFAULT_POLICY.gpu_overhead_bytes > 0
    inv = _inventory([{"name": "tiny", "vram_gib": 0.5}], [{"name": "a", "model_file": "a.gguf"}])

    with pytest.raises(VramRefused) as refused:
        plan_node_vram(inv, inv.nodes[0], models_dir=models)

    message = str(refused.value)
    assert message.startswith("node gpu2: does not fit its GPUs: gpu2-a: needs ")
    assert "0.0 GiB free on gpu2 GPU0 (tiny)" in message
    assert "Set gpu_layers or a smaller ctx_size" in message


def test_a_model_only_on_the_node_with_a_meaningless_name_keeps_llamas_default(tmp_path: Path) -> None:
    inv = _inventory([{"name": "RTX", "vram_gib": 24}], [{"name": "a", "model_file": "a.gguf"}])

    plan = plan_node_vram(inv, inv.nodes[0], models_dir=None)

    assert plan.gpu_layers == {}
    assert plan.lines[0].startswith("gpu2-a: not sized (")
    assert plan.lines[0].endswith("); llama-server's default layers")


def test_a_node_without_gpus_plans_nothing(tmp_path: Path) -> None:
    inv = _inventory([], [{"name": "a", "model_file": "missing.gguf"}])

    plan = plan_node_vram(inv, inv.nodes[0], models_dir=tmp_path)

    assert (plan.gpu_layers, plan.lines) == ({}, [])
