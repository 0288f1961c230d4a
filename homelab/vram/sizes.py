"""Sizes and bounds of a llama-server run, as plain numbers: units, the per-GPU overhead, the flags' limits.

Apart from `settings` so that reading them loads no pydantic model: `homelab plan`'s options
are bounded by them, and `homelab --help` builds every option.
"""

from __future__ import annotations

__all__ = [
    "DEFAULT_GPU_OVERHEAD_BYTES",
    "GIB",
    "MAX_CONTEXT",
    "MAX_GPU_LAYERS",
    "MAX_GPU_OVERHEAD_BYTES",
    "MAX_PARALLEL",
    "MIB",
]

MIB = 1024**2
GIB = 1024**3
# What one llama-server process holds on a GPU beyond its logged buffers and the modelled CUDA
# pool, once it has answered a prompt: CUDA context (518 MiB), cuBLAS handle and workspace (~67),
# kernels loaded lazily, the pool's small allocations. Measured on an H200 and an H100 (driver
# 580.159.04, CUDA 13.0): 600-693 MiB over 15 starts, rounded up (homelab.vram.overhead derives
# it from benchmarks/data/gpu-overhead-*). Other GPUs, drivers and CUDA versions differ: configurable.
DEFAULT_GPU_OVERHEAD_BYTES = 704 * MIB
# Bounds on the flags: llama.cpp's own where it has one, else far above any real run.
MAX_CONTEXT = 1 << 26  # tokens; the longest released context is 10M (Llama 4 Scout)
MAX_PARALLEL = 256  # LLAMA_MAX_SEQ: llama-context.cpp throws "n_seq_max must be <= 256"
MAX_GPU_LAYERS = 1 << 16  # any -ngl above a model's layer count means all of them
MAX_GPU_OVERHEAD_BYTES = 1 << 40
