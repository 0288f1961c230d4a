"""VRAM planning: model metadata readers, the memory estimator and the lineup planner.

    gguf_header   a GGUF's header, every count checked against the file
    metadata      a local GGUF -> ModelShape          served   Ollama /api/show, llama-server /props
    guess         a name or parameter count -> an estimated ModelShape
    settings      llama-server's memory flags, and the sizes llama.cpp derives from them
    weights, kvcache, compute   the three things llama.cpp allocates, split GPU / host
    estimate      their sum (and the most GPU layers that fit a budget)
    planner       a lineup on the GPUs of the cluster   lineup   that lineup from the inventory
    llama_log     llama.cpp's own figures, read from its log   accuracy   the two compared

Accuracy against llama.cpp's logs: docs/vram-accuracy.md.
"""

from homelab.vram.estimate import Estimate, estimate, max_gpu_layers
from homelab.vram.guess import guess_shape, shape_of
from homelab.vram.metadata import read_gguf
from homelab.vram.planner import GpuSlot, LineupEntry, Plan, PlanPolicy, plan_lineup
from homelab.vram.settings import DEFAULT_GPU_OVERHEAD_BYTES, RunSettings
from homelab.vram.shape import ModelShape

__all__ = [
    "DEFAULT_GPU_OVERHEAD_BYTES",
    "Estimate",
    "GpuSlot",
    "LineupEntry",
    "ModelShape",
    "Plan",
    "PlanPolicy",
    "RunSettings",
    "estimate",
    "guess_shape",
    "max_gpu_layers",
    "plan_lineup",
    "read_gguf",
    "shape_of",
]
