"""Tiny random-weight mixture-of-experts GGUF models, in the tensor layout llama.cpp's loader expects.

The VRAM estimator is checked against llama.cpp's own buffers for each MoE architecture it
models; these files give llama-server something real to load for each: routed experts (3-D
tensors, one matrix per expert), shared experts, leading dense layers, attention sinks,
sliding-window layers and multi-head latent attention, each named and shaped as in llama.cpp's
`src/models/*.cpp` `load_arch_tensors`. The vocabulary and chat template are `tiny_gguf`'s.
Shapes are gguf-py's (ggml's `ne` reversed).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Literal, NamedTuple

import numpy as np
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, GGUFWriter, quants

from homelab.tiny_gguf import FILE_TYPES, add_metadata, add_tokenizer, gguf_file, tiny_vocab

__all__ = ["MOE_ARCHS", "MoeArch", "MoeDims", "moe_tensors", "write_tiny_moe"]

MoeArch = Literal["qwen3moe", "qwen2moe", "gpt-oss", "glm4moe", "deepseek2"]
MOE_ARCHS: tuple[MoeArch, ...] = ("qwen3moe", "qwen2moe", "gpt-oss", "glm4moe", "deepseek2")
_QUANTIZED = (GGMLQuantizationType.Q8_0, GGMLQuantizationType.Q4_0, GGMLQuantizationType.MXFP4)
_SIGMOID_GATING = 2  # llama_expert_gating_func_type: GLM-4.5 routes with a sigmoid


class MoeDims(NamedTuple):
    """A MoE model's widths and counts as the tensor layout needs them (`homelab.vram.guess_moe` lays
    out released models with it, so an estimate by name has the tensors a file would)."""

    n_layer: int
    n_embd: int
    n_head: int
    n_kv: int  # key/value width (heads x head size)
    head: int  # key head size; deepseek2: the MLA head (no-RoPE part + RoPE part)
    head_v: int
    n_expert: int
    n_ff_exp: int
    n_ff_shexp: int
    n_ff: int  # leading dense layers' width
    n_dense_lead: int
    n_nextn: int
    q_lora: int
    kv_lora: int
    rope: int
    n_vocab: int


def write_tiny_moe(
    path: str | os.PathLike[str],
    *,
    arch: MoeArch = "qwen3moe",
    n_layer: int = 2,
    n_embd: int = 64,
    n_head: int = 4,
    n_head_kv: int = 2,
    head_dim: int | None = None,
    n_expert: int = 4,
    n_expert_used: int = 2,
    n_ff_exp: int = 64,
    n_ff_shexp: int = 128,
    n_expert_shared: int = 1,
    n_dense_lead: int = 0,
    n_nextn: int = 0,
    n_ff: int | None = None,
    q_lora_rank: int = 64,
    kv_lora_rank: int = 64,
    rope_dim: int = 32,
    head_dim_v: int | None = None,
    n_vocab: int = 512,
    context_length: int = 2048,
    dtype: GGMLQuantizationType = GGMLQuantizationType.F32,
    expert_dtype: GGMLQuantizationType | None = None,
    sliding_window: int = 128,
    seed: int = 0,
    name: str = "homelab-tiny-moe",
    sparse: bool = False,
) -> Path:
    """Write a random-weight mixture-of-experts GGUF that llama.cpp loads and serves.

    Args:
        path: Where to write the file.
        arch: "qwen3moe" (q/k norms, experts only), "qwen2moe" (q/k/v biases, a gated shared
            expert of `n_ff_shexp`), "gpt-oss" (biases everywhere, attention sinks, sliding-window
            attention on every other layer), "glm4moe" (q/k/v biases, `n_expert_shared` shared
            experts, `n_dense_lead` dense first layers, sigmoid routing with a selection bias) or
            "deepseek2" (multi-head latent attention: queries and keys/values through low-rank
            `q_lora_rank` and `kv_lora_rank` projections, the cache holding the compressed keys
            only; shared experts and dense first layers as glm4moe).
        n_head_kv: Key/value heads (deepseek2: 1 for a file converted for MLA, whose latent cache all
            heads share; n_head for an older one that decompresses K and V per head, wkv_b).
        head_dim: Key head size; default n_embd / n_head (deepseek2: no-RoPE plus RoPE part).
        n_expert: Experts per layer.
        n_expert_used: Experts routed to per token.
        n_ff_exp: Feed-forward width of one expert.
        n_ff_shexp: qwen2moe's shared expert width.
        n_expert_shared: glm4moe's and deepseek2's shared experts (each `n_ff_exp` wide).
        n_dense_lead: glm4moe's and deepseek2's leading dense layers, `n_ff` wide.
        n_nextn: glm4moe's and deepseek2's multi-token-prediction layers after the `n_layer`
            blocks (GLM-4.5 ships one): counted in block_count, skipped by llama-server.
        n_ff: The dense layers' width (the metadata's feed_forward_length); default
            n_ff_exp x n_expert_used.
        q_lora_rank: deepseek2's query compression rank; 0 for a plain query projection (Lite).
        kv_lora_rank: deepseek2's key/value compression rank.
        rope_dim: deepseek2's RoPE part of a head.
        head_dim_v: deepseek2's value head size; default `head_dim`.
        dtype: Type of the matrices (routers and norms stay F32, as converters keep them).
        expert_dtype: Type of the expert tensors (MXFP4 for gpt-oss as released); default `dtype`.
        sliding_window: gpt-oss's attention window in tokens.
        sparse: Write the header and tensor table only and leave the data a hole (a sparse file):
            a released model's shape at its full size for the planner, which llama.cpp must not load.
        The rest as in `homelab.tiny_gguf.write_tiny_llama`.

    Returns:
        The path written.

    Raises:
        ValueError: An unsupported dtype or architecture, or inconsistent head or expert counts.
    """
    if dtype not in FILE_TYPES or (expert_dtype or dtype) not in (*FILE_TYPES, GGMLQuantizationType.MXFP4):
        raise ValueError(f"dtype must be one of {', '.join(t.name for t in FILE_TYPES)}, got {dtype!r}")
    if arch not in MOE_ARCHS:
        raise ValueError(f"arch must be one of {', '.join(MOE_ARCHS)}, got {arch!r}")
    head = head_dim or n_embd // n_head
    deepseek = arch == "deepseek2"
    if n_head % n_head_kv or not 0 < n_expert_used <= n_expert or (deepseek and head <= rope_dim):
        raise ValueError("inconsistent heads or experts")
    if deepseek and n_head_kv not in (1, n_head):
        raise ValueError("deepseek2 has one latent KV head (MLA) or one per query head (older files)")
    if arch == "qwen2moe" and head * n_head != n_embd:
        raise ValueError("qwen2moe's heads must fill n_embd")
    shexp = n_ff_shexp if arch == "qwen2moe" else n_ff_exp * n_expert_shared
    d = MoeDims(
        n_layer, n_embd, n_head, n_head_kv * head, head, head_dim_v or head, n_expert, n_ff_exp, shexp,
        n_ff or n_ff_exp * n_expert_used, n_dense_lead, n_nextn, q_lora_rank, kv_lora_rank, rope_dim, n_vocab,
    )  # fmt: skip
    tokens, scores, types = tiny_vocab(n_vocab)
    out = Path(path)
    with gguf_file(out, arch, sparse=sparse) as writer:
        add_metadata(writer, name, n_layer + n_nextn, n_embd, n_head, n_head_kv, d.n_ff, context_length, dtype)
        _add_moe_metadata(writer, arch, d, n_expert_used, n_expert_shared, sliding_window)
        add_tokenizer(writer, tokens, scores, types)
        rng = np.random.default_rng(seed)
        for tensor_name, shape in moe_tensors(arch, d):
            kind = expert_dtype or dtype if "_exps." in tensor_name else dtype
            if sparse:
                _add_hole(writer, tensor_name, shape, kind)
            else:
                _add_weight(writer, tensor_name, shape, kind, rng)
    return out


def _add_moe_metadata(
    writer: GGUFWriter, arch: MoeArch, d: MoeDims, n_used: int, n_shared: int, sliding_window: int
) -> None:
    if arch == "deepseek2" and d.n_kv == d.head:
        # A converted MLA model: one latent "KV head" of kv_lora_rank + RoPE values, no V cache.
        writer.add_key_length(d.kv_lora + d.rope)
        writer.add_value_length(d.kv_lora)
        writer.add_key_length_mla(d.head)
        writer.add_value_length_mla(d.head_v)
    elif arch == "deepseek2":
        writer.add_key_length(d.head)
        writer.add_value_length(d.head_v)
    if arch == "deepseek2":
        writer.add_q_lora_rank(d.q_lora)
        writer.add_kv_lora_rank(d.kv_lora)
        writer.add_rope_dimension_count(d.rope)
    if arch != "deepseek2":
        writer.add_key_length(d.head)
        writer.add_value_length(d.head)
    writer.add_expert_count(d.n_expert)
    writer.add_expert_used_count(n_used)
    writer.add_expert_feed_forward_length(d.n_ff_exp)
    if arch == "qwen2moe":
        writer.add_expert_shared_feed_forward_length(d.n_ff_shexp)
    if arch == "gpt-oss":
        writer.add_sliding_window(sliding_window)
    if arch in ("glm4moe", "deepseek2"):
        writer.add_expert_shared_count(n_shared)
        writer.add_leading_dense_block_count(d.n_dense_lead)
        writer.add_expert_weights_norm(True)
        writer.add_nextn_predict_layers(d.n_nextn)
    if arch == "glm4moe":
        writer.add_uint32(f"{arch}.expert_gating_func", _SIGMOID_GATING)


# A name ending in one of these is a matrix written in the model's dtype; the rest stays F32.
_MATRICES = (
    "_exps.weight", "_shexp.weight", "attn_q.weight", "attn_k.weight", "attn_v.weight", "attn_output.weight",
    "attn_q_a.weight", "attn_q_b.weight", "attn_kv_a_mqa.weight", "attn_k_b.weight", "attn_v_b.weight",
    "attn_kv_b.weight",
    "ffn_gate.weight", "ffn_up.weight", "ffn_down.weight", "nextn.eh_proj.weight",
)  # fmt: skip


def _add_weight(
    writer: GGUFWriter, name: str, shape: tuple[int, ...], dtype: GGMLQuantizationType, rng: np.random.Generator
) -> None:
    """One tensor of small random values (norms near 1); matrices in `dtype`, the rest F32."""
    array = rng.standard_normal(shape, dtype=np.float32) * 0.02
    if name.endswith("norm.weight"):
        array += 1.0
    matrix = name.endswith(_MATRICES) or name in ("token_embd.weight", "output.weight")
    if matrix and dtype in _QUANTIZED:
        writer.add_tensor(name, quants.quantize(array, dtype), raw_dtype=dtype)
    else:
        writer.add_tensor(name, array.astype(np.float16) if matrix and dtype == GGMLQuantizationType.F16 else array)


def _add_hole(writer: GGUFWriter, name: str, shape: tuple[int, ...], dtype: GGMLQuantizationType) -> None:
    """One tensor's table entry, typed as `_add_weight` would write it, without data."""
    matrix = name.endswith(_MATRICES) or name in ("token_embd.weight", "output.weight")
    kind = dtype if matrix else GGMLQuantizationType.F32
    block, size = GGML_QUANT_SIZES[kind]
    writer.add_tensor_info(name, shape, np.dtype(np.float32), math.prod(shape) // block * size, raw_dtype=kind)


_Tensors = list[tuple[str, tuple[int, ...]]]


def moe_tensors(arch: MoeArch, d: MoeDims) -> _Tensors:
    """Names and gguf-py (reversed) shapes of the model's tensors, in file order (llama.cpp's names)."""
    out: _Tensors = [("token_embd.weight", (d.n_vocab, d.n_embd))]
    for i in range(d.n_layer + d.n_nextn):
        blk = f"blk.{i}"
        out += [(f"{blk}.attn_norm.weight", (d.n_embd,))]
        out += _mla_tensors(blk, d) if arch == "deepseek2" else _attention_tensors(arch, blk, d)
        if i < d.n_dense_lead:
            out += [
                (f"{blk}.ffn_gate.weight", (d.n_ff, d.n_embd)),
                (f"{blk}.ffn_down.weight", (d.n_embd, d.n_ff)),
                (f"{blk}.ffn_up.weight", (d.n_ff, d.n_embd)),
            ]
        else:
            out += _expert_tensors(arch, blk, d)
        if i >= d.n_layer:
            out += [
                (f"{blk}.nextn.eh_proj.weight", (d.n_embd, 2 * d.n_embd)),
                (f"{blk}.nextn.enorm.weight", (d.n_embd,)),
                (f"{blk}.nextn.hnorm.weight", (d.n_embd,)),
                (f"{blk}.nextn.shared_head_norm.weight", (d.n_embd,)),
            ]
    return [*out, ("output_norm.weight", (d.n_embd,)), ("output.weight", (d.n_vocab, d.n_embd))]


def _attention_tensors(arch: MoeArch, blk: str, d: MoeDims) -> _Tensors:
    n_q = d.n_head * d.head
    out: _Tensors = [
        (f"{blk}.attn_q.weight", (n_q, d.n_embd)),
        (f"{blk}.attn_k.weight", (d.n_kv, d.n_embd)),
        (f"{blk}.attn_v.weight", (d.n_kv, d.n_embd)),
    ]
    if arch == "qwen3moe":
        out += [(f"{blk}.attn_q_norm.weight", (d.head,)), (f"{blk}.attn_k_norm.weight", (d.head,))]
    else:
        out += [(f"{blk}.attn_q.bias", (n_q,)), (f"{blk}.attn_k.bias", (d.n_kv,)), (f"{blk}.attn_v.bias", (d.n_kv,))]
    out += [(f"{blk}.attn_output.weight", (d.n_embd, n_q))]
    if arch == "gpt-oss":
        out += [(f"{blk}.attn_output.bias", (d.n_embd,)), (f"{blk}.attn_sinks.weight", (d.n_head,))]
    # gpt-oss and glm4moe normalise the FFN input with a post-attention norm, the qwens with ffn_norm.
    norm = "post_attention_norm" if arch in ("gpt-oss", "glm4moe") else "ffn_norm"
    return [*out, (f"{blk}.{norm}.weight", (d.n_embd,))]


def _mla_tensors(blk: str, d: MoeDims) -> _Tensors:
    """deepseek2's multi-head latent attention: as converted for MLA (k_b and v_b per head) or,
    with a KV head per query head, the older kv_b that decompresses K and V."""
    nope = d.head - d.rope
    out: _Tensors = [(f"{blk}.attn_kv_a_norm.weight", (d.kv_lora,))]
    if d.q_lora:
        out += [
            (f"{blk}.attn_q_a_norm.weight", (d.q_lora,)),
            (f"{blk}.attn_q_a.weight", (d.q_lora, d.n_embd)),
            (f"{blk}.attn_q_b.weight", (d.n_head * d.head, d.q_lora)),
        ]
    else:
        out += [(f"{blk}.attn_q.weight", (d.n_head * d.head, d.n_embd))]
    out += [(f"{blk}.attn_kv_a_mqa.weight", (d.kv_lora + d.rope, d.n_embd))]
    if d.n_kv == d.head:
        out += [
            (f"{blk}.attn_k_b.weight", (d.n_head, d.kv_lora, nope)),
            (f"{blk}.attn_v_b.weight", (d.n_head, d.head_v, d.kv_lora)),
        ]
    else:
        out += [(f"{blk}.attn_kv_b.weight", (d.n_head * (nope + d.head_v), d.kv_lora))]
    return [
        *out,
        (f"{blk}.attn_output.weight", (d.n_embd, d.n_head * d.head_v)),
        (f"{blk}.ffn_norm.weight", (d.n_embd,)),
    ]


def _expert_tensors(arch: MoeArch, blk: str, d: MoeDims) -> _Tensors:
    out: _Tensors = [(f"{blk}.ffn_gate_inp.weight", (d.n_expert, d.n_embd))]
    if arch in ("glm4moe", "deepseek2"):
        out += [(f"{blk}.exp_probs_b.bias", (d.n_expert,))]
    if arch == "gpt-oss":
        out += [
            (f"{blk}.ffn_gate_inp.bias", (d.n_expert,)),
            (f"{blk}.ffn_gate_exps.bias", (d.n_expert, d.n_ff_exp)),
            (f"{blk}.ffn_down_exps.bias", (d.n_expert, d.n_embd)),
            (f"{blk}.ffn_up_exps.bias", (d.n_expert, d.n_ff_exp)),
        ]
    out += [
        (f"{blk}.ffn_gate_exps.weight", (d.n_expert, d.n_ff_exp, d.n_embd)),
        (f"{blk}.ffn_down_exps.weight", (d.n_expert, d.n_embd, d.n_ff_exp)),
        (f"{blk}.ffn_up_exps.weight", (d.n_expert, d.n_ff_exp, d.n_embd)),
    ]
    if arch in ("qwen2moe", "glm4moe", "deepseek2"):
        if arch == "qwen2moe":
            out += [(f"{blk}.ffn_gate_inp_shexp.weight", (d.n_embd,))]
        out += [
            (f"{blk}.ffn_gate_shexp.weight", (d.n_ff_shexp, d.n_embd)),
            (f"{blk}.ffn_down_shexp.weight", (d.n_embd, d.n_ff_shexp)),
            (f"{blk}.ffn_up_shexp.weight", (d.n_ff_shexp, d.n_embd)),
        ]
    return out
