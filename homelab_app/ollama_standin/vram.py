"""The stand-in's `size_vram`: it has no GPU, so the figure `/api/ps` reports is a documented model of Ollama's.

A figure given to the stand-in (`StandInOptions.vram_bytes`, then `ModelSpec.size_vram`) wins.
A model created from a GGUF the stand-in holds is sized as Ollama 0.30+ sizes it: the GPU
buffers llama-server allocates (weights of the offloaded layers, KV cache, compute; no CUDA
context), here from homelab's own llama.cpp memory model (`homelab.vram.estimate`) with the
context Ollama launches: `num_ctx` clamped to the training context (server/sched.go:161
`effectiveContext` at v0.33.0-rc2), times OLLAMA_NUM_PARALLEL (llm/llama_server.go:375,
`-c num_ctx*parallel`). Ollama 0.12 adds a fixed 457 MiB per GPU used (`OllamaBehaviour`).
Anything else keeps the rule of `ModelSpec.vram` (its bytes spread over its layers).
"""

from __future__ import annotations

from pathlib import Path

from homelab.errors import VramError
from homelab.vram.estimate import estimate
from homelab.vram.metadata import read_gguf
from homelab.vram.settings import RunSettings
from homelab_app.ollama_standin.models import ModelSpec
from homelab_app.ollama_standin.versions import OllamaBehaviour

__all__ = ["size_vram"]


def size_vram(
    model: ModelSpec, path: Path | None, behaviour: OllamaBehaviour, num_parallel: int, override: int | None = None
) -> int:
    """Bytes `/api/ps` reports on the GPU for `model`, loaded (see the module docstring).

    Args:
        path: the model's GGUF blob, when the stand-in holds it.
        num_parallel: the stand-in's OLLAMA_NUM_PARALLEL.
        override: a figure given to the stand-in for this model.
    """
    if override is not None or model.size_vram is not None or path is None:
        return model.vram(override)
    try:
        shape = read_gguf(path)
    except VramError:
        return model.vram()
    num_ctx = min(model.context(), shape.context_length)
    if "completion" not in model.capabilities:  # embedding models run one sequence (server/sched.go:500-503)
        num_parallel = 1
    num_gpu = model.parameters.get("num_gpu")
    if num_gpu == 0:  # CPU only: the scheduler gives it no GPU (server/sched.go:272 at v0.33.0-rc2)
        return 0
    # Flash attention (`--flash-attn auto` on a GPU that has it, llm/llama_server.go:597-611 at
    # v0.33.0-rc2) and an f16 cache, as Ollama 0.30+ launches llama-server by default.
    settings = RunSettings(
        ctx_size=num_ctx * num_parallel, parallel=num_parallel, flash_attn=True,
        n_gpu_layers=-1 if num_gpu is None else int(num_gpu),
    )  # fmt: skip
    found = estimate(shape, settings)
    on_gpu = found.gpu_total_bytes - found.overhead_bytes
    return on_gpu + (behaviour.gpu_minimum_bytes if on_gpu > 0 else 0)
