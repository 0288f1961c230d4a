"""ggml-alloc replayed (homelab.vram.galloc) against ggml-alloc's own traces.

benchmarks/data/alloc-trace-*/ hold llama-server loads on a CUDA build patched to print every
allocation of its compute buffers (benchmarks/vram_alloc_trace.py). The replay must place every
tensor of the CPU layers where llama.cpp placed it, byte for byte, and the trace must add up to
the compute buffer llama.cpp logged.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from homelab.vram.accuracy import CapturedRun, load_capture, settings_for
from homelab.vram.alloc_trace import gpu_allocator, placements, replay
from homelab.vram.galloc import BestFit, attention_rise, replay_cpu_layers
from homelab.vram.kvcache import kv_layers
from homelab.vram.settings import context_for
from homelab.vram.sizes import MIB
from homelab.vram.weights import layers_on_gpu
from tests.vram_shapes import stored_shape

ROOT = Path(__file__).resolve().parents[1]
TRACED = [
    (folder, run)
    for folder in sorted((ROOT / "benchmarks" / "data").glob("alloc-trace-*"))
    for run in load_capture(folder)[1]
]
IDS = [run.id for _, run in TRACED]


def _trace(folder: Path, run: CapturedRun) -> str:
    return (folder / "logs" / f"{run.id}.log").read_text()


def _replayed(run: CapturedRun) -> tuple[list, int]:
    shape = stored_shape(run.model)
    settings = settings_for(run)
    ctx = context_for(shape, settings)
    kv = kv_layers(shape, settings, ctx)
    on_gpu = layers_on_gpu(shape, ctx)
    return replay_cpu_layers(shape, settings, ctx, kv, on_gpu), attention_rise(shape, settings, ctx, kv, on_gpu)


def test_traces_cover_both_outcomes() -> None:
    rises = [_replayed(run)[1] for _, run in TRACED]
    assert len(TRACED) == 6
    assert any(rises) and not all(rises)


@pytest.mark.parametrize(("folder", "run"), TRACED, ids=IDS)
def test_the_trace_adds_up_to_the_logged_compute_buffer(folder: Path, run: CapturedRun) -> None:
    text = _trace(folder, run)

    assert abs(replay(text, gpu_allocator(text)).bytes - run.logged.compute_gpu_bytes) < 0.01 * MIB  # 2 decimals


@pytest.mark.parametrize(("folder", "run"), TRACED, ids=IDS)
def test_the_replay_places_every_cpu_layer_tensor_where_llama_cpp_did(folder: Path, run: CapturedRun) -> None:
    text = _trace(folder, run)
    traced = placements(text, gpu_allocator(text))
    replayed, _ = _replayed(run)
    last_kq = max(i for i, p in enumerate(replayed) if p.name == "kq")

    assert [(p.offset, p.size) for p in replayed[: last_kq + 1]] == [(p.offset, p.size) for p in traced[: last_kq + 1]]


@pytest.mark.parametrize(("folder", "run"), TRACED, ids=IDS)
def test_k_copies_land_above_the_kq_mask_exactly_when_the_attention_rises(folder: Path, run: CapturedRun) -> None:
    text = _trace(folder, run)
    placed = placements(text, gpu_allocator(text))
    mask = next(p for p in placed if "attn_inp_kq_mask" in p.name)
    k_copies = [p for p in placed if p.name.startswith("CUDA0#cache_k_l")]
    _, rise = _replayed(run)

    assert k_copies[0].end <= mask.offset  # the first K copy, then the mask
    assert any(p.offset >= mask.end for p in k_copies) == (rise > 0)


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        # best fit: the smaller of two holes that fit, not the first
        (
            [
                ("a", "x", 384),
                ("a", "y", 128),
                ("a", "z", 256),
                ("a", "w", 128),
                ("f", "x"),
                ("f", "z"),
                ("a", "n", 200),
            ],
            512,
        ),
        # nothing fits a hole: the tail
        ([("a", "x", 128), ("a", "y", 128), ("f", "x"), ("a", "n", 256)], 256),
        # frees merge with both neighbours
        (
            [
                ("a", "x", 128),
                ("a", "y", 128),
                ("a", "z", 128),
                ("a", "w", 128),
                ("f", "x"),
                ("f", "z"),
                ("f", "y"),
                ("a", "n", 384),
            ],
            0,
        ),
    ],
    ids=["best-fit", "tail", "merge"],
)
def test_best_fit_as_ggml_alloc(steps: list[tuple], expected: int) -> None:
    buffer = BestFit()
    live: dict[str, tuple[int, int]] = {}
    offset = -1
    for step in steps:
        if step[0] == "a":
            offset = buffer.alloc(step[2])
            live[step[1]] = (offset, step[2])
        else:
            buffer.free(*live.pop(step[1]))

    assert offset == expected
