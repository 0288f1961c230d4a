"""Mixture-of-experts shapes end to end: a tiny file of each architecture, read back, estimated, and
loaded by the real llama-server, whose logged buffers the estimate must reproduce.

The captured benchmark runs (tests/test_vram_accuracy.py) hold the estimator to 3 % or 16 MiB on
larger shapes; these tiny files are far below 16 MiB, so here the bound is a quarter of one
activation ([n_embd, n_ubatch] f32, 256 KiB): every modelled term is a whole tensor, so a missed
or extra one shows, while the few KiB of small graph inputs left unmodelled do not.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from homelab.tiny_moe import MOE_ARCHS, write_tiny_moe
from homelab.vram.estimate import estimate
from homelab.vram.kvcache import kv_layers
from homelab.vram.llama_log import parse_llama_log
from homelab.vram.metadata import read_gguf
from homelab.vram.settings import RunSettings, context_for
from tests.fixtures.llama import LlamaServer

# Shapes llama.cpp accepts for each architecture: q width unlike n_embd where the family has it.
_ARGS: dict[str, dict[str, Any]] = {
    "qwen3moe": {"n_embd": 128, "n_head": 4, "head_dim": 64},
    "qwen2moe": {"n_embd": 128, "n_head": 4},
    "gpt-oss": {"n_embd": 128, "n_head": 4, "head_dim": 64, "n_layer": 4},
    "glm4moe": {"n_embd": 128, "n_head": 4, "head_dim": 64, "n_layer": 3, "n_dense_lead": 1, "n_ff": 256, "n_nextn": 1},
    "deepseek2": {
        "n_embd": 128, "n_head": 4, "n_head_kv": 1, "head_dim": 96, "rope_dim": 32, "head_dim_v": 64,
        "q_lora_rank": 64, "kv_lora_rank": 128, "n_layer": 3, "n_dense_lead": 1, "n_ff": 256,
    },
}  # fmt: skip
# deepseek2 as older converters wrote it (one KV head per query head, attn_kv_b), and without q_lora.
_ARGS["deepseek2-kv_b"] = _ARGS["deepseek2"] | {"n_head_kv": 4, "q_lora_rank": 0}
# One block with wide experts: its feed-forward runs on the output rows only, not the micro-batch.
_ARGS["qwen3moe-one-block"] = _ARGS["qwen3moe"] | {"n_layer": 1, "n_ff_exp": 512}
_VARIANTS = [*MOE_ARCHS, "deepseek2-kv_b", "qwen3moe-one-block"]
_BOUND = 128 * 512 * 4 // 4


def _model(tmp_path: Path, variant: str) -> Path:
    arch = next(a for a in MOE_ARCHS if variant.startswith(a))
    return write_tiny_moe(tmp_path / f"{variant}.gguf", arch=arch, n_expert=4, n_expert_used=2, **_ARGS[variant])  # type: ignore[arg-type]


@pytest.mark.parametrize("arch", MOE_ARCHS)
def test_a_tiny_moe_file_reads_back_as_its_shape(tmp_path: Path, arch: str) -> None:
    shape = read_gguf(_model(tmp_path, arch))

    assert (shape.arch, shape.n_expert, shape.n_expert_used) == (arch, 4, 2)
    assert shape.mla == (arch == "deepseek2")
    assert any(t.name.endswith("ffn_up_exps.weight") and len(t.shape) == 3 for t in shape.tensors)
    assert any(shape.swa_layers) == (arch == "gpt-oss")


def test_a_multi_token_prediction_block_is_counted_but_neither_cached_nor_loaded(tmp_path: Path) -> None:
    shape = read_gguf(_model(tmp_path, "glm4moe"))
    settings = RunSettings(ctx_size=512, backend="cpu")

    layers = kv_layers(shape, settings, context_for(shape, settings))

    assert (shape.n_layer, shape.n_layer_nextn, shape.n_layer_trunk) == (4, 1, 3)
    assert [layer.bytes for layer in layers] == [512 * 128 * 2 * 2] * 3 + [0]


def test_mla_caches_one_compressed_row_per_token_and_no_v(tmp_path: Path) -> None:
    shape = read_gguf(_model(tmp_path, "deepseek2"))
    settings = RunSettings(ctx_size=512, backend="cpu")

    layers = kv_layers(shape, settings, context_for(shape, settings))

    # kv_lora_rank 128 + RoPE 32 values of f16 per cell; V is read as a view of that row.
    assert [(layer.k_bytes, layer.v_bytes) for layer in layers] == [(512 * 160 * 2, 0)] * 3


@pytest.mark.parametrize("flash_attn", [False, True], ids=["nofa", "fa"])
@pytest.mark.parametrize("variant", _VARIANTS)
def test_llama_server_allocates_what_the_estimate_says(
    llama_server: Any, tmp_path: Path, variant: str, flash_attn: bool
) -> None:
    model = _model(tmp_path, variant)
    fa = "on" if flash_attn else "off"
    server: LlamaServer = llama_server(
        model, alias=variant, extra_args=("-np", "1", "-fa", fa, "--fit", "off", "-lv", "4")
    )
    logged = parse_llama_log(server.log.read_text(errors="replace"))

    result = estimate(read_gguf(model), RunSettings(ctx_size=512, flash_attn=flash_attn, backend="cpu"))

    for component in ("weights_cpu_bytes", "kv_cpu_bytes", "compute_host_bytes"):
        assert abs(getattr(result, component) - getattr(logged, component)) <= _BOUND, component
    assert logged.compute_host_bytes > 0
