"""Expert offload: which tensors --n-cpu-moe, --cpu-moe and -ot move, the bytes on each side, and the
container args that carry them into the plan.

The tensor names expected are written out by hand from llama.cpp's patterns (common/common.h:1224-
1242: `blk\\.N\\.ffn_(up|down|gate|gate_up)_(ch|)exps`, searched, not matched whole), so the regex
handling is checked against what llama.cpp would move, not against itself. The bytes each device
and the host report for these flags are checked against real llama.cpp in test_vram_multigpu.py
(the RPC captures).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from homelab.errors import InventoryError
from homelab.inventory import Inventory, load_inventory
from homelab.tiny_moe import write_tiny_moe
from homelab.vram.devices import CPU, device_map
from homelab.vram.estimate import estimate
from homelab.vram.metadata import read_gguf
from homelab.vram.node_plan import plan_node_vram
from homelab.vram.planner import PlanPolicy
from homelab.vram.run_args import parse_run_args
from homelab.vram.settings import RunSettings, context_for
from homelab.vram.shape import ModelShape
from homelab.vram.weights import cuda_alloc_bytes, place_tensors
from tests.vram_shapes import stored_shape

_EXPERTS = ("ffn_up_exps", "ffn_gate_exps", "ffn_down_exps")


@pytest.fixture(scope="module")
def moe(tmp_path_factory: pytest.TempPathFactory) -> ModelShape:
    """12 blocks, so a pattern for block 1 must not take blocks 10 and 11."""
    path = tmp_path_factory.mktemp("moe") / "moe.gguf"
    write_tiny_moe(path, arch="qwen3moe", n_layer=12, n_embd=64, n_head=4, head_dim=16)
    return read_gguf(path)


def _placed(shape: ModelShape, words: list[str], **settings: Any) -> dict[str, int]:
    run = RunSettings(n_gpu_layers=-1, **(parse_run_args(words).updates() | settings))
    return place_tensors(shape, device_map(shape, run, context_for(shape, run)))


def _experts(*blocks: int) -> set[str]:
    return {f"blk.{i}.{name}.weight" for i in blocks for name in _EXPERTS}


@pytest.mark.parametrize(
    ("words", "on_cpu"),
    [
        (["--n-cpu-moe", "2"], _experts(0, 1)),
        (["--n-cpu-moe", "11"], _experts(*range(11))),
        (["--cpu-moe"], _experts(*range(12))),
        (["-ot", "exps=CPU"], _experts(*range(12))),
        (["-ot", r"blk\.1\.ffn_(up|gate)_exps=CPU"], {"blk.1.ffn_up_exps.weight", "blk.1.ffn_gate_exps.weight"}),
        (["-ot", r"blk\.(1|10)\.ffn_down=CPU,blk\.11\.ffn_up=CPU"], {
            "blk.1.ffn_down_exps.weight", "blk.10.ffn_down_exps.weight", "blk.11.ffn_up_exps.weight"}),
    ],
    ids=["ncmoe2", "ncmoe11", "cpu-moe", "ot-exps", "ot-one-block", "ot-list"],
)  # fmt: skip
def test_the_flags_move_the_tensors_llama_cpp_would(moe: ModelShape, words: list[str], on_cpu: set[str]) -> None:
    placed = _placed(moe, words)

    assert {name for name, device in placed.items() if device == CPU} == on_cpu | {"token_embd.weight"}


def test_a_block_pattern_takes_that_block_alone(moe: ModelShape) -> None:
    placed = _placed(moe, ["-ot", r"blk\.1\.=CPU"])  # searched: not blk.10 nor blk.11

    block_1 = {t.name for t in moe.tensors if t.name.startswith("blk.1.")}
    assert {name for name, device in placed.items() if device == CPU} == block_1 | {"token_embd.weight"}
    assert len(block_1) > len(_EXPERTS)


def test_the_first_matching_override_wins_in_command_line_order(moe: ModelShape) -> None:
    to_gpu1 = ["-ot", r"blk\.1\.ffn_up_exps=CUDA1"]
    first = _placed(moe, [*to_gpu1, "--cpu-moe"], device_memory_bytes=(1, 1))
    later = _placed(moe, ["--cpu-moe", *to_gpu1], device_memory_bytes=(1, 1))

    assert first["blk.1.ffn_up_exps.weight"] == 1 and later["blk.1.ffn_up_exps.weight"] == CPU
    assert first["blk.1.ffn_gate_exps.weight"] == later["blk.1.ffn_gate_exps.weight"] == CPU
    assert parse_run_args(["--cpu-moe", *to_gpu1]).override_tensor is not None  # --cpu-moe kept in front


@pytest.mark.parametrize("backend", ["cuda", "rpc"])
@pytest.mark.parametrize("words", [[], ["--n-cpu-moe", "5"], ["--cpu-moe"], ["-ts", "3,1"], ["-ot", r"blk\.3\.=CUDA1"]])
def test_every_tensor_is_counted_once(moe: ModelShape, backend: str, words: list[str]) -> None:
    words = [w.replace("CUDA", "RPC") if backend == "rpc" else w for w in words]
    settings = RunSettings(
        backend=backend, n_gpu_layers=-1, device_memory_bytes=(1, 1), **parse_run_args(words).updates()
    )
    placed = place_tensors(moe, device_map(moe, settings, context_for(moe, settings)))
    result = estimate(moe, settings)

    assert set(placed) == {t.name for t in moe.tensors}
    size = {t.name: t for t in moe.tensors}
    for device in result.devices:
        mine = [size[name] for name, d in placed.items() if d == device.index]
        alloc = (lambda t: -(-t.n_bytes // 32) * 32) if backend == "rpc" else cuda_alloc_bytes
        assert device.weights_bytes == sum(alloc(t) for t in mine)
    on_cpu = sum(size[name].n_bytes for name, d in placed.items() if d == CPU)
    on_devices = sum(size[name].n_bytes for name, d in placed.items() if d != CPU)
    assert on_cpu + on_devices == moe.weight_bytes


def test_a_cuda_build_maps_cpu_experts_while_the_cpu_and_rpc_builds_repack_them() -> None:
    shape = stored_shape("qwen3moe-q4")  # Q4_0 experts: the CPU repacks them (x86 with AVX2)
    flags: dict[str, Any] = {"n_cpu_moe": 2, "n_gpu_layers": -1}
    cuda = estimate(shape, RunSettings(**flags))
    rpc = estimate(shape, RunSettings(backend="rpc", **flags))
    experts = [t for t in shape.tensors if t.name.startswith(("blk.0.", "blk.1.")) and "_exps." in t.name]
    (embd,) = [t for t in shape.tensors if t.name == "token_embd.weight"]

    # CUDA: the mapped span from token_embd to the last CPU expert, gaps included.
    assert cuda.weights_cpu_bytes == max(t.offset + t.n_bytes for t in experts) - embd.offset
    # RPC (and the CPU build): token_embd mapped, the experts repacked into their own buffer.
    assert rpc.weights_cpu_bytes == embd.n_bytes + sum(-(-t.n_bytes // 32) * 32 for t in experts)


def test_a_cuda_build_copies_a_cpu_expert_stack_into_its_first_gpus_compute_buffer() -> None:
    shape = stored_shape("qwen3moe-30b-widths")
    on_gpu = estimate(shape, RunSettings(ctx_size=4096, n_gpu_layers=-1, flash_attn=True))
    offload = estimate(shape, RunSettings(ctx_size=4096, n_gpu_layers=-1, flash_attn=True, cpu_moe=True))
    largest = max(cuda_alloc_bytes(t) for t in shape.tensors if "_exps." in t.name)

    assert offload.devices[0].compute_bytes >= largest
    assert offload.weights_gpu_bytes < on_gpu.weights_gpu_bytes
    assert offload.kv_gpu_bytes == on_gpu.kv_gpu_bytes  # attention and its cache stay on the GPU


@pytest.mark.parametrize(
    ("words", "fields"),
    [
        (["--n-cpu-moe", "20", "-fa", "on", "-ctk", "q8_0", "-ctv", "q8_0"],
         {"n_cpu_moe": 20, "flash_attn": True, "cache_type_k": "q8_0", "cache_type_v": "q8_0"}),
        (["-ts", "3/1", "-sm", "layer", "-mg", "1"],
         {"tensor_split": (3.0, 1.0), "split_mode": "layer", "main_gpu": 1}),
        (["--tensor_split", "1,1", "-fa", "auto", "-ub", "256", "-b", "1024", "-kvu"],
         {"tensor_split": (1.0, 1.0), "n_ubatch": 256, "n_batch": 1024, "kv_unified": True}),
        (["-ot", "exps=CPU,token_embd=CUDA0", "--jinja"],
         {"override_tensor": (("exps", "CPU"), ("token_embd", "CUDA0"))}),
        (["--cpu-moe", "--n-cpu-moe", "3"], {"cpu_moe": True, "n_cpu_moe": 3}),
    ],
)  # fmt: skip
def test_container_args_are_read_as_llama_server_reads_them(words: list[str], fields: dict[str, Any]) -> None:
    assert parse_run_args(words).updates() == fields


@pytest.mark.parametrize(
    ("words", "message"),
    [
        (["-ts", "3,x"], "-ts needs proportions like 3,1, got '3,x'"),
        (["-ot", "exps"], "-ot needs PATTERN=DEVICE pairs, got 'exps'"),
        (["-ot", "a{1,2}=CPU"], "-ot needs PATTERN=DEVICE pairs, got 'a{1'"),
        (["-ot", "(?P<x>exps)=CPU"], "is not std::regex syntax"),
        (["-ot", "exps[=CPU"], "not a regular expression"),
        (["-ot", "exps=GPU0"], "device 'GPU0': not a buffer type"),
        (["-fa"], "-fa needs a value"),
        (["-fa", "yes"], "-fa needs on, off or auto, got 'yes'"),
        (["-ctv", "q3_k"], "-ctv: unsupported cache type 'q3_k'"),
        (["--n-cpu-moe", "all"], "--n-cpu-moe needs a whole number, got 'all'"),
        (["-sm", "tensor"], "-sm tensor (experimental tensor parallelism) is not planned"),
        (["-sm", "rows"], "-sm needs none, layer or row, got 'rows'"),
    ],
)
def test_malformed_flags_are_refused_naming_the_flag_and_the_value(words: list[str], message: str) -> None:
    with pytest.raises(ValueError) as refused:
        parse_run_args(words)
    assert message in str(refused.value)


def test_the_cluster_file_refuses_a_malformed_flag_at_its_line(tmp_path: Path) -> None:
    path = tmp_path / "cluster.yaml"
    path.write_text(
        "nodes:\n"
        "  - name: box\n    tier: secondary\n    host: 127.0.0.1\n    gpus: [{name: RTX 3090, vram_gib: 24}]\n"
        "    endpoints:\n"
        "      - name: moe\n        kind: llamacpp\n        url: http://127.0.0.1:9000\n"
        "        container:\n          image: llama:test\n          model_file: moe.gguf\n"
        "          args: [--n-cpu-moe, '2', -ts, '3,x']\n"
    )
    with pytest.raises(InventoryError) as refused:
        load_inventory(path)
    assert "cluster.yaml:" in str(refused.value)
    assert "args: -ts needs proportions like 3,1, got '3,x'" in str(refused.value)


def _one_container(args: list[str]) -> Inventory:
    container = {"image": "llama:test", "model_file": "moe.gguf", "ctx_size": 4096, "args": args}
    node = {
        "name": "box", "tier": "secondary", "host": "127.0.0.1", "gpus": [{"name": "RTX 3090", "vram_gib": 24}],
        "endpoints": [{"name": "moe", "kind": "llamacpp", "url": "http://127.0.0.1:9000", "container": container}],
    }  # fmt: skip
    return Inventory.model_validate({"nodes": [node]})


def test_a_containers_expert_flags_shape_its_plan(moe: ModelShape, tmp_path: Path) -> None:
    write_tiny_moe(tmp_path / "moe.gguf", arch="qwen3moe", n_layer=12, n_embd=64, n_head=4, head_dim=16)
    plain, offload = (_one_container(a) for a in ([], ["--n-cpu-moe", "6"]))

    whole = plan_node_vram(plain, plain.nodes[0], models_dir=tmp_path).models["moe"].gpu_bytes
    fewer = plan_node_vram(offload, offload.nodes[0], models_dir=tmp_path).models["moe"].gpu_bytes
    expected = estimate(moe, RunSettings(ctx_size=4096, n_gpu_layers=-1, flash_attn=True, n_cpu_moe=6))
    assert fewer == expected.gpu_total_bytes - expected.overhead_bytes < whole


def test_flash_attention_off_in_the_args_plans_an_f16_cache(tmp_path: Path) -> None:
    write_tiny_moe(tmp_path / "moe.gguf", arch="qwen3moe", n_layer=2, n_embd=64, n_head=4, head_dim=16)
    inv = _one_container(["-fa", "off"])
    quantized = PlanPolicy(cache_type="q8_0")  # needs flash attention, which the container turns off

    plan = plan_node_vram(inv, inv.nodes[0], models_dir=tmp_path, policy=quantized)

    shape = read_gguf(tmp_path / "moe.gguf")
    expected = estimate(shape, RunSettings(ctx_size=4096, n_gpu_layers=-1, flash_attn=False))
    assert plan.models["moe"].gpu_bytes == expected.gpu_total_bytes - expected.overhead_bytes
