"""Compute buffers: the scratch memory of llama.cpp's worst-case graph (a full micro-batch).

llama.cpp sizes them by allocating the graph of `n_ubatch` tokens against a full cache once, with
ggml-alloc reusing memory as tensors die; the buffer is the high-water mark. This module models
that mark as the largest of three phases of one layer, plus what lives through the whole graph:

  whole graph  the KQ masks ([cells, n_ubatch], f32, or f16 with flash attention), and without
               flash attention the index rows that scatter transposed V into the cache
  attention    without flash attention the KQ matrix, cells x n_ubatch x n_head f32, which
               dominates long contexts; five f32 activations around it, three of them as wide as
               the query heads (n_head x head size, wider than n_embd in qwen3 and gemma3)
  feed-forward gate, up and their product ([n_ff, n_ubatch] each) plus four activations; with
               mixture-of-experts, see `_moe_peak`
  output       the logits of the reserved outputs (one row per sequence in llama-server)

What a CUDA build adds, learnt from ggml-cuda and checked against its logs:
  * a flash-attention node with a quantized cache allocates F16 copies of K and V of the layer
    (ggml_cuda_flash_attn_ext_get_alloc_size) inside the compute buffer;
  * layers left on the CPU still compute on the GPU: a micro-batch of 512 tokens is offloaded op by
    op (ggml_backend_sched op_offload), so their attention pulls the layer's K and V cache into the
    GPU buffer (and the holes those copies leave make the feed-forward phase a little larger);
  * the host side (CUDA_Host) keeps the graph inputs: masks, indices, the token embeddings rows.

Without flash attention, where the CPU layers' K and V copies land is replayed byte for byte
(`homelab.vram.galloc`): when a later layer's K copy cannot fit below the KQ mask, its attention
sits about one K copy higher than the first layer's.

The activation counts were fitted to the captured logs in units of whole tensors, not bytes, so
they scale with the model; they hold for the layers measured (llama, qwen2, gemma2, and on the
CPU build qwen3moe, qwen2moe, gpt-oss, glm4moe, deepseek2: benchmarks/data/vram-cpu-moe).
Other fragmentation is not modelled (docs/vram-accuracy.md lists where it shows).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from homelab.vram.kvcache import LayerCache
from homelab.vram.settings import Context, RunSettings
from homelab.vram.shape import ModelShape, row_bytes

__all__ = [
    "HOST_ACTS",
    "ComputeSplit",
    "GraphTerms",
    "attention_peak",
    "cache_side_rows",
    "fa_f16_copies",
    "graph_terms",
    "layer_ffn_peak",
    "layer_kq",
]

_F32 = 4
_F16 = 2
_I64 = 8
_FLOAT_CACHE = ("f32", "f16", "bf16")
_ATTN_ACTS = 2  # [n_embd, n_ubatch] f32 activations alive next to KQ...
_ATTN_Q_ACTS = 3  # ... and [n_head x head size, n_ubatch] ones (Q, its RoPE, the attention output)
_FFN_ACTS = 4  # ... next to the feed-forward intermediates
HOST_ACTS = 4  # token embedding rows and the graph's input selection on the host
_FULL_LAST_LAYER = ("gpt-oss",)  # architectures whose last block computes every row


@dataclass(frozen=True)
class ComputeSplit:
    """Compute buffer bytes on the GPU and in host memory (CUDA_Host, or CPU on a CPU-only build).

    `gpu_pool_bytes` is no buffer: without flash attention cuBLAS's batched GEMMs of the attention
    (KQ, and KQ times V) work on an f16 copy of the KQ matrix, which ggml-cuda takes from its
    memory pool (ggml_cuda_mul_mat_batched_cublas). The pool keeps its high-water mark, half the KQ
    matrix once the context is full (measured: benchmarks/data/gpu-overhead-*).
    """

    gpu_bytes: int
    host_bytes: int
    gpu_pool_bytes: int = 0
    devices: dict[int, int] = field(default_factory=dict)  # per device index: its compute buffer
    pools: dict[int, int] = field(default_factory=dict)  # per device index: its CUDA pool


@dataclass(frozen=True)
class GraphTerms:
    """The sizes of the worst-case graph's parts, in bytes."""

    masks: int
    v_idxs: int
    small: int
    kq: int
    act: int  # one [n_embd, n_ubatch] f32 activation
    attn_acts: int  # the activations alive next to KQ
    ffn: int
    ffn_last: int  # the last block's: it keeps only the output rows before its feed-forward
    ffn_shared: int  # without the routed experts (they run elsewhere)
    logits: int
    routed_on_host: int  # the routed experts' products when the host runs them
    last_reduction: int = 0  # the last block's expert sum when it computes every row (gpt-oss)


def _q_width(shape: ModelShape) -> int:
    """Query heads x head size: the query projection's output (deepseek2: through its low-rank q_b)."""
    return _width(shape, ".attn_q_b.weight") or _width(shape, ".attn_q.weight") or shape.n_head * shape.head_dim_k


def _attn_acts(shape: ModelShape, t: int, act: int) -> int:
    """The activations alive next to KQ (or, with flash attention, the attention's inputs)."""
    if shape.mla:
        return _mla_acts(shape, t, act)
    if _width(shape, ".attn_kv_b.weight"):  # deepseek2 without MLA: Q and the joined K
        return 2 * _q_width(shape) * t * _F32 + _FFN_ACTS * act
    return _ATTN_ACTS * act + _ATTN_Q_ACTS * _q_width(shape) * t * _F32


def _mla_acts(shape: ModelShape, t: int, act: int) -> int:
    """deepseek2's attention activations when Q is assembled, fitted to CPU graphs varying each width.

    The cache row is the latent (`head_dim_v`, kv_lora_rank) plus the RoPE part; per head, Q is
    projected (q), its no-RoPE part absorbed into the latent (kv_lora_rank wide) and joined with
    the RoPE part (latent + RoPE wide): q, absorbed and joined are alive at once, with the RoPE'd
    part and four activations. The RoPE'd part reuses an activation's hole when it fits in one.
    """
    heads = shape.n_head
    rope = shape.head_dim_k - shape.head_dim_v
    rope_part = heads * rope * t * _F32
    per_token = heads * (_q_width(shape) // heads + 2 * shape.head_dim_v)
    return per_token * t * _F32 + rope_part * (2 if rope_part > act else 1) + _FFN_ACTS * act


def attention_peak(shape: ModelShape, settings: RunSettings, ctx: Context, terms: GraphTerms) -> int:
    """The attention phase's activations and, without flash attention, the KQ matrix.

    deepseek2 with MLA frees q and the absorbed queries once Q is joined: a KQ matrix that fits in
    that hole adds nothing; otherwise KQ sits on top, and so does the transposed copy of the latent
    V (one cache row per cell, made contiguous for the KQ x V product) unless it fits the hole.
    Without MLA its peak may instead be where Q and K are joined (`_kv_b_phase`).
    """
    kv_b = _width(shape, ".attn_kv_b.weight")
    if kv_b and not shape.mla:
        return max(terms.kq + terms.attn_acts, _kv_b_phase(shape, kv_b, ctx.n_ubatch, terms.act))
    if not shape.mla or not terms.kq:
        return terms.kq + terms.attn_acts
    hole = (_q_width(shape) + shape.n_head * shape.head_dim_v) * ctx.n_ubatch * _F32
    if terms.kq <= hole:
        return terms.attn_acts
    v_t = row_bytes(settings.cache_type_k, shape.head_dim_v) * ctx.cells(False) * ctx.n_stream
    return terms.kq + terms.attn_acts + (v_t if v_t > hole else 0)


def _kv_b_phase(shape: ModelShape, kv_b: int, t: int, act: int) -> int:
    """deepseek2 without MLA (older files): K and V decompressed per head by attn_kv_b.

    When Q and K are joined, q, the decompressed K and V ([no-RoPE + V] per head), Q, K, the
    contiguous V, the RoPE'd queries and the residual are alive (fitted to CPU graphs varying each
    width; a head count of 32 or V heads no wider than an activation come out lower, by a few
    activations).
    """
    heads, q = shape.n_head, _q_width(shape)
    rope = shape.head_dim_k - (kv_b // heads - shape.head_dim_v)
    return (3 * q + kv_b + heads * shape.head_dim_v + heads * rope) * t * _F32 + act


def _width(shape: ModelShape, suffix: str, layer: int | None = None) -> int:
    """The widest `blk.*.{suffix}` tensor's second dimension (its output rows), 0 if none; of one block if given."""
    prefix = "" if layer is None else f"blk.{layer}."
    return max(
        (
            t.shape[1]
            for t in shape.tensors
            if t.name.startswith(prefix) and t.name.endswith(suffix) and len(t.shape) >= 2
        ),
        default=0,
    )


def _ffn_peak(shape: ModelShape, t: int, act: int, routed: bool = True, layer: int | None = None) -> int:
    """Peak bytes of the feed-forward phase (of the widest block, or of `layer`): dense (or shared-expert)
    intermediates, or routed experts; with `routed` False the routed experts run elsewhere (the host)
    and only their outputs come back."""
    experts = _width(shape, ".ffn_up_exps.weight", layer)
    # A dense model's width is n_ff; a MoE file's n_ff describes no tensor (qwen3moe), so read them.
    widths = (_width(shape, ".ffn_up.weight", layer), _width(shape, ".ffn_up_shexp.weight", layer))
    dense = max(widths) if experts or layer is not None else shape.n_ff
    prefix = "" if layer is None else f"blk.{layer}."
    gated = any(
        t.name.startswith(prefix) and t.name.endswith(("ffn_gate.weight", "ffn_gate_shexp.weight"))
        for t in shape.tensors
    )
    peak = ((3 if gated else 2) * dense * t * _F32 + _FFN_ACTS * act) if dense else 0
    if experts and routed:
        peak = max(peak, _moe_peak(experts * max(shape.n_expert_used, 1) * t * _F32, shape.n_expert_used * act, act))
    elif experts:  # the routed experts' outputs come back from where they ran
        peak = max(peak, shape.n_expert_used * act + _FFN_ACTS * act)
    return peak


def _moe_peak(inter: int, out: int, act: int) -> int:
    """The routed experts' peak (build_moe_ffn), fitted to CPU graphs varying each width (exact on all).

    `inter` is one intermediate over the active experts ([n_ff_exp, n_expert_used, n_ubatch]: up,
    gate, their product), `out` the experts' outputs ([n_embd, n_expert_used, n_ubatch]). Up to
    one activation wide, an intermediate reuses the hole an attention activation left; the outputs
    fit where up and gate were when those were at least as large, else they sit on top, above the
    three intermediates unless those went into holes.
    """
    small = inter <= act
    intermediates = 3 * inter + _FFN_ACTS * act - (inter if small else 0)
    if out <= 2 * inter:
        return intermediates
    return out + _FFN_ACTS * act + (0 if small else 3 * inter)


def graph_terms(shape: ModelShape, settings: RunSettings, ctx: Context) -> GraphTerms:
    """The parts of the graph of one micro-batch for this model and context."""
    t = ctx.n_ubatch
    kinds = sorted(set(shape.swa_layers))  # which caches exist: dense (False), sliding (True)
    mask_el = _F16 if settings.flash_attn else _F32
    masks = sum(ctx.cells(swa) * t * mask_el for swa in kinds)
    # Without flash attention V is stored transposed: one cache index per value, not per token.
    v_width = max(shape.n_embd_v_gqa(il) for il in range(shape.n_layer))
    v_idxs = 0 if settings.flash_attn or shape.mla else len(kinds) * t * v_width * _I64
    # tokens and positions; K (and, with flash attention, V) cache indices per token; output rows
    small = 2 * t * _F32 + len(kinds) * t * _I64 * (2 if settings.flash_attn else 1) + ctx.n_outputs * _F32
    kq = max(layer_kq(shape, settings, ctx, il) for il in range(shape.n_layer))
    act = shape.n_embd * t * _F32
    # The last block keeps only the output rows before its feed-forward (inp_out_ids; gpt-oss
    # does not): with one block, no feed-forward runs on the whole micro-batch.
    last = t if shape.arch in _FULL_LAST_LAYER else ctx.n_outputs
    rows = last if shape.n_layer_trunk == 1 else t
    return GraphTerms(
        masks=masks,
        v_idxs=v_idxs,
        small=small,
        kq=kq,
        act=act,
        attn_acts=_attn_acts(shape, t, act),
        ffn=_ffn_peak(shape, rows, shape.n_embd * rows * _F32),
        ffn_last=_ffn_peak(shape, last, shape.n_embd * last * _F32),
        ffn_shared=_ffn_peak(shape, rows, shape.n_embd * rows * _F32, routed=False),
        logits=shape.n_vocab * ctx.n_outputs * _F32,
        routed_on_host=_routed(shape, t),
        last_reduction=_last_reduction(shape, t, act) if last == t else 0,
    )


def _last_reduction(shape: ModelShape, t: int, act: int) -> int:
    """The last block's experts summed on every row: their biased down products ([n_embd, n_expert_used,
    n_ubatch], weighted in place), the residual and one running sum (traced with GGML_SCHED_DEBUG)."""
    return shape.n_embd * shape.n_expert_used * t * _F32 + 2 * act if _width(shape, ".ffn_down_exps.weight") else 0


def layer_kq(shape: ModelShape, settings: RunSettings, ctx: Context, layer: int) -> int:
    """One block's KQ matrix without flash attention: its cache's cells (a sliding window's fewer) x n_ubatch
    x n_head, f32."""
    return 0 if settings.flash_attn else ctx.cells(shape.swa_layers[layer]) * ctx.n_ubatch * shape.n_head * _F32


def cache_side_rows(shape: ModelShape, ctx: Context, layer: int) -> int:
    """What a block's cache device gets of its attention when the block's projections run elsewhere
    (`-ot`): the roped queries for the products with the cache, the new K and V rows for the cache write."""
    return (_q_width(shape) + shape.n_embd_k_gqa(layer) + shape.n_embd_v_gqa(layer)) * ctx.n_ubatch * _F32


def layer_ffn_peak(shape: ModelShape, ctx: Context, layer: int) -> int:
    """One block's feed-forward peak, on the rows it computes (the last block: the output rows, as in
    `graph_terms`): what a device holding only that block's tensors runs of it."""
    t = ctx.n_ubatch
    rows = t if layer < shape.n_layer_trunk - 1 or shape.arch in _FULL_LAST_LAYER else ctx.n_outputs
    return _ffn_peak(shape, rows, shape.n_embd * rows * _F32, layer=layer)


def _routed(shape: ModelShape, t: int) -> int:
    """Up and gate products of the routed experts, or one and the down product: what a host running the
    experts of a device's layer holds (fitted to the RPC captures, within 12 MiB of each)."""
    inter = _width(shape, ".ffn_up_exps.weight") * shape.n_expert_used * t * _F32
    out = shape.n_embd * shape.n_expert_used * t * _F32
    return max(2 * inter, inter + out) if inter else 0


def fa_f16_copies(shape: ModelShape, settings: RunSettings, ctx: Context, kv: list[LayerCache]) -> int:
    """F16 copies of a quantized K/V that ggml-cuda's flash attention allocates with its output."""
    if not settings.flash_attn:
        return 0
    need_k = settings.cache_type_k not in _FLOAT_CACHE
    need_v = settings.cache_type_v not in _FLOAT_CACHE
    return max(
        layer.cells * ctx.n_stream * _F16 * (shape.n_embd_k_gqa(il) * need_k + shape.n_embd_v_gqa(il) * need_v)
        for il, layer in enumerate(kv)
    )
