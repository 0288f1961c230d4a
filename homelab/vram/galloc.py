"""ggml-alloc replayed for the CPU layers of a CUDA build: how high their attention sits.

Without flash attention, a CUDA build copies each CPU layer's K and V into the GPU compute buffer
(the layer computes on the GPU anyway), next to the KQ matrix. Where those copies land depends on
ggml-alloc's best fit over everything the layers allocated before, byte for byte: the first
attention lays out `[activations][K copy][KQ mask][V copy][KQ]` (the scheduler allocates a split's
inputs in the order its nodes read them, and the mask lives to the end of the graph); whether a
later layer's K copy fits back below the mask depends on where the feed-forward block and the next
layer's first tensors settled in the hole the first K copy left. No closed rule gets that right
(docs/vram-accuracy.md), so this module replays it: a port of `ggml_dyn_tallocr` (best fit among
the free blocks, else the tail; frees merge with their neighbours) driven by the allocations and
frees of llama.cpp's llama/qwen2 layer graph, in the order its allocation trace shows
(benchmarks/data/alloc-trace-*, `homelab.vram.alloc_trace`).

`attention_rise` is how much higher than the first CPU layer's KQ matrix a later one ends: 0, or
about one K copy when the copies land above the mask.
"""

from __future__ import annotations

from dataclasses import dataclass

from homelab.vram.alloc_trace import Placement
from homelab.vram.kvcache import LayerCache
from homelab.vram.settings import Context, RunSettings
from homelab.vram.shape import ModelShape, TensorInfo
from homelab.vram.weights import cuda_alloc_bytes

__all__ = ["REPLAYED_ARCHS", "BestFit", "attention_rise", "replay_cpu_layers"]

_ALIGN = 128  # ggml-cuda's buffer alignment
_F32 = 4
REPLAYED_ARCHS = ("llama", "qwen2")  # layer graphs this module replays


def _aligned(size: int) -> int:
    return -(-size // _ALIGN) * _ALIGN


@dataclass
class _Block:
    offset: int
    size: int


class BestFit:
    """ggml_dyn_tallocr of one buffer (ggml-alloc.c): best fit among the free blocks but the tail."""

    def __init__(self) -> None:
        self._blocks = [_Block(0, 1 << 62)]  # the last block is the tail, as large as wanted
        self.high_water = 0

    def alloc(self, size: int) -> int:
        """Place `size` bytes; returns the offset."""
        size = _aligned(size)
        best = -1
        for i, block in enumerate(self._blocks[:-1]):
            if block.size >= size and (best < 0 or block.size <= self._blocks[best].size):
                best = i
        block = self._blocks[best]
        offset = block.offset
        block.offset += size
        block.size -= size
        if block.size == 0:
            del self._blocks[best]
        self.high_water = max(self.high_water, offset + size)
        return offset

    def free(self, offset: int, size: int) -> None:
        """Give `size` bytes at `offset` back, merging with adjacent free blocks."""
        size = _aligned(size)
        for i, block in enumerate(self._blocks):
            if block.offset + block.size == offset:
                block.size += size
                if i + 1 < len(self._blocks) and block.offset + block.size == self._blocks[i + 1].offset:
                    block.size += self._blocks[i + 1].size
                    del self._blocks[i + 1]
                return
            if offset + size == block.offset:
                block.offset = offset
                block.size += size
                if i > 0 and self._blocks[i - 1].offset + self._blocks[i - 1].size == block.offset:
                    self._blocks[i - 1].size += block.size
                    del self._blocks[i]
                return
        index = next((i for i, b in enumerate(self._blocks) if b.offset > offset), len(self._blocks))
        self._blocks.insert(index, _Block(offset, size))


class _Replay:
    """Named allocations on a BestFit, as ggml-alloc makes them while it walks the graph."""

    def __init__(self) -> None:
        self.buffer = BestFit()
        self.live: dict[str, tuple[int, int]] = {}
        self.placed: list[Placement] = []

    def a(self, name: str, size: int) -> int:
        offset = self.buffer.alloc(size)
        self.live[name] = (offset, size)
        self.placed.append(Placement(name, offset, _aligned(size)))
        return offset

    def f(self, *names: str) -> None:
        for name in names:
            self.buffer.free(*self.live.pop(name))


def _weights(shape: ModelShape, il: int) -> dict[str, TensorInfo]:
    prefix = f"blk.{il}."
    return {t.name[len(prefix) :]: t for t in shape.tensors if t.name.startswith(prefix)}


def _layer(r: _Replay, shape: ModelShape, il: int, t: int, kv: LayerCache, first: bool, sizes: dict[str, int]) -> int:
    """One CPU layer's allocations and frees; returns where its KQ matrix ends."""
    w = _weights(shape, il)

    def mul_mat(weight: str, out: str, size: int, bias: str | None = None, pos: bool = False) -> None:
        """An op on a CPU weight starts a split; the split's inputs are copied at its start."""
        r.a("w", cuda_alloc_bytes(w[weight]))
        has_bias = bias is not None and bias in w
        if pos and not has_bias:
            r.a("inp_pos", t * _F32)  # RoPE's positions, copied once and kept to the end
        r.a(out, size)
        r.f("w")
        if has_bias:  # the bias add (in place) starts the next split, with RoPE in it
            r.a("b", cuda_alloc_bytes(w[bias]))  # type: ignore[index]
            if pos:
                r.a("inp_pos", t * _F32)
            r.f("b")

    r.a("norm", sizes["act"])
    r.a("nw", cuda_alloc_bytes(w["attn_norm.weight"]))  # the norm's weight; the multiply is in place
    r.f("nw")
    mul_mat("attn_q.weight", "q", sizes["q"], "attn_q.bias", pos=first)
    r.a("q_rope", sizes["q"])  # RoPE of a reshaped view cannot work in place
    r.f("q")
    mul_mat("attn_v.weight", "v", sizes["kv"], "attn_v.bias")
    mul_mat("attn_k.weight", "k", sizes["kv"], "attn_k.bias")
    r.f("norm")
    r.a("k_rope", sizes["kv"])
    r.f("k", "k_rope", "v")  # stored into the CPU cache
    r.a("k_copy", kv.k_bytes)
    if first:
        r.a("mask", sizes["mask"])  # read by the softmax, copied once, alive to the end
    r.a("v_copy", kv.v_bytes)
    kq_end = r.a("kq", sizes["kq"]) + sizes["kq"]
    r.f("k_copy", "q_rope")
    r.a("kqv", sizes["kqv"])
    r.f("v_copy", "kq")
    r.a("kqv_out", sizes["kqv"])
    r.f("kqv")
    mul_mat("attn_output.weight", "attn_out", sizes["act"])
    r.f("kqv_out", "input")  # the residual add works in place in attn_out
    r.a("ffn_norm", sizes["act"])
    r.a("nw", cuda_alloc_bytes(w["ffn_norm.weight"]))
    r.f("nw")
    mul_mat("ffn_gate.weight", "gate", sizes["ffn"])
    mul_mat("ffn_up.weight", "up", sizes["ffn"])
    r.f("ffn_norm")
    r.a("swiglu", sizes["ffn"])
    r.f("gate", "up")
    mul_mat("ffn_down.weight", "ffn_out", sizes["act"])
    r.f("swiglu", "attn_out")
    r.live["input"] = r.live.pop("ffn_out")  # the next layer's input, added in place
    return kq_end


_LAYER_TENSORS = {
    f"{name}.weight"
    for name in ("attn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "ffn_norm", "ffn_gate", "ffn_up", "ffn_down")
}


def _cpu_layers(shape: ModelShape, settings: RunSettings, on_gpu: list[bool]) -> list[int]:
    """The CPU layers whose attention is replayed: none with flash attention or an unreplayed graph
    (another architecture, experts, fused or missing projections)."""
    if settings.flash_attn or settings.backend == "cpu" or shape.arch not in REPLAYED_ARCHS or shape.n_expert:
        return []
    layers = [il for il in range(shape.n_layer) if not on_gpu[il]]
    if any(not _weights(shape, il).keys() >= _LAYER_TENSORS for il in layers):
        return []
    return layers


def replay_cpu_layers(
    shape: ModelShape, settings: RunSettings, ctx: Context, kv: list[LayerCache], on_gpu: list[bool]
) -> list[Placement]:
    """Every allocation in the GPU compute buffer up to the last CPU layer's feed-forward block, in order."""
    return _replay(shape, ctx, kv, _cpu_layers(shape, settings, on_gpu))[0].placed


def attention_rise(
    shape: ModelShape, settings: RunSettings, ctx: Context, kv: list[LayerCache], on_gpu: list[bool]
) -> int:
    """How much higher than the first CPU layer's KQ matrix a later CPU layer's ends, in bytes.

    0 with flash attention, on a CPU-only build, with fewer than two CPU layers, and for
    architectures whose layer graph is not replayed here (REPLAYED_ARCHS).
    """
    cpu_layers = _cpu_layers(shape, settings, on_gpu)
    if len(cpu_layers) < 2:
        return 0
    ends = _replay(shape, ctx, kv, cpu_layers)[1]
    return max(0, max(ends[1:]) - ends[0])


def _replay(shape: ModelShape, ctx: Context, kv: list[LayerCache], cpu_layers: list[int]) -> tuple[_Replay, list[int]]:
    """Replay the graph's inputs and the CPU layers; the replay and where each layer's KQ ends."""
    t = ctx.n_ubatch
    cells = ctx.cells(False)
    head_k = shape.n_embd_k_gqa(0) // shape.n_head_kv[0]
    sizes = {
        "act": shape.n_embd * t * _F32,
        "q": shape.n_head * head_k * t * _F32,
        "kv": shape.n_embd_k_gqa(0) * t * _F32,
        "kqv": shape.n_head * (shape.n_embd_v_gqa(0) // shape.n_head_kv[0]) * t * _F32,
        "ffn": shape.n_ff * t * _F32,
        "mask": cells * t * _F32,
        "kq": cells * t * shape.n_head * _F32,
    }
    r = _Replay()
    # The graph's inputs as the trace shows them: embeddings, their mixed-input twins, and one
    # activation that lives to the end.
    for name, size in (("mixed_embd", sizes["act"]), ("node_1", sizes["act"]), ("slots", t * 8)):
        r.a(name, size)
    r.a("input", sizes["act"])
    r.a("node_2", sizes["act"])
    r.f("mixed_embd", "node_1", "slots")
    ends = [_layer(r, shape, il, t, kv[il], il == cpu_layers[0], sizes) for il in cpu_layers]
    return r, ends
