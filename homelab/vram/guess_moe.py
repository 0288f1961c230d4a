"""A mixture-of-experts model known only by name ("qwen3:30b-a3b", "gpt-oss:20b"): its released shape.

A dense estimate of a 30B-A3B model is wrong twice: its weights split and compute differ, and it
has no `blk.N.ffn_*_exps` tensors, so `--n-cpu-moe` and `-ot exps=CPU` move nothing. Names of the
released MoE families map to their published configuration (each model's config.json on Hugging
Face: hidden_size, num_hidden_layers, heads, head_dim, num_experts / n_routed_experts,
num_experts_per_tok, moe_intermediate_size, shared experts, first_k_dense_replace, MLA ranks,
sliding_window), laid out tensor by tensor as llama.cpp names them (`homelab.tiny_moe`'s layout,
the same a sparse file of that metadata has), and read back through the GGUF key path, so a
name and a file of the same metadata give the same shape.

Types: every matrix is labelled with the file type's main type and sized at its whole-file rate,
as dense names are; gpt-oss's experts are MXFP4 as released, the rest BF16 as Ollama converts
them (ollama convert/convert_gptoss.go:124-146, convert/reader.go:40) unless the name gives a
type. A name saying MXFP4 is llama.cpp's MXFP4_MOE: experts MXFP4, the rest Q8_0
(llama-quant.cpp:512-524). Qwen3-Next (`qwen3next`: Gated DeltaNet layers with a recurrent
state) is not modelled by the estimator, so it is estimated as the nearest supported arch,
qwen3moe at its widths, every layer caching K/V (its KV is overstated about 4x, 12 of 48 layers
attend) and its small shared expert left out.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from math import prod
from typing import Any, NamedTuple

from homelab.errors import UnsupportedModel
from homelab.tiny_moe import MOE_ARCHS, MoeArch, MoeDims, moe_tensors
from homelab.vram.metadata import shape_from_fields
from homelab.vram.shape import ModelShape, Source, TensorInfo, tensor_bytes
from homelab.vram.sizes import MAX_CONTEXT

__all__ = [
    "MOE_CONFIGS",
    "MoeConfig",
    "moe_config_of",
    "moe_parameter_count",
    "moe_shape",
    "nearest_moe",
    "reported_moe",
]


class MoeConfig(NamedTuple):
    """A released MoE configuration: its architecture, widths, experts routed per token and context."""

    arch: MoeArch
    dims: MoeDims
    n_expert_used: int
    context_length: int
    sliding_window: int | None = None


def _dims(n_layer: int, n_embd: int, n_head: int, n_head_kv: int, head: int, n_expert: int, n_ff_exp: int,
          n_ff: int, n_vocab: int, *, shexp: int = 0, lead: int = 0, nextn: int = 0, head_v: int = 0,
          q_lora: int = 0, kv_lora: int = 0, rope: int = 0) -> MoeDims:  # fmt: skip
    return MoeDims(n_layer, n_embd, n_head, n_head_kv * head, head, head_v or head, n_expert, n_ff_exp, shexp,
                   n_ff, lead, nextn, q_lora, kv_lora, rope, n_vocab)  # fmt: skip


_QWEN_V, _GLM_V, _DEEPSEEK_V = 151936, 151552, 102400
_QWEN3_30B = _dims(48, 2048, 32, 4, 128, 128, 768, 6144, _QWEN_V)
# Keys are the released names; the values are their config.json's (head_dim, num_key_value_heads...).
MOE_CONFIGS: dict[str, MoeConfig] = {
    "qwen3-30b-a3b": MoeConfig("qwen3moe", _QWEN3_30B, 8, 40960),
    "qwen3-coder-30b-a3b": MoeConfig("qwen3moe", _QWEN3_30B, 8, 262144),
    "qwen3-235b-a22b": MoeConfig("qwen3moe", _dims(94, 4096, 64, 4, 128, 128, 1536, 12288, _QWEN_V), 8, 40960),
    # qwen3next is not modelled: qwen3moe at Qwen3-Next-80B-A3B's widths (module docstring).
    "qwen3-next-80b-a3b": MoeConfig("qwen3moe", _dims(48, 2048, 16, 2, 256, 512, 512, 5120, _QWEN_V), 10, 262144),
    "qwen2-57b-a14b": MoeConfig(
        "qwen2moe", _dims(28, 3584, 28, 4, 128, 64, 2560, 18944, _QWEN_V, shexp=20480), 8, 32768),
    "gpt-oss-20b": MoeConfig("gpt-oss", _dims(24, 2880, 64, 8, 64, 32, 2880, 2880, 201088), 4, 131072, 128),
    "gpt-oss-120b": MoeConfig("gpt-oss", _dims(36, 2880, 64, 8, 64, 128, 2880, 2880, 201088), 4, 131072, 128),
    # GLM-4.5 ships one multi-token-prediction layer after its blocks (num_nextn_predict_layers).
    "glm-4.5-air": MoeConfig(
        "glm4moe", _dims(46, 4096, 96, 8, 128, 128, 1408, 10944, _GLM_V, shexp=1408, lead=1, nextn=1), 8, 131072),
    "glm-4.5": MoeConfig(
        "glm4moe", _dims(92, 5120, 96, 8, 128, 160, 1536, 12288, _GLM_V, shexp=1536, lead=3, nextn=1), 8, 131072),
    # MLA as llama.cpp converts it: one latent KV head; a head is 128 no-RoPE + 64 RoPE values.
    "deepseek-v2-lite": MoeConfig("deepseek2", _dims(
        27, 2048, 16, 1, 192, 64, 1408, 10944, _DEEPSEEK_V, shexp=2816, lead=1, head_v=128, kv_lora=512, rope=64,
    ), 6, 163840),
    "deepseek-v2": MoeConfig("deepseek2", _dims(
        60, 5120, 128, 1, 192, 160, 1536, 12288, _DEEPSEEK_V, shexp=3072, lead=1, head_v=128, q_lora=1536,
        kv_lora=512, rope=64,
    ), 6, 163840),
}  # fmt: skip

_SIZE = r"(?:^|-)(\d+(?:\.\d+)?)b(?=-|$|\.)"
# (pattern on the normalized name, the config by total size in billions; "" for any size), first match wins.
_NAMES: tuple[tuple[re.Pattern[str], dict[str, str]], ...] = tuple(
    (re.compile(pattern), table)
    for pattern, table in (
        (r"gpt-?oss", {"120": "gpt-oss-120b", "": "gpt-oss-20b"}),
        (r"glm-?4\.?5-?air", {"": "glm-4.5-air"}),
        (r"glm-?4\.?[56]", {"": "glm-4.5"}),
        (r"deepseek-(?:coder-)?v2-lite", {"": "deepseek-v2-lite"}),
        (r"deepseek-(?:coder-)?v2", {"16": "deepseek-v2-lite", "": "deepseek-v2"}),
        (r"qwen-?3-?next", {"": "qwen3-next-80b-a3b"}),
        (r"qwen-?3-?coder", {"30": "qwen3-coder-30b-a3b", "": "qwen3-coder-30b-a3b"}),
        (r"qwen-?3", {"30": "qwen3-30b-a3b", "235": "qwen3-235b-a22b", "a3": "qwen3-30b-a3b",
                      "a22": "qwen3-235b-a22b"}),
        (r"qwen-?2", {"57": "qwen2-57b-a14b", "a14": "qwen2-57b-a14b"}),
    )
)  # fmt: skip
_ACTIVE = re.compile(r"\d+(?:\.\d+)?b-(a\d+(?:\.\d+)?)b(?=-|$|\.)")
_MXFP4 = re.compile(r"mxfp4", re.IGNORECASE)


def _normalized(name: str) -> str:
    return re.sub(r"[\s_:/]+", "-", name.lower())


def moe_config_of(name: str) -> MoeConfig | None:
    """The released MoE configuration a model name names (by family and size), or None for a dense name.

    A name with an active-parameter suffix (`-30b-a3b`) but no known family gets the released
    configuration nearest its total size (its bytes then scaled to that size by `moe_shape`).
    """
    text = _normalized(name)
    total = re.search(_SIZE, text)
    active = _ACTIVE.search(text)
    for pattern, table in _NAMES:
        if pattern.search(text):
            key = (total and table.get(total.group(1))) or (active and table.get(active.group(1))) or table.get("")
            if key:
                return MOE_CONFIGS[key]
    if active and total:
        return nearest_moe(float(total.group(1)) * 1e9, None)
    return None


def nearest_moe(params: float, arch: str | None) -> MoeConfig:
    """The released configuration (of `arch`, or of any) nearest `params` parameters in total."""
    pool = [c for c in MOE_CONFIGS.values() if arch in (None, c.arch)] or list(MOE_CONFIGS.values())
    return min(pool, key=lambda c: abs(moe_parameter_count(c) - params))


def moe_parameter_count(config: MoeConfig) -> int:
    """Every weight of the configuration (its tensors' elements, norms and routers included)."""
    return sum(prod(shape) for _, shape in moe_tensors(config.arch, config.dims))


def _types(config: MoeConfig, name: str, main: str, named: bool) -> tuple[str, str]:
    """(experts' type, the other matrices' type) for this config and name (module docstring)."""
    if _MXFP4.search(name):
        return "MXFP4", "Q8_0"
    if config.arch == "gpt-oss":
        return "MXFP4", main if named else "BF16"
    return main, main


def _fields(config: MoeConfig, file_type: str) -> dict[str, Any]:
    """The GGUF keys a file of this configuration carries (`homelab.tiny_moe`'s metadata)."""
    d, a = config.dims, config.arch
    mla = a == "deepseek2"
    fields: dict[str, Any] = {
        "general.architecture": a, "general.file_type": file_type,
        f"{a}.block_count": d.n_layer + d.n_nextn, f"{a}.embedding_length": d.n_embd,
        f"{a}.attention.head_count": d.n_head, f"{a}.attention.head_count_kv": d.n_kv // d.head,
        f"{a}.attention.key_length": d.kv_lora + d.rope if mla else d.head,
        f"{a}.attention.value_length": d.kv_lora if mla else d.head,
        f"{a}.feed_forward_length": d.n_ff, f"{a}.context_length": config.context_length,
        f"{a}.vocab_size": d.n_vocab, f"{a}.expert_count": d.n_expert,
        f"{a}.expert_used_count": config.n_expert_used, f"{a}.expert_feed_forward_length": d.n_ff_exp,
        f"{a}.nextn_predict_layers": d.n_nextn or None, f"{a}.attention.sliding_window": config.sliding_window,
    }  # fmt: skip
    if mla:
        fields |= {f"{a}.attention.key_length_mla": d.head, f"{a}.attention.value_length_mla": d.head_v}
    return fields


def moe_shape(
    name: str,
    config: MoeConfig,
    *,
    weight_type: str,
    bits_per_weight: float,
    named_type: bool,
    params: float | None = None,
    source: Source = "name",
) -> ModelShape:
    """The estimated shape of `config`, its matrices sized at `bits_per_weight` (scaled to `params`).

    Args:
        weight_type: The file type's main ggml type (Q4_K for Q4_K_M).
        named_type: The name (or the node) gave the file type; gpt-oss's release is BF16 otherwise.
        params: The stated total parameter count, when it is not the configuration's own.
    """
    experts, others = _types(config, name, weight_type, named_type)
    scale = params / moe_parameter_count(config) if params else 1.0
    tensors, offset = [], 0
    for tensor_name, gguf_shape in moe_tensors(config.arch, config.dims):
        shape = list(reversed(gguf_shape))
        matrix = tensor_name.endswith(".weight") and len(shape) >= 2 and ".ffn_gate_inp" not in tensor_name
        kind = (experts if "_exps." in tensor_name else others) if matrix else "F32"
        size = tensor_bytes(kind, shape)
        if matrix and (kind == weight_type or scale != 1.0):  # a mix's whole-file rate; a stated size
            rate = bits_per_weight if kind == weight_type else 8 * size / prod(shape)
            size = -(-int(prod(shape) * rate * scale) // 8)
        tensors.append(TensorInfo(name=tensor_name, type=kind, shape=shape, n_bytes=size, offset=offset))
        offset += size
    shape_ = shape_from_fields(_fields(config, weight_type), tensors, name=name, source=source, estimated=True)
    return shape_.model_copy(update={"parameter_count": int(params or shape_.parameter_count)})


def reported_moe(info: Mapping[str, Any], arch: str, params: float) -> MoeConfig | None:
    """The nearest released configuration of a MoE `arch`, with the counts a node reports in place.

    Ollama's /api/show without `verbose` still gives the scalar keys (`{arch}.expert_count`,
    `.expert_used_count`, `.expert_feed_forward_length`, `.block_count`...: server/routes.go
    getModelData empties only arrays longer than 5); those override the configuration's own.

    Raises:
        UnsupportedModel: A reported count is out of the range llama.cpp accepts (the key is named).
    """
    if arch not in MOE_ARCHS:
        return None
    config = nearest_moe(params, arch)
    d = config.dims
    got = {name: _reported(info, f"{arch}.{name}", high) for name, high in _REPORTED.items()}
    n_layer = (got["block_count"] or d.n_layer + d.n_nextn) - d.n_nextn
    dims = d._replace(
        n_layer=max(n_layer, d.n_dense_lead + 1),
        n_expert=got["expert_count"] or d.n_expert,
        n_ff_exp=got["expert_feed_forward_length"] or d.n_ff_exp,
    )
    used = min(got["expert_used_count"] or config.n_expert_used, dims.n_expert)
    context = got["context_length"] or config.context_length
    return config._replace(dims=dims, n_expert_used=used, context_length=context)


# The largest value taken from a node: llama.cpp's LLAMA_MAX_LAYERS and LLAMA_MAX_EXPERTS (src/llama-hparams.h).
_REPORTED = {
    "block_count": 512, "expert_count": 1024, "expert_used_count": 1024, "expert_feed_forward_length": 1 << 20,
    "context_length": MAX_CONTEXT,
}  # fmt: skip


def _reported(info: Mapping[str, Any], key: str, high: int) -> int | None:
    value = info.get(key)
    if value is None or isinstance(value, list):  # absent, or an array Ollama emptied
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= high:
        raise UnsupportedModel(f"/api/show model_info {key!r}: {str(value)[:40]} is not a count in 1..{high:,}")
    return value
