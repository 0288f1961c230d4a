"""llama.cpp's RPC build live: two rpc-servers on loopback are two devices to `llama-server --rpc`.

The recorded captures (tests/test_vram_rpc.py) are replayed without this build; here it runs, so
what they rest on is checked against llama.cpp itself: the device order and names the parser
reads, the KV cache following its layer's device whatever `-ot` moves, pipeline parallelism only
without overrides. The build (scripts/build-llama-server.sh, which adds the RPC backend and
rpc-server) is cached outside the repo.
"""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from homelab.tiny_moe import write_tiny_moe
from homelab.vram.estimate import estimate
from homelab.vram.llama_log import MIB, LoggedBuffers, parse_llama_log
from homelab.vram.metadata import read_gguf
from homelab.vram.settings import RunSettings
from tests.fixtures.llama import READY_TIMEOUT_S, run_build_script
from tests.fixtures.net import LOOPBACK, free_port, stop_process, unavailable, wait_http, wait_until

pytestmark = pytest.mark.llama

_LAYERS = 4  # blocks of the tiny model; -ngl 5 offloads them and the output layer


@pytest.fixture(scope="module")
def rpc_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder with llama-server and rpc-server (one build, with the RPC backend)."""
    log = tmp_path_factory.mktemp("llama-rpc-build") / "build.log"
    try:
        return run_build_script(log).parent
    except (OSError, RuntimeError, subprocess.TimeoutExpired) as exc:
        unavailable(f"llama.cpp with its RPC backend could not be built: {exc}")
        raise


@pytest.fixture(scope="module")
def endpoints(rpc_bin: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[str]]:
    """Two rpc-servers on 127.0.0.1, one thread each."""
    logs = tmp_path_factory.mktemp("rpc-servers")
    procs, ports = [], []
    try:
        for i in range(2):
            port = free_port()
            with (logs / f"rpc-{i}.log").open("wb") as out:
                cmd = [str(rpc_bin / "rpc-server"), "-H", LOOPBACK, "-p", str(port), "-t", "1"]
                procs.append(subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL))
            ports.append(port)
            wait_until(lambda p=port: _listening(p), 10.0, f"rpc-server {i}", logs / f"rpc-{i}.log", procs[-1])
        yield [f"{LOOPBACK}:{port}" for port in ports]
    finally:
        for proc in procs:
            stop_process(proc)


def _listening(port: int) -> bool:
    with socket.create_connection((LOOPBACK, port), timeout=0.5):
        return True


@pytest.fixture(scope="module")
def moe_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("rpc-models") / "qwen3moe.gguf"
    return write_tiny_moe(path, arch="qwen3moe", n_layer=_LAYERS, n_embd=128, n_head=4, head_dim=64)


@pytest.fixture
def load(rpc_bin: Path, endpoints: list[str], moe_model: Path, tmp_path: Path) -> Callable[..., LoggedBuffers]:
    """Start llama-server on both devices with extra flags, wait until it serves, stop it, parse its log."""

    def run(*flags: str) -> LoggedBuffers:
        port, log = free_port(), tmp_path / "llama-server.log"
        cmd = [
            str(rpc_bin / "llama-server"), "--rpc", ",".join(endpoints), "-m", str(moe_model),
            "--host", LOOPBACK, "--port", str(port), "-c", "512", "-np", "1", "-ngl", str(_LAYERS + 1),
            "--fit", "off", "--no-warmup", "-t", "1", "--offline", "--no-webui", "-lv", "4", *flags,
        ]  # fmt: skip
        with log.open("wb") as out:
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            wait_http(f"http://{LOOPBACK}:{port}/health", READY_TIMEOUT_S, "llama-server --rpc", log, process=proc)
        finally:
            stop_process(proc)
        return parse_llama_log(log.read_text(errors="replace"))

    return run


def test_each_rpc_server_is_a_device_in_rpc_order(load: Callable[..., LoggedBuffers], moe_model: Path) -> None:
    logged = load("-ts", "1,1")

    assert logged.backend == "rpc"
    assert [(d.name, d.index) for d in logged.devices] == [("RPC0", 0), ("RPC1", 1)]
    assert logged.sched_copies == 4  # every layer on two devices, no override: pipeline parallelism
    # Weights and KV per device as estimated for RPC devices, to the log's 0.01 MiB.
    settings = RunSettings(ctx_size=512, tensor_split=(1, 1), n_gpu_layers=-1, backend="rpc")
    result = estimate(read_gguf(moe_model), settings)
    pairs = list(zip(logged.devices, result.devices, strict=True))
    assert all(abs(d.weights_bytes - e.weights_bytes) <= MIB // 200 for d, e in pairs)
    assert all(abs(d.kv_bytes - e.kv_bytes) <= MIB // 200 for d, e in pairs)
    assert all(d.weights_bytes > 0 and d.kv_bytes > 0 for d in logged.devices)


def test_an_override_moves_weights_but_not_the_kv_cache(
    load: Callable[..., LoggedBuffers], endpoints: list[str]
) -> None:
    # All layers on device 0; block 0's tensors sent to device 1 by its buffer type's name.
    logged = load("-ts", "1,0", "-ot", rf"blk\.0\.=RPC0[{endpoints[1]}]")

    device0, device1 = logged.devices
    assert device1.name == "RPC1" and device1.weights_bytes > 0
    assert device1.kv_bytes == 0  # the cache follows the layer's device (llama-kv-cache.cpp:216-217)
    assert device0.kv_bytes == logged.kv_gpu_bytes
    assert logged.sched_copies == 1  # tensor overrides turn pipeline parallelism off


def test_experts_on_the_host_leave_the_devices(load: Callable[..., LoggedBuffers]) -> None:
    on_devices = load("-ts", "1,1")
    experts_out = load("-ts", "1,1", "--n-cpu-moe", str(_LAYERS))

    moved = on_devices.weights_gpu_bytes - experts_out.weights_gpu_bytes
    assert moved > 0
    # The host keeps them mapped from the file: one span from the first host tensor to the last,
    # which also covers the device tensors lying between the experts.
    assert experts_out.weights_cpu_bytes - on_devices.weights_cpu_bytes > moved
    assert experts_out.kv_gpu_bytes == on_devices.kv_gpu_bytes
