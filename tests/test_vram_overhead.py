"""The per-GPU overhead against nvidia-smi: the default is the measurement, the pool model explains growth.

benchmarks/data/gpu-overhead-*/ hold llama-server starts on an H200 and an H100 with nvidia-smi's
per-process used memory at three stages (loaded, after one micro-batch, after a full context)
beside the buffer logs, and a bare CUDA context with and without cuBLAS.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from homelab.vram.overhead import (
    OverheadSample,
    bare_context_bytes,
    derived_overhead_bytes,
    full_context_totals,
    load_overhead_capture,
)
from homelab.vram.sizes import DEFAULT_GPU_OVERHEAD_BYTES, MIB
from tests.vram_shapes import stored_shape as _shape

ROOT = Path(__file__).resolve().parents[1]
CAPTURES = sorted((ROOT / "benchmarks" / "data").glob("gpu-overhead-*"))


SAMPLES = {folder.name: load_overhead_capture(folder, _shape) for folder in CAPTURES}
RUNS = [(gpu, run) for gpu, samples in SAMPLES.items() for run in sorted({s.run for s in samples})]


def _stage(gpu: str, run: str, stage: str) -> OverheadSample:
    return next(s for s in SAMPLES[gpu] if s.run == run and s.stage == stage)


def test_every_run_was_measured_at_every_stage() -> None:
    assert [folder.name for folder in CAPTURES] == ["gpu-overhead-h100", "gpu-overhead-h200"]
    assert {gpu: len(samples) for gpu, samples in SAMPLES.items()} == {"gpu-overhead-h100": 18, "gpu-overhead-h200": 27}


def test_the_default_overhead_is_the_measured_one() -> None:
    everything = [s for samples in SAMPLES.values() for s in samples]
    served = [s.overhead_bytes for s in everything if s.stage != "loaded"]

    assert derived_overhead_bytes(everything) == DEFAULT_GPU_OVERHEAD_BYTES
    assert DEFAULT_GPU_OVERHEAD_BYTES - 16 * MIB < max(served) <= DEFAULT_GPU_OVERHEAD_BYTES


@pytest.mark.parametrize(("gpu", "run"), RUNS, ids=[f"{g}/{r}" for g, r in RUNS])
def test_the_cuda_pool_explains_what_a_full_context_adds(gpu: str, run: str) -> None:
    ubatch, full = _stage(gpu, run, "ubatch"), _stage(gpu, run, "full")

    assert abs(full.overhead_bytes - ubatch.overhead_bytes) <= 16 * MIB
    if "nofa_" in run and "c32768" in run:  # without the pool the gap would be hundreds of MiB
        assert full.pool_bytes - ubatch.pool_bytes >= 256 * MIB


@pytest.mark.parametrize("folder", CAPTURES, ids=[f.name for f in CAPTURES])
def test_a_process_holds_at_least_its_cuda_context(folder: Path) -> None:
    bare = bare_context_bytes(folder)

    assert 256 * MIB < bare["context"] < bare["cublas_gemm"] < DEFAULT_GPU_OVERHEAD_BYTES
    assert min(s.overhead_bytes for s in SAMPLES[folder.name]) >= bare["context"]


@pytest.mark.parametrize("folder", CAPTURES, ids=[f.name for f in CAPTURES])
def test_the_plan_never_undercounts_a_served_process(folder: Path) -> None:
    for run, used, estimated in full_context_totals(folder, _shape):
        assert 0 <= estimated - used <= 128 * MIB, run
