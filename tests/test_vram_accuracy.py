"""The estimator against llama.cpp's own buffer figures: every captured run, every component.

The captures in benchmarks/data/vram-*/ are llama-server logs of generated models (CUDA builds on
an H200, and the CPU-only build); the models' shapes are stored in tests/cases/vram/models/
(written by `benchmarks/vram_accuracy.py --export-shapes` from the GGUF files), so no 300 MB
model is regenerated here. Each component must stay within 3 % or 16 MiB of the log.
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
from homelab.vram.sizes import MIB
from tests.vram_shapes import SHAPES
from tests.vram_shapes import stored_shape as _shape

ROOT = Path(__file__).resolve().parents[1]
# The captures on RPC devices (vram-rpc*) have their own flags and per-device checks: tests/test_vram_rpc.py.
CAPTURES = sorted(f for f in (ROOT / "benchmarks" / "data").glob("vram-*") if not f.name.startswith("vram-rpc"))


def _runs() -> list[tuple[str, CapturedRun]]:
    return [(folder.name, run) for folder in CAPTURES for run in load_capture(folder)[1]]


RUNS = _runs()


def test_the_captures_are_all_here() -> None:
    assert [f.name for f in CAPTURES] == [
        "vram-cpu",
        "vram-cpu-moe",
        "vram-cuda-h100-thresholds",
        "vram-cuda-h200",
        "vram-cuda-h200-qwen2",
        "vram-cuda-h200-unseen",
    ]
    assert len(RUNS) == 501
    assert {run.logged.backend for _, run in RUNS} == {"cpu", "cuda"}


@pytest.mark.parametrize(("capture", "run"), RUNS, ids=[f"{c}/{r.id}" for c, r in RUNS])
def test_every_component_within_3_percent_or_16_mib(capture: str, run: CapturedRun) -> None:
    _, checks = check_run(_shape(run.model), run)
    failures = [_describe(check) for check in checks if not check.ok]
    assert not failures, "; ".join(failures)


def _describe(check: ComponentCheck) -> str:
    return (
        f"{check.component}: logged {check.logged_bytes / MIB:.2f} MiB, "
        f"estimated {check.estimated_bytes / MIB:.2f} MiB (bound {check.bound_bytes / MIB:.1f} MiB)"
    )


def test_summary_share_and_worst_error() -> None:
    checks = [c for _, run in RUNS for c in check_run(_shape(run.model), run)[1]]
    summary = summarize(checks)

    assert summary.checks == 6 * len(RUNS)
    assert summary.within == summary.checks
    assert summary.max_abs_error_bytes <= 16 * MIB


_PRINT_INFO = re.compile(r"print_info: (n_layer|n_embd|n_head|n_head_kv|n_vocab|model params)\s+= ([0-9.]+ ?[MB]?)")
_UNITS = {"M": 1e6, "B": 1e9}  # llama.cpp prints the parameter count with two decimals in M or B


@pytest.mark.parametrize("model", sorted(p.stem for p in SHAPES.glob("*.json")))
def test_stored_shapes_describe_the_models_llama_cpp_loaded(model: str) -> None:
    shape = _shape(model)
    capture, run = next((c, r) for c, r in RUNS if r.model == model)
    seen = dict(_PRINT_INFO.findall((ROOT / "benchmarks" / "data" / capture / "logs" / f"{run.id}.log").read_text()))

    assert int(seen["n_layer"]) == shape.n_layer_trunk  # llama.cpp prints the blocks it computes
    assert int(seen["n_embd"]) == shape.n_embd
    assert int(seen["n_head"]) == shape.n_head
    assert int(seen["n_head_kv"]) == shape.n_head_kv[0]
    assert int(seen["n_vocab"]) == shape.n_vocab
    count, unit = seen["model params"].split()
    assert float(count) == pytest.approx(shape.parameter_count / _UNITS[unit], abs=0.01)
