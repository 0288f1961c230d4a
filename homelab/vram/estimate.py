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

from homelab.vram.compute import compute_buffers
from homelab.vram.kvcache import kv_layers
from homelab.vram.settings import RunSettings, context_for
from homelab.vram.shape import ModelShape
from homelab.vram.weights import layers_on_gpu, split_weights

__all__ = ["DeviceEstimate", "Estimate", "estimate", "max_gpu_layers"]


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
    """The bytes on each side for `shape` run with `settings`.

    Raises:
        SettingsError: The cache type does not fit the model's key/value widths.
    """
    ctx = context_for(shape, settings)
    on_gpu = layers_on_gpu(shape, ctx)
    weights = split_weights(shape, ctx, settings.backend)
    kv = kv_layers(shape, settings, ctx)
    # on_gpu ends with the output layer, which holds no cache.
    kv_gpu = sum(layer.bytes for layer, gpu in zip(kv, on_gpu[: shape.n_layer], strict=True) if gpu)
    kv_all = sum(layer.bytes for layer in kv)
    compute = compute_buffers(shape, settings, ctx, kv, on_gpu)
    output = shape.n_vocab * ctx.n_outputs * 4
    gpu_parts = weights.gpu_bytes + kv_gpu + compute.gpu_bytes
    overhead = settings.gpu_overhead_bytes if gpu_parts else 0
    pool = compute.gpu_pool_bytes if gpu_parts else 0
    devices = []
    if settings.backend != "cpu":
        device = DeviceEstimate(
            index=0,
            name="CUDA0",
            layers=ctx.n_gpu_layers,
            weights_bytes=weights.gpu_bytes,
            kv_bytes=kv_gpu,
            compute_bytes=compute.gpu_bytes,
            cuda_pool_bytes=pool,
            overhead_bytes=overhead,
            total_bytes=gpu_parts + pool + overhead,
        )
        devices.append(device)
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
        cuda_pool_bytes=pool,
        overhead_bytes=overhead,
        gpu_total_bytes=gpu_parts + pool + overhead,
        cpu_total_bytes=weights.cpu_bytes + (kv_all - kv_gpu) + compute.host_bytes + output,
        devices=devices,
    )


def max_gpu_layers(shape: ModelShape, settings: RunSettings, budget_bytes: int) -> Estimate | None:
    """The estimate with the most GPU layers whose GPU total fits `budget_bytes`, or None.

    Scans down from all layers: GPU use is not monotonic in `-ngl` (a partly offloaded model
    copies CPU layers' caches into the GPU's compute buffer), so bisection could skip the answer.
    None means not even `-ngl 0` fits: a CUDA build still computes on the GPU then.
    """
    for ngl in range(shape.n_layer + 1, -1, -1):
        result = estimate(shape, settings.model_copy(update={"n_gpu_layers": ngl}))
        if result.gpu_total_bytes <= budget_bytes:
            return result
    return None
