"""Where the weights go, and how many bytes each side reports (llama-model.cpp `load_tensors`).

llama.cpp counts `n_layer + 1` offloadable layers: the blocks and the output layer. `-ngl N` puts
the last N of them on the devices, the output layer first (`i_gpu_start = n_layer + 1 - N`), and
keeps the input layer (token_embd) on the CPU whatever N is; `homelab.vram.devices` says which
device each layer and tensor gets (the split between GPUs, `-ot`, `--n-cpu-moe`). A model whose
output layer is tied to token_embd (gemma2) gets a copy of it on the output layer's device.

The two sides are sized differently, as llama.cpp does:
  GPU  every tensor allocated in a CUDA buffer: its bytes, plus a padding row for quantized rows
       not a multiple of 512 (MATRIX_ROW_PADDING), rounded up to 128 bytes.
  CPU  the model file is memory-mapped, and llama.cpp reports the mapped span from the first to
       the last CPU tensor (gaps included: experts kept on the CPU between GPU tensors count the
       GPU tensors between them). A CPU-only build with AVX2 also repacks Q4_0, Q4_K, IQ4_NL and
       MXFP4 matrices (experts too) into a CPU_REPACK buffer, reported on top of the span. A CUDA
       build does not, not even for experts an override sends to the CPU: the CPU buffer list
       starts with CUDA_Host (llama-model.cpp:1096-1108), which mmap turns into the plain mapped
       CPU buffer (llama-model-loader.cpp:1241-1276), so the repack buffer is never reached.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from homelab.vram.devices import CPU, DeviceMap
from homelab.vram.settings import Backend, Context
from homelab.vram.shape import ModelShape, TensorInfo, layer_index, row_bytes

__all__ = ["WeightSplit", "cuda_alloc_bytes", "layers_on_gpu", "place_tensors", "split_weights"]

_CUDA_ALIGN = 128
_CUDA_ROW_PAD = 512
_CPU_ALIGN = 32
_REPACKED = {"Q4_0", "Q4_K", "IQ4_NL", "MXFP4"}  # ggml-cpu repack.cpp on x86 with AVX2
_FLOAT = {"F32", "F16", "BF16", "F64"}


@dataclass(frozen=True)
class WeightSplit:
    """Weight bytes per side and per device, and the largest expert stack left on the CPU.

    `largest_cpu_experts` (with devices) is what a CUDA build copies into its first GPU's compute
    buffer: a micro-batch of 32 tokens or more runs a CPU weight's MUL_MAT_ID on the GPU
    (ggml-backend.cpp:1107-1116, ggml-cuda.cu:5754-5757), one weight per split (ggml-backend.cpp:
    1465-1480). With RPC devices the host runs those experts instead.
    """

    gpu_bytes: int
    cpu_bytes: int
    device_bytes: dict[int, int]
    largest_cpu_experts: int = 0
    cpu_expert_layers: frozenset[int] = frozenset()  # blocks whose routed experts stay on the CPU
    where: dict[str, int] = field(default_factory=dict)  # each loaded tensor's device (CPU: -1)


def layers_on_gpu(shape: ModelShape, ctx: Context) -> list[bool]:
    """Per offloadable layer (the blocks, then the output layer): on the GPU?"""
    start = shape.n_layer + 1 - ctx.n_gpu_layers
    return [il >= start for il in range(shape.n_layer + 1)]


def _pad(n: int, to: int) -> int:
    return -(-n // to) * to


def device_alloc_bytes(tensor: TensorInfo, backend: Backend) -> int:
    """What a device allocates for a weight: CUDA's padded rows, or an RPC server's CPU backend's bytes
    (ggml_nbytes, 32-byte aligned: ggml-rpc.cpp:846-926 asks the server, whose CPU buffer type pads nothing)."""
    return _pad(tensor.n_bytes, _CPU_ALIGN) if backend == "rpc" else cuda_alloc_bytes(tensor)


def cuda_alloc_bytes(tensor: TensorInfo) -> int:
    """What ggml-cuda allocates for a weight (ggml_backend_cuda_buffer_type_get_alloc_size)."""
    size = tensor.n_bytes
    ne0 = tensor.shape[0]
    if tensor.type not in _FLOAT and ne0 % _CUDA_ROW_PAD:
        size += row_bytes(tensor.type, _CUDA_ROW_PAD - ne0 % _CUDA_ROW_PAD)
    return _pad(size, _CUDA_ALIGN)


def _repacked(tensor: TensorInfo) -> bool:
    """Matrices of plain products and the experts' 3-D stacks (MUL_MAT_ID); other 3-D weights
    (deepseek2's per-head attn_k_b, attn_v_b in a batched MUL_MAT) stay mapped (repack.cpp supports_op)."""
    dims = len(tensor.shape)
    matrix = dims == 2 or (dims == 3 and "_exps." in tensor.name)
    return tensor.type in _REPACKED and matrix and tensor.shape[1] % 8 == 0


def _span(tensors: list[TensorInfo]) -> int:
    if not tensors:
        return 0
    return max(t.offset + t.n_bytes for t in tensors) - min(t.offset for t in tensors)


def place_tensors(shape: ModelShape, devices: DeviceMap) -> dict[str, int]:
    """Each loaded tensor's device (`CPU` or an index); multi-token-prediction blocks are not loaded."""
    out = {}
    for tensor in shape.tensors:
        index = layer_index(tensor.name)
        if index is not None and shape.n_layer_trunk <= index < shape.n_layer:
            continue  # multi-token-prediction blocks are skipped (TENSOR_SKIP), inside the span or not
        out[tensor.name] = devices.tensor(shape, tensor.name)
    return out


def split_weights(shape: ModelShape, backend: Backend, devices: DeviceMap) -> WeightSplit:
    """Bytes of weights on each device and on the CPU for this placement."""
    where = place_tensors(shape, devices)
    per_device: dict[int, int] = {}
    cpu: list[TensorInfo] = []
    for tensor in shape.tensors:
        device = where.get(tensor.name)
        if device is None:
            continue
        if device == CPU:
            cpu.append(tensor)
        else:
            per_device[device] = per_device.get(device, 0) + device_alloc_bytes(tensor, backend)
    output = devices.tensor(shape, "token_embd.weight", duplicate=True)
    if shape.tied_output and output != CPU:
        embd = sum(device_alloc_bytes(t, backend) for t in shape.tensors if t.name == "token_embd.weight")
        per_device[output] = per_device.get(output, 0) + embd
    offloadable = [t for t in cpu if devices.layer_of(shape, t.name) is not None]
    # No host buffer type before CPU_REPACK without CUDA (ggml-rpc.cpp:2260): the CPU build and RPC repack.
    repacked = [t for t in offloadable if backend != "cuda" and _repacked(t)]
    repacked_names = {t.name for t in repacked}
    mapped = [t for t in cpu if t.name not in repacked_names]
    cpu_bytes = _span(mapped) + sum(_pad(t.n_bytes, _CPU_ALIGN) for t in repacked)
    experts = [t for t in offloadable if "_exps." in t.name and len(t.shape) == 3]
    largest = max((cuda_alloc_bytes(t) for t in experts), default=0) if devices.active else 0
    layers = frozenset(layer_index(t.name) or 0 for t in experts)
    return WeightSplit(sum(per_device.values()), cpu_bytes, per_device, largest, layers, where)
