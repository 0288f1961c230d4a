"""How a model is run: llama-server's memory-relevant flags, and the sizes llama.cpp derives from them.

`RunSettings` mirrors the flags (`-c`, `-np`, `-ctk/-ctv`, `-fa`, `-ngl`, `-ub`, `-b`, `--kv-unified`)
plus the build (CUDA or CPU-only) and the per-GPU overhead that no llama.cpp log shows. `Context`
is what llama.cpp makes of them in `llama_context`'s constructor and the KV cache: the context
padded to 256 cells, split into one stream per parallel sequence, the micro-batch, and the
smaller cache of sliding-window layers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from homelab.vram.sizes import (
    DEFAULT_GPU_OVERHEAD_BYTES,
    MAX_CONTEXT,
    MAX_GPU_LAYERS,
    MAX_GPU_OVERHEAD_BYTES,
    MAX_PARALLEL,
)

if TYPE_CHECKING:
    from homelab.vram.shape import ModelShape

__all__ = [
    "Backend",
    "CacheType",
    "Context",
    "RunSettings",
    "context_for",
]

_CELL_PAD = 256  # llama.cpp pads the context and each stream to 256 cells

CacheType = Literal["f32", "f16", "bf16", "q8_0", "q5_1", "q5_0", "q4_1", "q4_0", "iq4_nl"]
Backend = Literal["cuda", "cpu"]


class RunSettings(BaseModel):
    """One llama-server configuration, as far as memory is concerned."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    ctx_size: int | None = Field(None, gt=0, le=MAX_CONTEXT, description="-c; None: the model's training context")
    parallel: int = Field(1, gt=0, le=MAX_PARALLEL, description="-np: parallel sequences (slots)")
    cache_type_k: CacheType = "f16"
    cache_type_v: CacheType = "f16"
    flash_attn: bool = False
    n_gpu_layers: int = Field(0, ge=-1, le=MAX_GPU_LAYERS, description="-ngl; the output layer counts as one; -1: all")
    n_ubatch: int = Field(512, gt=0, le=MAX_CONTEXT)
    n_batch: int = Field(2048, gt=0, le=MAX_CONTEXT)
    kv_unified: bool = False
    backend: Backend = Field("cuda", description="the llama.cpp build: CUDA, or CPU only (no GPU use)")
    gpu_overhead_bytes: int = Field(
        DEFAULT_GPU_OVERHEAD_BYTES, ge=0, le=MAX_GPU_OVERHEAD_BYTES, description="per GPU used, per process"
    )

    @model_validator(mode="after")
    def _llama_cpp_rules(self) -> RunSettings:
        if self.cache_type_v not in ("f32", "f16", "bf16") and not self.flash_attn:
            raise ValueError(f"a quantized V cache ({self.cache_type_v}) needs flash attention, as in llama.cpp")
        return self


@dataclass(frozen=True)
class Context:
    """The sizes llama.cpp derives from the settings for one model."""

    n_ctx: int  # total cells
    n_stream: int  # KV streams: one per sequence unless the cache is unified
    n_ctx_seq: int  # cells per stream
    swa_cells: int  # cells per stream of a sliding-window layer
    n_ubatch: int  # tokens of the worst-case graph that sizes the compute buffers
    n_outputs: int  # logits rows reserved (llama-server: one per sequence)
    n_gpu_layers: int  # clamped to 0..n_layer+1 (0 on a CPU-only build)

    def cells(self, swa: bool) -> int:
        """Cells per stream of a layer."""
        return self.swa_cells if swa else self.n_ctx_seq


def _pad(n: int) -> int:
    return -(-n // _CELL_PAD) * _CELL_PAD


def context_for(shape: ModelShape, settings: RunSettings) -> Context:
    """llama.cpp's context arithmetic (llama-context.cpp, llama-kv-cache-iswa.cpp) for this model."""
    n_ctx = _pad(settings.ctx_size or shape.context_length)
    n_stream = 1 if settings.kv_unified else settings.parallel
    n_ctx_seq = n_ctx if settings.kv_unified else _pad(n_ctx // n_stream)
    n_ctx = n_ctx_seq * (1 if settings.kv_unified else n_stream)
    n_batch = min(n_ctx, settings.n_batch)
    n_ubatch = min(n_batch, settings.n_ubatch)
    swa_cells = n_ctx_seq
    if shape.sliding_window:
        seqs = settings.parallel if settings.kv_unified else 1
        swa_cells = _pad(min(n_ctx_seq, shape.sliding_window * seqs + n_ubatch))
    layers = shape.n_layer + 1
    ngl = layers if settings.n_gpu_layers < 0 else min(settings.n_gpu_layers, layers)
    if settings.backend == "cpu":
        ngl = 0
    return Context(n_ctx, n_stream, n_ctx_seq, swa_cells, n_ubatch, settings.parallel, ngl)
