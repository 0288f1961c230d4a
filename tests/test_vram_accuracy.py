"""The estimator against llama.cpp's own buffer figures: every captured run, every component.

The captures in benchmarks/data/vram-*/ are llama-server logs of generated models (CUDA build on
an H200, and the CPU-only build); the models' shapes are stored in tests/cases/vram/models/
(written by `benchmarks/vram_accuracy.py --export-shapes` from the GGUF files), so no 300 MB
model is regenerated here. Each component must stay within 3 % or 16 MiB of the log; the few
known misses are listed with the error they have today and may not grow.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from homelab.vram.accuracy import (
    CapturedRun,
    ComponentCheck,
    check_run,
    load_capture,
    summarize,
)
from homelab.vram.settings import MIB
from homelab.vram.shape import ModelShape

ROOT = Path(__file__).resolve().parents[1]
CAPTURES = sorted((ROOT / "benchmarks" / "data").glob("vram-*"))
SHAPES = ROOT / "tests" / "cases" / "vram" / "models"

# (run, component) -> the largest |error| tolerated, in MiB. Allocator fragmentation in a
# partly offloaded long context without flash attention (docs/vram-accuracy.md).
KNOWN_MISSES = {
    ("llama-q4_c32768_p1_f16_nofa_ngl0", "compute_gpu_bytes"): 36.0,
    ("llama-q4_c32768_p1_f16_nofa_ngl6", "compute_gpu_bytes"): 34.0,
}


def _runs() -> list[tuple[str, CapturedRun]]:
    return [(folder.name, run) for folder in CAPTURES for run in load_capture(folder)[1]]


RUNS = _runs()


def _shape(model: str) -> ModelShape:
    return ModelShape.model_validate_json((SHAPES / f"{model}.json").read_text())


def test_the_captures_are_all_here() -> None:
    assert [f.name for f in CAPTURES] == ["vram-cpu", "vram-cuda-h200"]
    assert len(RUNS) == 190
    assert {run.logged.backend for _, run in RUNS} == {"cpu", "cuda"}


@pytest.mark.parametrize(("capture", "run"), RUNS, ids=[f"{c}/{r.id}" for c, r in RUNS])
def test_every_component_within_3_percent_or_16_mib(capture: str, run: CapturedRun) -> None:
    _, checks = check_run(_shape(run.model), run)
    failures = []
    for check in checks:
        allowed = KNOWN_MISSES.get((run.id, check.component))
        if allowed is not None and run.logged.backend == "cuda":
            assert abs(check.error_bytes) <= allowed * MIB, f"{check.component} got worse: {check.error_bytes / MIB:+.1f} MiB"
        elif not check.ok:
            failures.append(_describe(check))
    assert not failures, "; ".join(failures)


def _describe(check: ComponentCheck) -> str:
    return (
        f"{check.component}: logged {check.logged_bytes / MIB:.2f} MiB, estimated {check.estimated_bytes / MIB:.2f} MiB "
        f"(bound {check.bound_bytes / MIB:.1f} MiB)"
    )


def test_summary_share_and_worst_error() -> None:
    checks = [c for _, run in RUNS for c in check_run(_shape(run.model), run)[1]]
    summary = summarize(checks)

    assert summary.checks == 6 * len(RUNS)
    assert summary.checks - summary.within == len(KNOWN_MISSES)
    assert summary.max_abs_error_bytes <= 36 * MIB


_PRINT_INFO = re.compile(r"print_info: (n_layer|n_embd|n_head|n_head_kv|n_vocab|model params)\s+= ([0-9.]+)")


@pytest.mark.parametrize("model", sorted(p.stem for p in SHAPES.glob("*.json")))
def test_stored_shapes_describe_the_models_llama_cpp_loaded(model: str) -> None:
    shape = _shape(model)
    capture, run = next((c, r) for c, r in RUNS if r.model == model)
    seen = dict(_PRINT_INFO.findall((ROOT / "benchmarks" / "data" / capture / "logs" / f"{run.id}.log").read_text()))

    assert int(seen["n_layer"]) == shape.n_layer
    assert int(seen["n_embd"]) == shape.n_embd
    assert int(seen["n_head"]) == shape.n_head
    assert int(seen["n_head_kv"]) == shape.n_head_kv[0]
    assert int(seen["n_vocab"]) == shape.n_vocab
    assert float(seen["model params"]) == pytest.approx(shape.parameter_count / 1e6, abs=0.01)
