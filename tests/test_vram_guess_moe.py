"""Mixture-of-experts models known only by name: the released shape, experts that --n-cpu-moe moves.

Each name is checked against a sparse GGUF `homelab.tiny_moe` writes with the same released
metadata (the file a converter would give, header only): the same tensors, the same ones moved
to the CPU by --n-cpu-moe, weights within 5%. The CLI and `plan fit` are run as a user runs them.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from gguf import GGMLQuantizationType

from homelab.errors import UnsupportedModel
from homelab.inventory import load_inventory
from homelab.tiny_moe import write_tiny_moe
from homelab.vram.devices import CPU, device_map
from homelab.vram.estimate import estimate
from homelab.vram.fit_file import fit_inventory
from homelab.vram.guess import guess_shape
from homelab.vram.guess_moe import MOE_CONFIGS, MoeConfig
from homelab.vram.metadata import read_gguf
from homelab.vram.served import shape_from_ollama_show
from homelab.vram.settings import RunSettings, context_for
from homelab.vram.shape import ModelShape, layer_index
from homelab.vram.weights import cuda_alloc_bytes, place_tensors
from tests.test_plan_fit import MOE, MOE_FILE, ROOT, assert_never_over_committed
from tests.test_vram_cli import homelab

# name -> (released configuration, arch, layers with routed experts, shared experts?)
NAMES = {
    "qwen3-30b-a3b-instruct-2507-q4_k_m.gguf": ("qwen3-30b-a3b", "qwen3moe", 48, False),
    "qwen3:30b-a3b": ("qwen3-30b-a3b", "qwen3moe", 48, False),
    "qwen3:30b": ("qwen3-30b-a3b", "qwen3moe", 48, False),  # Ollama's qwen3:30b is the MoE
    "gpt-oss:20b": ("gpt-oss-20b", "gpt-oss", 24, False),
    "gpt-oss:120b": ("gpt-oss-120b", "gpt-oss", 36, False),
    "qwen3-coder:30b": ("qwen3-coder-30b-a3b", "qwen3moe", 48, False),
    "GLM-4.5-Air-Q4_K_M": ("glm-4.5-air", "glm4moe", 46, True),  # 46 blocks, the first dense; + the MTP block
    "deepseek-v2-lite": ("deepseek-v2-lite", "deepseek2", 26, True),
    "deepseek-coder-v2:16b": ("deepseek-v2-lite", "deepseek2", 26, True),
    "qwen2-57b-a14b": ("qwen2-57b-a14b", "qwen2moe", 28, True),
    "qwen3:235b-a22b": ("qwen3-235b-a22b", "qwen3moe", 94, False),
    "qwen3-next:80b": ("qwen3-next-80b-a3b", "qwen3moe", 48, False),  # nearest supported arch
}
SETTINGS = RunSettings(ctx_size=4096, n_gpu_layers=-1)


def expert_layers(shape: ModelShape, suffix: str = "exps") -> set[int]:
    return {
        layer_index(t.name) or 0
        for t in shape.tensors
        if t.name.endswith((f"ffn_gate_{suffix}.weight", f"ffn_up_{suffix}.weight", f"ffn_down_{suffix}.weight"))
    }


@pytest.mark.parametrize("name", NAMES)
def test_a_moe_name_has_its_released_shape_with_expert_tensors(name: str) -> None:
    key, arch, n_moe, shared = NAMES[name]
    config = MOE_CONFIGS[key]
    shape = guess_shape(name)
    assert (shape.arch, shape.estimated, shape.source, shape.name) == (arch, True, "name", name)
    assert (shape.n_expert, shape.n_expert_used) == (config.dims.n_expert, config.n_expert_used)
    assert shape.n_layer_trunk == config.dims.n_layer and shape.n_ff_expert == config.dims.n_ff_exp
    assert len(expert_layers(shape)) == n_moe
    assert bool(expert_layers(shape, "shexp")) is shared
    gate = next(t for t in shape.tensors if t.name == f"blk.{max(expert_layers(shape))}.ffn_gate_exps.weight")
    assert gate.shape == [config.dims.n_embd, config.dims.n_ff_exp, config.dims.n_expert]  # ggml order


def test_gpt_oss_experts_are_mxfp4_and_the_rest_as_released() -> None:
    ollama, ggml_org, named = (guess_shape(n) for n in ("gpt-oss:20b", "gpt-oss-20b-mxfp4", "gpt-oss-20b-Q8_0"))
    for shape, rest in ((ollama, "BF16"), (ggml_org, "Q8_0"), (named, "Q8_0")):
        types = {t.type for t in shape.tensors if t.name.endswith("_exps.weight")}
        assert types == {"MXFP4"}, shape.name
        assert {t.type for t in shape.tensors if t.name.endswith("attn_q.weight")} == {rest}, shape.name
    assert ollama.sliding_window == 128 and ollama.swa_layers[:4] == [True, False, True, False]
    # 20.9B parameters; Ollama's gpt-oss:20b is 13 GiB (MXFP4 experts, BF16 rest).
    assert 12.5 < ollama.weight_bytes / 2**30 < 13.5


@pytest.mark.parametrize("name", ["qwen3:32b", "qwen2.5-14b", "llama3.1:8b", "qwen3:8b", "mistral-nemo:12b"])
def test_a_dense_name_stays_dense(name: str) -> None:
    shape = guess_shape(name)
    assert shape.n_expert == 0 and not any("_exps." in t.name for t in shape.tensors)


@pytest.mark.parametrize("name", ["qwen3:30b-a3b", "gpt-oss:20b", "GLM-4.5-Air", "deepseek-v2-lite", "qwen2-57b-a14b"])
def test_n_cpu_moe_moves_the_experts_of_the_first_layers(name: str) -> None:
    shape = guess_shape(name)
    on_gpu = estimate(shape, SETTINGS)
    moved = estimate(shape, SETTINGS.model_copy(update={"n_cpu_moe": 4}))
    experts = [t for t in shape.tensors if "_exps." in t.name and (layer_index(t.name) or 0) < 4]
    assert experts
    expert_bytes = sum(cuda_alloc_bytes(t) for t in experts)
    assert on_gpu.weights_gpu_bytes - moved.weights_gpu_bytes == expert_bytes
    # The GPU's compute buffer gains at most one layer's experts (the copy a CUDA build runs them from).
    largest = max(cuda_alloc_bytes(t) for t in experts)
    assert expert_bytes - largest <= on_gpu.gpu_total_bytes - moved.gpu_total_bytes <= expert_bytes
    assert moved.weights_cpu_bytes > on_gpu.weights_cpu_bytes


def sparse_file(folder: Path, config: MoeConfig, dtype: GGMLQuantizationType) -> Path:
    """The released metadata written as a header-only GGUF, as test_plan_fit writes Qwen3-30B-A3B."""
    d = config.dims
    expert = GGMLQuantizationType.MXFP4 if config.arch == "gpt-oss" else None
    return write_tiny_moe(
        folder / f"{config.arch}-{dtype.name}.gguf", arch=config.arch, n_layer=d.n_layer, n_embd=d.n_embd,
        n_head=d.n_head, n_head_kv=d.n_kv // d.head, head_dim=d.head, n_expert=d.n_expert,
        n_expert_used=config.n_expert_used, n_ff_exp=d.n_ff_exp, n_ff_shexp=d.n_ff_shexp,
        n_expert_shared=max(d.n_ff_shexp // d.n_ff_exp, 1), n_dense_lead=d.n_dense_lead, n_nextn=d.n_nextn,
        n_ff=d.n_ff, q_lora_rank=d.q_lora, kv_lora_rank=d.kv_lora, rope_dim=d.rope or 32,
        head_dim_v=d.head_v, n_vocab=d.n_vocab, context_length=config.context_length, dtype=dtype,
        expert_dtype=expert, sliding_window=config.sliding_window or 128, sparse=True,
    )  # fmt: skip


# name, the released configuration, the sparse file's dtype; exact: the name's types are the file's.
AGAINST_FILES = [
    ("qwen3-30b-a3b-q4_0", "qwen3-30b-a3b", GGMLQuantizationType.Q4_0, False),
    ("gpt-oss-20b-f16", "gpt-oss-20b", GGMLQuantizationType.F16, True),
    ("glm-4.5-air-q8_0", "glm-4.5-air", GGMLQuantizationType.Q8_0, True),
    ("deepseek-v2-lite-q8_0", "deepseek-v2-lite", GGMLQuantizationType.Q8_0, True),
    ("qwen2-57b-a14b-f16", "qwen2-57b-a14b", GGMLQuantizationType.F16, True),
]
_FIELDS = (
    "arch", "n_layer", "n_layer_nextn", "n_embd", "n_head", "n_head_kv", "head_dim_k", "head_dim_v", "n_ff",
    "n_vocab", "context_length", "sliding_window", "swa_layers", "mla", "n_expert", "n_expert_used", "n_ff_expert",
)  # fmt: skip


@pytest.mark.parametrize(("name", "key", "dtype", "exact"), AGAINST_FILES, ids=[c[0] for c in AGAINST_FILES])
def test_the_name_estimates_as_a_file_of_the_same_metadata(
    name: str, key: str, dtype: GGMLQuantizationType, exact: bool, tmp_path: Path
) -> None:
    guessed, read = guess_shape(name), read_gguf(sparse_file(tmp_path, MOE_CONFIGS[key], dtype))
    assert {f: getattr(guessed, f) for f in _FIELDS} == {f: getattr(read, f) for f in _FIELDS}
    assert [(t.name, t.shape) for t in guessed.tensors] == [(t.name, t.shape) for t in read.tensors]
    if exact:  # vectors aside: the tiny writer types qwen2moe's shared-expert gate vector as a matrix
        assert [t.type for t in guessed.tensors if len(t.shape) > 1] == [
            t.type for t in read.tensors if len(t.shape) > 1
        ]
    assert abs(guessed.weight_bytes - read.weight_bytes) <= 0.05 * read.weight_bytes
    settings = SETTINGS.model_copy(update={"n_cpu_moe": 5})

    def on_cpu(shape: ModelShape) -> set[str]:
        devices = device_map(shape, settings, context_for(shape, settings))
        return {n for n, d in place_tensors(shape, devices).items() if d == CPU}

    assert on_cpu(guessed) == on_cpu(read)
    assert {n for n in on_cpu(read) if "_exps." in n}  # the experts of the first 5 layers, and the embedding
    a, b = estimate(guessed, settings), estimate(read, settings)
    assert abs(a.gpu_total_bytes - b.gpu_total_bytes) <= 0.05 * b.gpu_total_bytes
    assert (a.kv_bytes, a.compute_gpu_bytes) == (b.kv_bytes, b.compute_gpu_bytes)


def test_plan_estimate_moves_the_experts_of_a_name() -> None:
    result = homelab("plan", "estimate", "qwen3:30b-a3b", "--n-cpu-moe", "48", "-c", "8192", "--json")
    assert result.returncode == 0, result.stderr
    assert "no expert tensors" not in result.stderr
    report = json.loads(result.stdout)
    all_gpu = json.loads(homelab("plan", "estimate", "qwen3:30b-a3b", "-c", "8192", "--json").stdout)
    # Every routed expert on the CPU: more than 15 GiB leave the GPU.
    assert all_gpu["weights_gpu_bytes"] - report["weights_gpu_bytes"] > 15 * 2**30
    dense = homelab("plan", "estimate", "qwen2.5-7b", "--n-cpu-moe", "4")
    assert "qwen2.5-7b has no expert tensors: --n-cpu-moe/--cpu-moe move nothing" in dense.stderr


def test_plan_fit_moves_the_experts_of_a_container_known_by_name(tmp_path: Path) -> None:
    """The container's model_file is a name with no file behind it (the GGUF sits on its node)."""
    name = "qwen3-30b-a3b-instruct-2507-q4_k_m.gguf"
    text = (ROOT / "examples" / "three-tier.yaml").read_text()
    anchor = "          start_order: 3\n"
    path = tmp_path / "cluster.yaml"
    path.write_text(text.replace(anchor, anchor + MOE.replace(MOE_FILE, name)))
    fit = fit_inventory(load_inventory(path), models_dir=tmp_path)
    moe = next(m for m in fit.models if m.model == "moe")
    assert_never_over_committed(fit)
    assert moe.gpu is not None and (moe.n_gpu_layers, moe.n_moe_layers) == (49, 48)
    assert 0 < moe.n_cpu_moe < 48, moe.reasons
    assert moe.reasons[0].startswith(f"moe: 49/49 layers, {moe.n_cpu_moe} of 48 layers' experts on CPU")


def ollama_show(arch: str, params: int, quantization: str, **keys: int) -> dict[str, object]:
    """/api/show without verbose, as Ollama answers: the GGUF's keys, arrays over 5 items emptied, no
    tensors (server/routes.go getModelData)."""
    info: dict[str, object] = {"general.architecture": arch, "general.parameter_count": params}
    info |= {f"{arch}.{k.replace('__', '.')}": v for k, v in keys.items()}
    info["tokenizer.ggml.tokens"] = []
    return {"model_info": info, "details": {"family": arch, "quantization_level": quantization}}


def test_ollama_counts_give_a_moe_shape_with_the_reported_experts() -> None:
    body = ollama_show(
        "qwen3moe", 30_532_122_624, "Q4_K_M", block_count=48, expert_count=128, expert_used_count=6,
        expert_feed_forward_length=768, context_length=262144,
    )  # fmt: skip
    shape = shape_from_ollama_show("qwen3:30b-a3b", body)
    assert (shape.source, shape.arch, shape.n_expert, shape.n_expert_used) == ("ollama", "qwen3moe", 128, 6)
    assert shape.context_length == 262144 and len(expert_layers(shape)) == 48
    assert abs(shape.parameter_count - 30_532_122_624) < 1e6
    gpt = shape_from_ollama_show("gpt-oss:20b", ollama_show("gpt-oss", 20_914_757_184, "MXFP4", expert_count=32))
    assert {t.type for t in gpt.tensors if t.name.endswith("_exps.weight")} == {"MXFP4"}
    assert {t.type for t in gpt.tensors if t.name.endswith("attn_k.weight")} == {"BF16"}


@pytest.mark.parametrize(
    ("key", "value"),
    [("block_count", 1 << 30), ("expert_count", 5000), ("expert_used_count", -1), ("block_count", "48")],
)
def test_a_reported_count_out_of_range_is_refused_by_name(key: str, value: object) -> None:
    body = ollama_show("qwen3moe", 30_532_122_624, "Q4_K_M", expert_count=128)
    body["model_info"][f"qwen3moe.{key}"] = value  # type: ignore[index]
    with pytest.raises(UnsupportedModel, match=rf"model_info 'qwen3moe\.{key}': .* is not a count in 1\.\."):
        shape_from_ollama_show("qwen3:30b-a3b", body)
