"""The per-GPU overhead, measured: what a llama-server process holds on the GPU beyond its buffers.

A capture (benchmarks/vram_overhead_capture.py) holds, per llama-server start, nvidia-smi's used
memory of the process at three stages: loaded (after llama-server's warm-up), after a prompt of
one micro-batch, and after a prompt that fills the context; beside it the log of the buffers
llama.cpp allocated. What is left once the logged GPU buffers and the modelled CUDA pool (for the
context filled at that stage) are taken off is the overhead: the CUDA context, cuBLAS's handle and
workspace, kernels loaded lazily on first use, the pool's small allocations. The capture also
measures a bare CUDA context and one with cuBLAS after one GEMM, which split the figure.

`derived_overhead_bytes` turns the measurements into the default the estimator adds per GPU
(`sizes.DEFAULT_GPU_OVERHEAD_BYTES`); a test keeps the two equal.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from homelab.vram.estimate import estimate
from homelab.vram.llama_log import parse_llama_log
from homelab.vram.settings import RunSettings
from homelab.vram.shape import ModelShape
from homelab.vram.sizes import MIB

__all__ = [
    "OverheadSample",
    "Stage",
    "bare_context_bytes",
    "derived_overhead_bytes",
    "full_context_totals",
    "load_overhead_capture",
]

Stage = Literal["loaded", "ubatch", "full"]
_SERVED: tuple[Stage, ...] = ("ubatch", "full")  # stages after a real prompt
_ROUND = 16 * MIB
_UBATCH_TOKENS = 512


class OverheadSample(BaseModel):
    """One stage of one run: the process's used memory and what the estimate explains of it."""

    model_config = ConfigDict(frozen=True)

    run: str
    stage: Stage
    used_bytes: int
    logged_gpu_bytes: int
    pool_bytes: int

    @property
    def overhead_bytes(self) -> int:
        """Used memory less the logged GPU buffers and the modelled CUDA pool."""
        return self.used_bytes - self.logged_gpu_bytes - self.pool_bytes


def _settings(run: dict[str, Any], ctx_size: int) -> RunSettings:
    return RunSettings(
        ctx_size=ctx_size,
        parallel=run["parallel"],
        cache_type_k=run["cache_type"],
        cache_type_v=run["cache_type"],
        flash_attn=run["flash_attn"],
        n_gpu_layers=run["ngl"],
    )


def _pool_bytes(shape: ModelShape, run: dict[str, Any], stage: Stage) -> int:
    """The CUDA pool for the context filled at this stage (one sequence's prompt): none before a prompt."""
    if stage == "loaded":
        return 0
    filled = _UBATCH_TOKENS if stage == "ubatch" else run["ctx"] // run["parallel"]
    return estimate(shape, _settings(run, filled * run["parallel"])).cuda_pool_bytes


def load_overhead_capture(folder: Path, shape_of: Callable[[str], ModelShape]) -> list[OverheadSample]:
    """Every measured stage of a capture folder (overhead.json and logs/), given each model's shape."""
    data = json.loads((folder / "overhead.json").read_text())
    samples = []
    for run in data["runs"]:
        logged = parse_llama_log((folder / run["log"]).read_text(errors="replace"))
        gpu = logged.weights_gpu_bytes + logged.kv_gpu_bytes + logged.compute_gpu_bytes
        for stage, sample in run["samples"].items():
            if sample.get("process_used_mib") is None:
                continue
            samples.append(
                OverheadSample(
                    run=run["id"],
                    stage=stage,
                    used_bytes=sample["process_used_mib"] * MIB,
                    logged_gpu_bytes=gpu,
                    pool_bytes=_pool_bytes(shape_of(run["model"]), run, stage),
                )
            )
    return samples


def bare_context_bytes(folder: Path) -> dict[str, int]:
    """Used memory of a process with only a CUDA context, and with cuBLAS after one GEMM (bare.jsonl)."""
    out = {}
    for line in (folder / "bare.jsonl").read_text().splitlines():
        if line.startswith("{"):
            row = json.loads(line)
            out[row["stage"]] = row["process_used_mib"] * MIB - round(row.get("buffers_mib", 0) * MIB)
    return out


def derived_overhead_bytes(samples: list[OverheadSample]) -> int:
    """The largest overhead of a server that has answered a prompt, rounded up to 16 MiB."""
    served = [s.overhead_bytes for s in samples if s.stage in _SERVED]
    if not served:
        raise ValueError("no sample after a prompt")
    return -(-max(served) // _ROUND) * _ROUND


def full_context_totals(folder: Path, shape_of: Callable[[str], ModelShape]) -> list[tuple[str, int, int]]:
    """Per run: (id, process used after a full context, the estimate's GPU total with the default overhead)."""
    data = json.loads((folder / "overhead.json").read_text())
    out = []
    for run in data["runs"]:
        used = run["samples"].get("full", {}).get("process_used_mib")
        if used is not None:
            out.append(
                (run["id"], used * MIB, estimate(shape_of(run["model"]), _settings(run, run["ctx"])).gpu_total_bytes)
            )
    return out
