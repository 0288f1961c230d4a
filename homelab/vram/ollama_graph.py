"""Ollama 0.12's own memory formulas: what its scheduler believes a model's layers, cache and graph take.

Ollama 0.12.x sizes a model for its llama.cpp runner not from llama.cpp's buffers but from its
own formulas in `fs/ggml/ggml.go` (identical from v0.12.0 to v0.12.11; line numbers at v0.12.11):

- a layer is the sum of the tensors named `blk.N.*` (`GroupLayers`, :300-321; `Layer.Size`, :325);
  the output layer is `output_norm` plus `output`, or `token_embd` when the output is tied
  (llm/server.go:499-508);
- the KV cache of an attention layer is `context * (key_length + value_length) * head_count_kv`
  elements of 2 bytes (f16), 1 (q8_0) or 0.5 (q4_0), with `context = num_ctx * num_parallel`
  (`GraphSize`, :550-611, `kvCacheBytesPerElement`, :836-848): no padding, no sliding window;
- the compute graph is a per-architecture formula (`GraphSize`'s switch, :613-797) or, for an
  architecture it does not list, `head_count / head_count_kv_min * kv_total / 6`
  (llm/server.go:542-549), for a partly (`partial`) and a fully (`full`) offloaded model.

These differ from llama.cpp's real buffers (`homelab.vram.estimate`), and that difference is why
Ollama offloads fewer or more layers than llama.cpp would fit. Only the architectures Ollama 0.12
runs on its llama.cpp runner are listed; those it runs on its own engine (`OllamaEngineRequired`,
:241-253) are sized by measuring, see `homelab.vram.ollama_sched`.
"""

from __future__ import annotations

from dataclasses import dataclass

from homelab.vram.shape import ModelShape, layer_index

__all__ = ["OllamaSizes", "ollama_sizes"]

_BYTES_PER_ELEMENT = {"q8_0": 1.0, "q4_0": 0.5, "f32": 4.0}  # anything else: f16, 2 bytes (:836-848)


@dataclass(frozen=True)
class OllamaSizes:
    """Ollama 0.12's view of one model at one context (bytes)."""

    layer_weights: list[int]  # per block (`blk.N`), in block order
    output_weights: int  # output_norm + output (or token_embd when tied)
    kv: list[int]  # per block
    graph_partial: int
    graph_full: int


def _group_sizes(shape: ModelShape) -> tuple[list[int], dict[str, int]]:
    """`GroupLayers` (:300-321): tensor bytes by `blk.N`, and by first name part for the rest."""
    blocks = [0] * shape.n_layer
    other: dict[str, int] = {}
    for t in shape.tensors:
        il = layer_index(t.name)
        if il is not None and il < shape.n_layer:
            blocks[il] += t.n_bytes
        else:
            key = t.name.split(".")[0]
            other[key] = other.get(key, 0) + t.n_bytes
    return blocks, other


def _kv(shape: ModelShape, context: int, cache_type: str) -> list[int]:
    """Per-layer cache (:575-611): full attention on every layer with heads, nothing else."""
    per = _BYTES_PER_ELEMENT.get(cache_type, 2.0)
    k_v = shape.head_dim_k + shape.head_dim_v
    return [int(float(context * k_v * heads) * per) if heads > 0 else 0 for heads in shape.n_head_kv]


def _tensor(shape: ModelShape, name: str) -> tuple[int, list[int]] | None:
    found = next((t for t in shape.tensors if t.name == name), None)
    return (found.n_bytes, found.shape) if found else None


def _graph(shape: ModelShape, context: int, batch: int, kv_total: int) -> tuple[int, int]:
    """(partial, full) by architecture (:613-797); (0, 0) where Ollama has no formula."""
    arch, e, vocab = shape.arch, shape.n_embd, shape.n_vocab
    heads, heads_kv = shape.n_head, max(shape.n_head_kv)
    e_heads = e // shape.n_head  # EmbeddingHeadCountMax: embedding / head_count_min (:118-124)
    e_heads_k = shape.head_dim_k
    vocab_graph = 4 * batch * (e + vocab)
    vocab_partial = vocab_graph + e * vocab * 105 // 128
    if arch in ("llama", "llama4"):
        full = max(4 * batch * (1 + 4 * e + context * (1 + heads)), vocab_graph)
        partial = 4 * batch * e + max(
            4 * batch * (1 + e + max(context, e))
            + e * e * 9 // 16
            + 4 * context * (batch * heads + e_heads * heads_kv),
            vocab_partial,
        )
        if exps := _tensor(shape, "blk.0.ffn_gate_exps.weight"):  # mixtral 8x22b (:626-632)
            partial = max(
                3 * exps[0] + 4 * batch * (2 * shape.n_ff + heads_kv + e + context + e_heads * heads_kv),
                4
                * (context * batch * heads + context * e_heads * heads_kv + batch * 1024 + e_heads * heads_kv * batch),
            )
        elif gate := _tensor(shape, "blk.0.ffn_gate.0.weight"):  # mixtral 8x7b (:633-640)
            ff1 = gate[1][1]
            full = 4 * batch * (2 + 3 * e + context * (1 + heads) + 2 * heads_kv + ff1)
            partial = max(
                4 * batch * (3 + e_heads * heads_kv + e + context * (1 + heads) + ff1)
                + (e * e + 3 * e * heads_kv * ff1) * 9 // 16,
                4 * batch * (1 + 2 * e + context * (1 + heads)) + e * (6 * context * heads_kv // heads + e * 9 // 16),
            )
        return partial, full
    if arch in ("gemma", "gemma2"):  # (:676-706, gemma3's sliding window aside: it runs on Ollama's engine)
        full = max(vocab_graph, 4 * batch * (2 + context + context * heads + 2 * e + 2 * e_heads_k * heads))
        partial = max(
            4 * e * batch + e * vocab * 105 // 128 + 4 * vocab * batch,
            4 * batch * (2 * e + 1 + 2 * e_heads_k * heads + context + context * heads)
            + 4 * e_heads_k * context * 8
            + e * e_heads_k * heads * 9 // 16,
        )
        return partial, full
    if arch == "command-r":  # (:707-716)
        full = max(vocab_graph, 4 * batch * (2 + 4 * e + context * (1 + heads)))
        partial = max(
            vocab_partial, 4 * batch * (1 + 2 * e + context * (1 + heads)) + 4 * e * context + e * e * 9 // 16
        )
        return partial, full
    if arch == "qwen2":  # (:717-726)
        full = max(vocab_graph, 4 * batch * (1 + 2 * e + context + context * heads))
        partial = max(vocab_partial, 4 * (batch * (1 + 2 * e + context * (1 + heads)) + e * (1 + context)))
        return partial, full
    if arch == "phi2":  # (:727-736)
        full = max(vocab_graph, 4 * batch * (1 + 4 * e + context + context * heads))
        partial = max(
            4 * batch * (2 * e + vocab) + e * vocab * 105 // 128, 4 * batch * (2 + 3 * e + context + context * heads)
        )
        return partial, full
    if arch == "stablelm":  # (:737-742)
        full = 4 * batch * (context * (1 + heads) + 3 * e + 2)
        return max(4 * batch * (vocab + 2 * e), full), full
    if arch == "deepseek2":  # (:743-752)
        full = max(
            4 * batch * (3 * e + vocab),
            4 * batch * (3 * e + 2 + context * (1 + heads_kv) + 2 * e_heads_k * heads_kv),
        )
        partial = max(
            4 * batch * (3 * e + vocab) + e * vocab * 105 // 128,
            4 * batch * (2 * e + 1 + 2 * e_heads_k * heads_kv + context + context * heads_kv)
            + 4 * e_heads_k * context * heads_kv
            + e * e_heads_k * heads_kv * 9 // 16,
        )
        return partial, full
    if arch == "chatglm":  # (:753-778)
        full = 4 * batch * (e + vocab)
        partial = full + e * vocab * 105 // 128
        if bias := _tensor(shape, "blk.0.attn_qkv.bias"):
            qkv = bias[1][0]
            full = max(full, 4 * batch * (2 + 2 * e + context + context * heads + e_heads_k * heads + qkv))
            partial = max(
                partial,
                4 * batch * (1 + 2 * e + e_heads_k * heads + context + context * heads)
                + 4 * e_heads_k * context
                + 4 * context * e_heads_k
                + 4 * qkv,
            )
        return partial, full
    return 0, 0


def ollama_sizes(shape: ModelShape, num_ctx: int, num_parallel: int, batch: int, cache_type: str) -> OllamaSizes:
    """Ollama 0.12's sizes for `shape` at `num_ctx` per sequence (see the module docstring).

    Args:
        num_ctx: the context per sequence, already clamped to the training context.
        batch: `min(num_batch, num_ctx)` (llm/server.go:171; num_batch defaults to 512).
        cache_type: the KV cache type Ollama asks for ("" for its f16 default).
    """
    context = num_ctx * num_parallel  # GraphSize's `context *= numParallel` (:551)
    blocks, other = _group_sizes(shape)
    output = other.get("output_norm", 0) + other.get("output", other.get("token_embd", 0))
    kv = _kv(shape, context, cache_type)
    partial, full = _graph(shape, context, batch, sum(kv))
    if partial == 0:  # llm/server.go:542-549: the generic guess from the cache
        gqa = shape.n_head // max(min(shape.n_head_kv), 1)
        partial = gqa * sum(kv) // 6
    return OllamaSizes(blocks, output, kv, partial, full or partial)
