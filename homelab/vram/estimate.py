"""The estimate: bytes a llama-server run puts on the GPU and on the CPU, and its inverse.

Composes the three parts llama.cpp allocates (weights, KV cache, compute buffers, each split
between GPU and host the way llama.cpp splits them) with the small output buffer and what
llama.cpp never reports: ggml's CUDA pool at a full context without flash attention, and a
per-GPU overhead (CUDA context, cuBLAS handle and workspace, lazily loaded kernels, the pool's
small allocations). The field names of `Estimate` are an interface (`homelab plan estimate
--json`): keep them.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from homelab.vram.device_compute import compute_buffers
from homelab.vram.devices import CPU, DeviceMap, device_map
from homelab.vram.kvcache import kv_layers
from homelab.vram.settings import RunSettings, context_for
from homelab.vram.shape import ModelShape
from homelab.vram.weights import split_weights

__all__ = ["DeviceEstimate", "Estimate", "estimate", "fits", "max_gpu_layers"]


class DeviceEstimate(BaseModel):
    """One GPU's share of a run, in bytes: what llama.cpp allocates there, and the overhead of using it."""

    model_config = ConfigDict(frozen=True)

    index: int = Field(description="position in llama.cpp's device list (CUDA index on a CUDA build)")
    name: str = Field(description="llama.cpp's name of the device: CUDA0, CUDA1...")
    layers: int = Field(description="offloadable layers assigned to it, the output layer included")
    weights_bytes: int
    kv_bytes: int
    compute_bytes: int
    cuda_pool_bytes: int = 0
    overhead_bytes: int = Field(description="per-GPU overhead counted (0 when nothing is on this device)")
    total_bytes: int


class Estimate(BaseModel):
    """What one model takes with one set of run settings, in bytes."""

    model_config = ConfigDict(frozen=True)

    model: str
    estimated_shape: bool = Field(description="the model's tensor sizes were derived, not read from a file")
    n_gpu_layers: int = Field(description="offloaded layers, the output layer included")
    n_layers_total: int = Field(description="offloadable layers: n_layer + 1")
    n_ctx: int
    n_ctx_seq: int
    weights_gpu_bytes: int
    weights_cpu_bytes: int
    kv_bytes: int
    kv_gpu_bytes: int
    kv_cpu_bytes: int
    compute_bytes: int
    compute_gpu_bytes: int
    compute_host_bytes: int
    output_bytes: int = Field(description="logits buffer in host memory")
    cuda_pool_bytes: int = Field(0, description="ggml's CUDA pool at a full context: f16 KQ without flash attention")
    overhead_bytes: int = Field(description="per-GPU overhead counted (0 when nothing is on the GPU)")
    gpu_total_bytes: int = Field(description="over every device: the sum of `devices`' totals")
    cpu_total_bytes: int
    devices: list[DeviceEstimate] = Field(default_factory=list, description="per GPU; empty on a CPU-only build")


def estimate(shape: ModelShape, settings: RunSettings) -> Estimate:
    """The bytes on each side, and on each device, for `shape` run with `settings`.

    Raises:
        SettingsError: The cache type does not fit the model's key/value widths, an override names
            a device the run lacks, or the split mode is one this llama.cpp build cannot load.
    """
    ctx = context_for(shape, settings)
    devices = device_map(shape, settings, ctx)
    weights = split_weights(shape, settings.backend, devices)
    kv = kv_layers(shape, settings, ctx)
    kv_per_device: dict[int, int] = {}
    for layer, device in zip(kv, devices.layers[: shape.n_layer], strict=True):
        kv_per_device[device] = kv_per_device.get(device, 0) + layer.bytes
    kv_all = sum(layer.bytes for layer in kv)
    kv_gpu = kv_all - kv_per_device.get(CPU, 0)
    compute = compute_buffers(shape, settings, ctx, kv, devices, weights)
    output = shape.n_vocab * ctx.n_outputs * 4
    per_device = [
        _device(
            index,
            devices,
            weights.device_bytes.get(index, 0),
            kv_per_device.get(index, 0),
            compute.devices.get(index, 0),
            compute.pools.get(index, 0),
            settings.gpu_overhead_bytes,
        )
        for index, _ in enumerate(devices.names)
    ]
    return Estimate(
        model=shape.name,
        estimated_shape=shape.estimated,
        n_gpu_layers=ctx.n_gpu_layers,
        n_layers_total=shape.n_layer + 1,
        n_ctx=ctx.n_ctx,
        n_ctx_seq=ctx.n_ctx_seq,
        weights_gpu_bytes=weights.gpu_bytes,
        weights_cpu_bytes=weights.cpu_bytes,
        kv_bytes=kv_all,
        kv_gpu_bytes=kv_gpu,
        kv_cpu_bytes=kv_all - kv_gpu,
        compute_bytes=compute.gpu_bytes + compute.host_bytes,
        compute_gpu_bytes=compute.gpu_bytes,
        compute_host_bytes=compute.host_bytes,
        output_bytes=output,
        cuda_pool_bytes=sum(d.cuda_pool_bytes for d in per_device),
        overhead_bytes=sum(d.overhead_bytes for d in per_device),
        gpu_total_bytes=sum(d.total_bytes for d in per_device),
        cpu_total_bytes=weights.cpu_bytes + (kv_all - kv_gpu) + compute.host_bytes + output,
        devices=per_device,
    )


def _device(
    index: int, devices: DeviceMap, weights: int, kv: int, compute: int, pool: int, overhead: int
) -> DeviceEstimate:
    """One device's figures; a device holding nothing costs nothing (no CUDA context is made there)."""
    used = weights + kv + compute
    pool = pool if used else 0
    overhead = overhead if used else 0
    return DeviceEstimate(
        index=index,
        name=devices.names[index],
        layers=sum(1 for d in devices.layers if d == index),
        weights_bytes=weights,
        kv_bytes=kv,
        compute_bytes=compute,
        cuda_pool_bytes=pool,
        overhead_bytes=overhead,
        total_bytes=used + pool + overhead,
    )


def fits(result: Estimate, budget_bytes: int | list[int]) -> bool:
    """The GPU total within one budget, or each device's total within its own (a list, by device index)."""
    if isinstance(budget_bytes, int):
        return result.gpu_total_bytes <= budget_bytes
    return all(d.total_bytes <= budget for d, budget in zip(result.devices, budget_bytes, strict=True))


def max_gpu_layers(shape: ModelShape, settings: RunSettings, budget_bytes: int | list[int]) -> Estimate | None:
    """The estimate with the most GPU layers that `fits` the budget, or None.

    Scans down from all layers: GPU use is not monotonic in `-ngl` (a partly offloaded model
    copies CPU layers' caches into the GPU's compute buffer), so bisection could skip the answer.
    None means not even `-ngl 0` fits: a CUDA build still computes on the GPU then.
    """
    for ngl in range(shape.n_layer + 1, -1, -1):
        result = estimate(shape, settings.model_copy(update={"n_gpu_layers": ngl}))
        if fits(result, budget_bytes):
            return result
    return None
