"""llama.cpp's own memory figures, read from a llama-server log: the ground truth of the estimator.

While loading, llama-server prints one line per buffer it allocates (model weights per device,
KV cache, output, compute). Those figures are what the estimator must reproduce, so they are
parsed here, apart from any I/O, into the same components the estimator returns, and per device.
Sizes are printed in MiB with two decimals, so every figure read back is exact to about 5 KiB.

Buffer names tell host from device: `CPU`, `CPU_Mapped` and `CPU_REPACK` are plain host memory,
`CUDA_Host` (and other `*_Host`) is pinned host memory a GPU backend uses for transfers, anything
else (`CUDA0`, `ROCm1`, `Vulkan0`, `Metal`, `RPC0[127.0.0.1:50052]`) lives on a device. A
device's number, which `-ts` and `-mg` count, is the one in its name. llama.cpp names an RPC device
`RPC<n>` by its place among all RPC devices and prints it with its endpoint in a `using device
NAME (DESCRIPTION)` line (llama.cpp:306, ggml-rpc.cpp:2355), but names its buffers after the
server's own device number and the endpoint (`RPC0[127.0.0.1:50052]`, ggml-rpc.cpp:1094), so two
rpc-servers both show `RPC0[...]`: the endpoint tells them apart. (On a build with RPC and CUDA
devices together, RPC ones come first, and CUDA0's place in the list is after them.)
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict

__all__ = ["MIB", "DeviceBuffers", "LoggedBuffers", "is_gpu_buffer", "parse_llama_log"]

MIB = 1024 * 1024

_BUFFER = re.compile(
    r"(?P<where>load_tensors|llama_kv_cache|sched_reserve|llama_context):\s+(?P<name>\S+)\s+"
    r"(?P<kind>model|KV|compute|output) buffer size =\s+(?P<mib>[0-9.]+) MiB"
)
_CELLS = re.compile(r"llama_kv_cache_iswa: creating\s+(?P<kind>non-SWA|SWA) KV cache, size = (?P<cells>\d+) cells")
_PLAIN_CELLS = re.compile(r"llama_kv_cache: size =\s+[0-9.]+ MiB \(\s*(?P<cells>\d+) cells")
_USING_DEVICE = re.compile(r"using device (?P<name>\S+) \((?P<description>[^)]*)\)")
_RPC_BUFFER = re.compile(r"RPC(?P<local>\d+)\[(?P<endpoint>[^\]]+)\]")
_NUMBERED = re.compile(r"[A-Za-z]+(?P<index>\d+)")
_COPIES = re.compile(r"sched copies = (?P<copies>\d+)")
# Debug lines (-lv 5): llama-model.cpp:1596/1601 and llama-model-loader.cpp:1253.
_LAYER_DEVICE = re.compile(r"load_tensors: layer\s+(?P<layer>\d+) assigned to device (?P<device>\S+),")
_OVERRIDDEN = re.compile(r"tensor (?P<tensor>\S+) \(.*\) buffer type overridden to (?P<buffer>\S+)")
_HOST_NAMES = ("CPU", "CPU_Mapped", "CPU_REPACK")
_DEVICE_FIELD = {"model": "weights_bytes", "KV": "kv_bytes", "compute": "compute_bytes"}


def is_gpu_buffer(name: str) -> bool:
    """Whether a llama.cpp buffer name is device memory (not CPU, CPU_Mapped, CUDA_Host...)."""
    return not (name.startswith("CPU") or name.endswith("_Host"))


class DeviceBuffers(BaseModel):
    """What llama.cpp allocated on one device (a GPU, or an RPC server's backend)."""

    model_config = ConfigDict(frozen=True)

    name: str  # llama.cpp's device name: CUDA1, RPC1
    index: int  # the number in its name: what --tensor-split and --main-gpu count
    weights_bytes: int = 0
    kv_bytes: int = 0
    compute_bytes: int = 0


class LoggedBuffers(BaseModel):
    """The buffers one llama-server start allocated, summed into the estimator's components."""

    model_config = ConfigDict(frozen=True)

    command: str = ""
    backend: Literal["cuda", "cpu", "rpc"] = "cpu"
    weights_gpu_bytes: int = 0
    weights_cpu_bytes: int = 0
    kv_gpu_bytes: int = 0
    kv_cpu_bytes: int = 0
    compute_gpu_bytes: int = 0
    compute_host_bytes: int = 0
    output_bytes: int = 0
    kv_cells: int | None = None
    swa_cells: int | None = None
    sched_copies: int | None = None  # graph copies the scheduler keeps: 4 with pipeline parallelism
    devices: tuple[DeviceBuffers, ...] = ()  # the *_gpu_bytes fields per device, by index
    # Only in logs written with -lv 5: each offloadable layer's device (the blocks, then the output
    # layer; "CPU" or a device name), and each tensor an override (-ot, --n-cpu-moe) sent elsewhere.
    layer_devices: tuple[str, ...] = ()
    overridden: dict[str, str] = {}


def _component(kind: str, name: str) -> str:
    gpu = is_gpu_buffer(name)
    if kind == "model":
        return "weights_gpu_bytes" if gpu else "weights_cpu_bytes"
    if kind == "KV":
        return "kv_gpu_bytes" if gpu else "kv_cpu_bytes"
    if kind == "compute":
        return "compute_gpu_bytes" if gpu else "compute_host_bytes"
    return "output_bytes"


def _device_of(buffer: str, order: list[tuple[str, str]]) -> tuple[int, str]:
    """The number and name of the device a buffer is on.

    The name is the buffer's own (CUDA1) or, for an RPC buffer, that of the `using device` line
    with its endpoint. The number is the one in the name: with `-sm none` llama.cpp keeps and
    lists only `-mg`'s device (llama.cpp:289-301), which is still RPC1 or CUDA1, device 1.
    """
    name = buffer
    if match := _RPC_BUFFER.fullmatch(buffer):
        on_server = [device for device, description in order if description == match["endpoint"]]
        if int(match["local"]) < len(on_server):
            name = on_server[int(match["local"])]
    if match := _NUMBERED.fullmatch(name):
        return int(match["index"]), name
    names = [device for device, _ in order]
    if name in names:  # a device without a number (Metal): its place in the list
        return names.index(name), name
    raise ValueError(f"device buffer {buffer!r}: no `using device` line names it and it has no number")


def _devices(per_buffer: dict[str, dict[str, float]], order: list[tuple[str, str]]) -> tuple[DeviceBuffers, ...]:
    devices = []
    for buffer, sums in per_buffer.items():
        index, name = _device_of(buffer, order)
        devices.append(DeviceBuffers(name=name, index=index, **{k: round(mib * MIB) for k, mib in sums.items()}))
    return tuple(sorted(devices, key=lambda d: d.index))


def _placement(lines: list[str], order: list[tuple[str, str]]) -> dict[str, object]:
    """The debug lines' layer devices and overridden tensors, buffer types named as their devices."""
    layers: dict[int, str] = {}
    overridden: dict[str, str] = {}
    for line in lines:
        if match := _LAYER_DEVICE.search(line):
            layers[int(match["layer"])] = match["device"]
        elif match := _OVERRIDDEN.search(line):
            buffer = match["buffer"]
            overridden[match["tensor"]] = _device_of(buffer, order)[1] if is_gpu_buffer(buffer) else buffer
    return {"layer_devices": tuple(layers[i] for i in sorted(layers)), "overridden": overridden}


def _backend(per_buffer: dict[str, dict[str, float]], order: list[tuple[str, str]], text: str) -> str:
    names = [*per_buffer, *(name for name, _ in order)]
    if names:
        return "rpc" if all(name.startswith("RPC") for name in names) else "cuda"
    # Pinned host buffers only (CUDA_Host): a GPU build with nothing on the GPU.
    return "cuda" if any(m["name"] not in _HOST_NAMES for m in _BUFFER.finditer(text)) else "cpu"


def parse_llama_log(text: str) -> LoggedBuffers:
    """Sum a llama-server log's buffer lines into components (bytes, rounded from MiB), and per device.

    The first line, when it starts with `# `, is taken as the command line (the capture script
    writes it there). A log that names any buffer other than the CPU's came from a GPU build
    (`backend="cuda"`; other GPU backends are reported as such too), one whose devices are all
    RPC ones from RPC devices (`backend="rpc"`). KV cells are the non-SWA cache's cells per
    stream; `swa_cells` is set only for models with a sliding-window cache.

    Raises:
        ValueError: A device buffer whose device cannot be told (no `using device` line names it
            and there is no number in its name).
    """
    sums: dict[str, float] = {}
    per_buffer: dict[str, dict[str, float]] = {}
    order: list[tuple[str, str]] = []
    fields: dict[str, object] = {}
    lines = text.splitlines()
    if lines and lines[0].startswith("# "):
        fields["command"] = lines[0][2:]
    for line in lines:
        if match := _BUFFER.search(line):
            name, kind, mib = match["name"], match["kind"], float(match["mib"])
            key = _component(kind, name)
            sums[key] = sums.get(key, 0.0) + mib
            if is_gpu_buffer(name) and kind in _DEVICE_FIELD:
                device = per_buffer.setdefault(name, {})
                device[_DEVICE_FIELD[kind]] = device.get(_DEVICE_FIELD[kind], 0.0) + mib
        elif match := _CELLS.search(line):
            fields["kv_cells" if match["kind"] == "non-SWA" else "swa_cells"] = int(match["cells"])
        elif (match := _PLAIN_CELLS.search(line)) and "kv_cells" not in fields:
            fields["kv_cells"] = int(match["cells"])
        elif match := _USING_DEVICE.search(line):
            order.append((match["name"], match["description"]))
        elif match := _COPIES.search(line):
            fields["sched_copies"] = int(match["copies"])
    fields["backend"] = _backend(per_buffer, order, text)
    fields["devices"] = _devices(per_buffer, order)
    fields |= _placement(lines, order)
    return LoggedBuffers.model_validate(fields | {key: round(mib * MIB) for key, mib in sums.items()})
