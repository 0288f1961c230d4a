"""llama.cpp on two RPC devices: its per-device buffers read from the log, and the estimate against them.

benchmarks/data/vram-rpc/ holds the logs of llama-server started with `--rpc` on two rpc-servers
(benchmarks/vram_rpc_capture.py; scripts/build-llama-server.sh builds rpc-server beside llama-server): the tiny
MoE and dense shapes with -ngl all/partial, -ts 1,1 and 3,1, -sm none -mg 1, --n-cpu-moe, -ot exps=CPU,
-ot blk.1 to device 1; vram-rpc-widths/ the same on three MoE models at released models' widths
(Qwen3-30B-A3B, gpt-oss-20b, DeepSeek-V2-Lite; fewer layers and experts). These tests replay those
logs, so no RPC build is needed here.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from homelab.errors import SettingsError
from homelab.vram.accuracy import (
    CapturedRun,
    ComponentCheck,
    check_devices,
    check_run,
    load_capture,
    settings_for,
    summarize,
)
from homelab.vram.devices import CPU, DeviceMap, device_map
from homelab.vram.estimate import estimate
from homelab.vram.llama_log import MIB, parse_llama_log
from homelab.vram.settings import context_for
from homelab.vram.shape import ModelShape
from tests.vram_shapes import stored_shape

ROOT = Path(__file__).resolve().parents[1]
CAPTURE = ROOT / "benchmarks" / "data" / "vram-rpc"
LOGS = CAPTURE / "logs"
SPECS, RUNS = load_capture(CAPTURE)
ENTRIES = json.loads((CAPTURE / "runs.json").read_text())["runs"]
WIDTHS = ROOT / "benchmarks" / "data" / "vram-rpc-widths"
WIDTH_RUNS = load_capture(WIDTHS)[1]
ALL_RUNS = RUNS + WIDTH_RUNS
# Components of the widths capture within 3 % or 16 MiB (docs/vram-accuracy.md lists the five misses
# left, the host's compute of Qwen3-30B with experts on the host): a floor, raised as the estimator learns.
WIDTHS_WITHIN_FLOOR = 493
# Where llama.cpp's placement shows: weights and KV, summed and per device. They are estimated to
# the byte; the log rounds each buffer to 0.01 MiB, and a figure sums up to four buffers.
PLACEMENT = ("weights_gpu_bytes", "weights_cpu_bytes", "kv_gpu_bytes", "kv_cpu_bytes", "weights_bytes", "kv_bytes")
_LOG_ROUNDING_BYTES = 4 * MIB // 200


def _log(run_id: str) -> str:
    return (LOGS / f"{run_id}.log").read_text()


def test_two_rpc_servers_are_two_devices_told_apart_by_their_endpoint() -> None:
    # Both servers name their buffers RPC0[host:port]; the `using device RPCn (host:port)` lines
    # tell which device each is, in --rpc order.
    logged = parse_llama_log(_log("qwen3moe-f16_c4096_nofa_ngl7_d2_ts1-1"))

    assert logged.backend == "rpc"
    assert [(d.name, d.index) for d in logged.devices] == [("RPC0", 0), ("RPC1", 1)]
    assert [round(d.weights_bytes / MIB, 2) for d in logged.devices] == [232.29, 178.65]
    assert [round(d.kv_bytes / MIB, 2) for d in logged.devices] == [32.0, 16.0]
    assert [round(d.compute_bytes / MIB, 2) for d in logged.devices] == [206.04, 188.02]
    assert round(logged.compute_host_bytes / MIB, 2) == 60.05
    assert logged.sched_copies == 4  # pipeline parallelism: every layer offloaded to two devices


def test_split_mode_none_keeps_the_main_devices_number() -> None:
    # llama.cpp keeps and lists only -mg's device; it is still device 1 (what -mg and -ts count).
    logged = parse_llama_log(_log("glm4moe-f16_c4096_nofa_ngl6_d2_ts1-1_smnone-mg1"))

    assert [(d.name, d.index) for d in logged.devices] == [("RPC1", 1)]
    assert round(logged.devices[0].weights_bytes / MIB, 2) == 340.85


def test_experts_kept_on_the_host_are_repacked_and_stop_pipeline_parallelism() -> None:
    logged = parse_llama_log(_log("qwen3moe-q4_c4096_nofa_ngl5_d2_ts1-1_cmoe2"))

    # CPU_Mapped 26.37 + CPU_REPACK 40.50: an RPC device has no host buffer type to take them.
    assert round(logged.weights_cpu_bytes / MIB, 2) == 66.87
    assert logged.sched_copies == 1


def test_a_cuda_capture_reads_its_numbered_device() -> None:
    text = (ROOT / "benchmarks/data/vram-cuda-h200/logs/gemma2-f16_c32768_p1_f16_fa_ngl4.log").read_text()
    logged = parse_llama_log(text)

    assert logged.backend == "cuda"
    assert [(d.name, d.index) for d in logged.devices] == [("CUDA0", 0)]
    assert (logged.devices[0].weights_bytes, logged.devices[0].kv_bytes) == (
        logged.weights_gpu_bytes,
        logged.kv_gpu_bytes,
    )


def test_a_device_buffer_no_line_names_is_refused() -> None:
    line = next(line for line in _log("qwen3moe-f16_c4096_nofa_ngl7_d1").splitlines() if "RPC0[" in line)

    with pytest.raises(ValueError, match=r"device buffer 'RPC0\[127\.0\.0\.1:\d+\]': no `using device` line"):
        parse_llama_log(line)


@pytest.mark.parametrize("run", ALL_RUNS, ids=[r.id for r in ALL_RUNS])
def test_per_device_figures_add_up_to_the_logged_sums(run: CapturedRun) -> None:
    logged, slack = run.logged, len(run.logged.devices)  # each figure is rounded from MiB on its own
    assert logged.backend == "rpc"
    assert len(logged.devices) <= run.devices
    assert abs(sum(d.weights_bytes for d in logged.devices) - logged.weights_gpu_bytes) <= slack
    assert abs(sum(d.kv_bytes for d in logged.devices) - logged.kv_gpu_bytes) <= slack
    assert abs(sum(d.compute_bytes for d in logged.devices) - logged.compute_gpu_bytes) <= slack


def _device_name(placed: DeviceMap, device: int) -> str:
    return "CPU" if device == CPU else placed.names[device]


def _overridden(placed: DeviceMap, shape: ModelShape) -> dict[str, str]:
    """Tensors an override pattern matches, to the first match's device (llama.cpp logs each one,
    even when it names the device the layer is on anyway: llama-model-loader.cpp:1235-1257)."""
    out = {}
    for tensor in shape.tensors:
        device = next((d for pattern, d in placed.overrides if pattern.search(tensor.name)), None)
        if device is not None:
            out[tensor.name] = _device_name(placed, device)
    return out


@pytest.mark.parametrize("run", ALL_RUNS, ids=[r.id for r in ALL_RUNS])
def test_each_layer_and_each_overridden_tensor_is_on_llama_cpps_device(run: CapturedRun) -> None:
    # The capture logs llama.cpp's own assignment (-lv 5): each layer's device, each tensor an
    # override matched and the buffer type it landed in (CPU_REPACK when repacked).
    shape, settings = stored_shape(run.model), settings_for(run)
    placed = device_map(shape, settings, context_for(shape, settings))
    logged = run.logged
    overridden = {name: "CPU" if device.startswith("CPU") else device for name, device in logged.overridden.items()}

    assert [_device_name(placed, d) for d in placed.layers] == list(logged.layer_devices)
    assert _overridden(placed, shape) == overridden
    assert bool(overridden) == bool(run.n_cpu_moe or run.override_tensor)
    for name, device in overridden.items():
        assert _device_name(placed, placed.tensor(shape, name)) == device, name


def test_the_capture_is_all_here_and_the_failed_starts_say_why() -> None:
    failed = {e["id"]: e for e in ENTRIES if not e["loaded"]}

    assert len(ENTRIES) == 146
    assert len(RUNS) == 130
    assert {e["split_mode"] for e in failed.values()} == {"row", "tensor"}
    for entry in failed.values():
        reason = "\n".join(entry["error"])
        if entry["split_mode"] == "row":
            assert "does not support split buffers" in reason
        else:
            assert "SPLIT_MODE_TENSOR requires flash_attn" in reason or "not implemented for architecture" in reason


def _checks(run: CapturedRun) -> list[ComponentCheck]:
    shape = stored_shape(run.model)
    result, summed = check_run(shape, run)
    return summed + check_devices(shape, run, result)


def _describe(c: ComponentCheck) -> str:
    return f"{c.component}: logged {c.logged_bytes / MIB:.2f} MiB, estimated {c.estimated_bytes / MIB:.2f} MiB"


@pytest.mark.parametrize("run", ALL_RUNS, ids=[r.id for r in ALL_RUNS])
def test_every_weight_and_kv_byte_is_estimated_on_its_device(run: CapturedRun) -> None:
    checks = [c for c in _checks(run) if c.component.rsplit(".", 1)[-1] in PLACEMENT]
    failures = [_describe(c) for c in checks if abs(c.error_bytes) > _LOG_ROUNDING_BYTES]

    assert not failures, "; ".join(failures)
    assert len(checks) == 4 + 2 * max(run.devices, 1 + run.main_gpu)


@pytest.mark.parametrize("run", RUNS, ids=[r.id for r in RUNS])
def test_every_component_within_3_percent_or_16_mib(run: CapturedRun) -> None:
    failures = [f"{_describe(c)} (bound {c.bound_bytes / MIB:.1f} MiB)" for c in _checks(run) if not c.ok]

    assert not failures, "; ".join(failures)


def test_summary_of_the_capture() -> None:
    summary = summarize([c for run in RUNS for c in _checks(run)])

    assert summary.checks == 1518  # 6 summed components per run, 3 per device
    assert summary.within == summary.checks
    assert summary.max_abs_error_bytes <= 16 * MIB


def test_the_widths_capture_stays_within_the_bound_it_reached() -> None:
    entries = json.loads((WIDTHS / "runs.json").read_text())["runs"]
    summary = summarize([c for run in WIDTH_RUNS for c in _checks(run)])

    assert len(entries) == len(WIDTH_RUNS) == 43
    assert summary.checks == 498
    assert summary.within >= WIDTHS_WITHIN_FLOOR


def test_row_split_fails_to_load_in_llama_cpp_and_in_the_estimate() -> None:
    row_runs = [e for e in ENTRIES if e["split_mode"] == "row"]
    assert len(row_runs) == 8
    for entry in row_runs:
        fields = {k: entry[k] for k in ("id", "model", "ctx", "parallel", "cache_type", "flash_attn", "ngl")}
        run = CapturedRun(
            **fields,
            devices=entry["devices"],
            tensor_split=entry["tensor_split"],
            split_mode=entry["split_mode"],
            logged=parse_llama_log(_log(entry["id"])),
        )
        with pytest.raises(SettingsError, match="split buffer"):
            estimate(stored_shape(run.model), settings_for(run))
