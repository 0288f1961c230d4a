"""Several devices: llama.cpp's layer split, -sm none, per-device totals, and a plan that never over-commits a GPU.

Ground truth: benchmarks/data/vram-rpc, llama-server on two loopback rpc-servers (real llama.cpp
devices whose buffers are CPU-sized). Where each layer's weights and KV cache go shows in each
device's buffers, so the estimate must match them to the log's rounding on every run: the split by
-ts, -sm none -mg 1, the output layer on the last device, -ot to device 1, --n-cpu-moe.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from homelab.errors import SettingsError
from homelab.inventory import Inventory
from homelab.tiny_moe import write_tiny_moe
from homelab.vram.devices import CPU, device_map
from homelab.vram.estimate import estimate
from homelab.vram.guess import guess_shape
from homelab.vram.llama_log import parse_llama_log
from homelab.vram.metadata import read_gguf
from homelab.vram.node_plan import plan_node_vram
from homelab.vram.planner import GpuSlot, LineupEntry, plan_lineup
from homelab.vram.run_args import parse_run_args
from homelab.vram.settings import RunSettings, context_for
from homelab.vram.sizes import GIB
from tests.vram_shapes import stored_shape

ROOT = Path(__file__).resolve().parents[1]
RPC = ROOT / "benchmarks" / "data" / "vram-rpc"
_LOG_ROUNDING = 6 * 1024  # figures are printed in MiB with two decimals
_RUNS = [r for r in json.loads((RPC / "runs.json").read_text())["runs"] if r["loaded"]]


def _rpc_settings(run: dict[str, Any]) -> RunSettings:
    words = ["-ts", run["tensor_split"]] if run["tensor_split"] else []
    words += ["-ot", run["override_tensor"]] if run["override_tensor"] else []
    words += ["--n-cpu-moe", str(run["n_cpu_moe"])] if run["n_cpu_moe"] else []
    return RunSettings(
        backend="rpc", ctx_size=run["ctx"], flash_attn=run["flash_attn"], n_gpu_layers=run["ngl"],
        split_mode=run["split_mode"], main_gpu=run["main_gpu"], parallel=run["parallel"],
        cache_type_k=run["cache_type"], cache_type_v=run["cache_type"], gpu_overhead_bytes=0,
        device_memory_bytes=(GIB,) * run["devices"], **parse_run_args(words).updates(),
    )  # fmt: skip


def test_the_rpc_captures_cover_every_split_flag() -> None:
    ids = " ".join(r["id"] for r in _RUNS)
    for part in ("_d1", "ts1-1", "ts3-1", "smnone-mg1", "ot-blk1-rpc1", "ot-exps-cpu", "cmoe2"):
        assert part in ids
    assert len(_RUNS) >= 100


@pytest.mark.parametrize("run", _RUNS, ids=[r["id"] for r in _RUNS])
def test_each_devices_weights_and_cache_are_where_llama_cpp_put_them(run: dict[str, Any]) -> None:
    logged = parse_llama_log((RPC / run["log"]).read_text(errors="replace"))
    result = estimate(stored_shape(run["model"]), _rpc_settings(run))

    on_devices = {d.index: (d.weights_bytes, d.kv_bytes) for d in logged.devices}
    estimated = {d.index: (d.weights_bytes, d.kv_bytes) for d in result.devices if d.weights_bytes or d.kv_bytes}
    assert on_devices.keys() >= estimated.keys()
    for index, (weights, kv) in on_devices.items():
        assert abs(estimated.get(index, (0, 0))[0] - weights) <= _LOG_ROUNDING, (index, "weights")
        assert abs(estimated.get(index, (0, 0))[1] - kv) <= _LOG_ROUNDING, (index, "KV")
    # The host's share: the mapped span plus, on RPC, the repacked CPU experts.
    assert abs(result.weights_cpu_bytes - logged.weights_cpu_bytes) <= 2 * _LOG_ROUNDING


def test_the_split_follows_llama_cpps_float_upper_bound() -> None:
    shape = stored_shape("qwen3moe-f16")  # 6 blocks + the output layer
    settings = RunSettings(n_gpu_layers=-1, tensor_split=(3, 1))
    split = device_map(shape, settings, context_for(shape, settings))
    # Fractions 0, 1/7 ... 6/7 against the cumulative shares 0.75, 1: 5/7 = 0.714 is still below.
    assert split.layers == [0, 0, 0, 0, 0, 0, 1]
    partial = RunSettings(n_gpu_layers=3, tensor_split=(1, 1))
    assert device_map(shape, partial, context_for(shape, partial)).layers == [CPU] * 4 + [0, 0, 1]


def test_without_a_split_the_devices_memory_decides() -> None:
    shape = stored_shape("llama-q4")  # 12 blocks + output
    settings = RunSettings(n_gpu_layers=-1, device_memory_bytes=(24 * GIB, 12 * GIB))
    layers = device_map(shape, settings, context_for(shape, settings)).layers
    assert (layers.count(0), layers.count(1)) == (9, 4)  # 2/3 of 13: positions 0..8 below 0.6667


def test_split_mode_none_uses_the_main_gpu_alone() -> None:
    shape = stored_shape("qwen2-f16")
    whole = estimate(shape, RunSettings(n_gpu_layers=-1))
    settings = RunSettings(n_gpu_layers=-1, tensor_split=(1, 1), split_mode="none", main_gpu=1)
    result = estimate(shape, settings)

    assert [d.total_bytes for d in result.devices] == [0, whole.gpu_total_bytes]
    assert result.devices[1].layers == shape.n_layer + 1


def test_each_gpu_carries_its_own_overhead_and_the_totals_add_up() -> None:
    shape = stored_shape("qwen3moe-f16")
    result = estimate(shape, RunSettings(n_gpu_layers=-1, tensor_split=(1, 1)))

    assert [d.overhead_bytes for d in result.devices] == [RunSettings().gpu_overhead_bytes] * 2
    assert result.gpu_total_bytes == sum(d.total_bytes for d in result.devices)
    assert result.weights_gpu_bytes == sum(d.weights_bytes for d in result.devices)
    assert result.kv_gpu_bytes == sum(d.kv_bytes for d in result.devices)
    for d in result.devices:
        assert d.total_bytes == d.weights_bytes + d.kv_bytes + d.compute_bytes + d.cuda_pool_bytes + d.overhead_bytes


def test_row_split_is_refused_as_this_build_cannot_load_it() -> None:
    shape = stored_shape("qwen2-f16")
    with pytest.raises(SettingsError, match="split buffer type"):
        estimate(shape, RunSettings(n_gpu_layers=-1, tensor_split=(1, 1), split_mode="row"))
    assert any(r["id"].endswith("smrow-mg0") for r in json.loads((RPC / "runs.json").read_text())["runs"])


def _slots(*gib: float) -> list[GpuSlot]:
    return [GpuSlot(node="box", name="RTX 3090", index=i, vram_bytes=int(g * GIB)) for i, g in enumerate(gib)]


def test_a_model_too_big_for_one_gpu_is_split_over_two_and_neither_is_over_committed() -> None:
    shape = guess_shape("qwen2.5-32b-instruct-q4_k_m.gguf")
    entry = LineupEntry(name="big", shape=shape, ctx_size=16384, node="box", spans_gpus=True)
    plan = plan_lineup([entry], _slots(24, 24))

    assert not plan.cpu_only
    shares = [g.placements[0] for g in plan.gpus]
    assert [p.gpu_indexes for p in shares] == [[0, 1], [0, 1]]
    assert shares[0].estimate.gpu_total_bytes > 24 * GIB  # the sum would not fit one GPU
    for gpu in plan.gpus:
        assert 0 < gpu.used_bytes <= gpu.slot.vram_bytes


def test_a_split_that_overfills_one_gpu_is_not_taken_although_the_sum_fits() -> None:
    shape = guess_shape("qwen2.5-32b-instruct-q8_0.gguf")
    run = parse_run_args(["-ts", "9,1"])
    entry = LineupEntry(name="big", shape=shape, ctx_size=16384, node="box", spans_gpus=True, run=run)
    both = estimate(shape, RunSettings(ctx_size=16384, n_gpu_layers=-1, flash_attn=True, tensor_split=(9, 1)))
    assert both.gpu_total_bytes < 48 * GIB and both.devices[0].total_bytes > 24 * GIB

    plan = plan_lineup([entry], _slots(24, 24))

    for gpu in plan.gpus:
        assert gpu.used_bytes <= gpu.slot.vram_bytes
    placed = [p for g in plan.gpus for p in g.placements]
    assert placed and placed[0].estimate.n_gpu_layers < shape.n_layer + 1  # only part of it fits GPU0


def _inventory(gpus: int, args: list[str], container_gpus: list[int] | None = None) -> Inventory:
    container = {"image": "llama:test", "model_file": "moe.gguf", "ctx_size": 4096, "args": args}
    if container_gpus is not None:
        container["gpus"] = container_gpus
    node = {
        "name": "box", "tier": "secondary", "host": "127.0.0.1",
        "gpus": [{"name": "RTX 3090", "vram_gib": 24}] * gpus,
        "endpoints": [{"name": "moe", "kind": "llamacpp", "url": "http://127.0.0.1:9000", "container": container}],
    }  # fmt: skip
    return Inventory.model_validate({"nodes": [node]})


@pytest.fixture(scope="module")
def moe_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("moe")
    write_tiny_moe(folder / "moe.gguf", arch="qwen3moe", n_layer=4, n_embd=128, n_head=4, head_dim=64)
    return folder


def test_a_container_seeing_two_gpus_is_split_over_both_in_the_node_plan(moe_dir: Path) -> None:
    inv = _inventory(2, ["-ts", "3,1"])
    plan = plan_node_vram(inv, inv.nodes[0], models_dir=moe_dir)

    assert plan.gpu_layers == {"moe": 5}
    assert len(plan.lines) == 1 and "split over box's GPUs" in plan.lines[0]
    assert "on GPU0 + " in plan.lines[0] and plan.lines[0].endswith("on GPU1")
    shape = read_gguf(moe_dir / "moe.gguf")
    expected = estimate(shape, RunSettings(ctx_size=4096, n_gpu_layers=-1, flash_attn=True, tensor_split=(3, 1),
                                           device_memory_bytes=(24 * GIB, 24 * GIB)))  # fmt: skip
    assert plan.models["moe"].gpu_bytes == expected.gpu_total_bytes - expected.overhead_bytes


@pytest.mark.parametrize(
    ("args", "container_gpus", "gpu"),
    [(["-sm", "none", "-mg", "1"], None, "GPU1"), ([], [1], "GPU1"), (["-sm", "none"], [1, 0], "GPU0")],
)
def test_one_gpu_when_the_container_sees_one_or_split_mode_is_none(
    moe_dir: Path, args: list[str], container_gpus: list[int] | None, gpu: str
) -> None:
    inv = _inventory(2, args, container_gpus)
    plan = plan_node_vram(inv, inv.nodes[0], models_dir=moe_dir)

    assert len(plan.lines) == 1
    assert plan.lines[0].startswith(f"moe: all layers on box {gpu} (RTX 3090), ")


def test_the_estimate_command_prints_each_gpus_share(moe_dir: Path) -> None:
    from typer.testing import CliRunner

    from homelab_app.cli import app

    result = CliRunner().invoke(
        app, ["plan", "estimate", str(moe_dir / "moe.gguf"), "--tensor-split", "3,1", "--gpus", "24,24", "--json"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert [d["name"] for d in data["devices"]] == ["CUDA0", "CUDA1"]
    assert data["gpu_total_bytes"] == sum(d["total_bytes"] for d in data["devices"])
    assert [d["layers"] for d in data["devices"]] == [4, 1]

    text = CliRunner().invoke(app, ["plan", "estimate", str(moe_dir / "moe.gguf"), "-ts", "1,1"])
    assert text.exit_code == 0 and "CUDA0" in text.output and "CUDA1" in text.output and "layers" in text.output
    bad = CliRunner().invoke(app, ["plan", "estimate", str(moe_dir / "moe.gguf"), "-sm", "row", "-ts", "1,1"])
    assert bad.exit_code == 2 and "split buffer type" in bad.output


def test_the_plan_shows_each_gpus_share_of_a_split_model(moe_dir: Path, tmp_path: Path) -> None:
    import yaml
    from typer.testing import CliRunner

    from homelab_app.cli import app

    inv = _inventory(2, ["-ts", "3,1"])
    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump(inv.model_dump(mode="json", exclude_defaults=True)))

    result = CliRunner().invoke(app, ["plan", "-i", str(path), "--models-dir", str(moe_dir), "--no-ask-nodes"])

    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())  # the terminal wraps long lines
    assert text.count("split over GPU0+GPU1") == 2
    assert text.index("all 5 layers, 4 here") < text.index("all 5 layers, 1 here")


def test_a_split_model_that_fits_nowhere_says_each_gpus_share_and_room() -> None:
    shape = guess_shape("qwen2.5-72b-instruct-q4_k_m.gguf")
    entry = LineupEntry(name="huge", shape=shape, ctx_size=8192, node="box", spans_gpus=True, gpu_layers=81)
    plan = plan_lineup([entry], _slots(24, 12))

    (refused,) = plan.cpu_only
    assert refused.reason.startswith("needs ") and " on GPU0 + " in refused.reason
    assert "at 81 GPU layers with 8k context, free 24.0 GiB on GPU0 + 12.0 GiB on GPU1 (box)" in refused.reason
    assert all(not g.placements for g in plan.gpus)
