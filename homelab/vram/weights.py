"""Where the weights go for `-ngl N`, and how many bytes each side reports (llama-model.cpp `load_tensors`).

llama.cpp counts `n_layer + 1` offloadable layers: the blocks and the output layer. `-ngl N` puts
the last N of them on the GPU, the output layer first (`i_gpu_start = n_layer + 1 - N`), and keeps
the input layer (token_embd) on the CPU whatever N is. A model whose output layer is tied to
token_embd (gemma2) gets a copy of it on the GPU once the output layer is offloaded.

The two sides are sized differently, as llama.cpp does:
  GPU  every tensor allocated in a CUDA buffer: its bytes, plus a padding row for quantized rows
       not a multiple of 512 (MATRIX_ROW_PADDING), rounded up to 128 bytes.
  CPU  the model file is memory-mapped, and llama.cpp reports the mapped span from the first to
       the last CPU tensor (gaps included). A CPU-only build with AVX2 also repacks Q4_0, Q4_K,
       IQ4_NL and MXFP4 matrices (experts too) into a CPU_REPACK buffer, reported on top of the span.
"""

from __future__ import annotations

from dataclasses import dataclass

from homelab.vram.settings import Backend, Context
from homelab.vram.shape import ModelShape, TensorInfo, layer_index, row_bytes

__all__ = ["WeightSplit", "cuda_alloc_bytes", "layers_on_gpu", "split_weights"]

_CUDA_ALIGN = 128
_CUDA_ROW_PAD = 512
_CPU_ALIGN = 32
_INPUT = ("token_embd.", "position_embd.", "token_types.")
_REPACKED = {"Q4_0", "Q4_K", "IQ4_NL", "MXFP4"}  # ggml-cpu repack.cpp on x86 with AVX2
_FLOAT = {"F32", "F16", "BF16", "F64"}


@dataclass(frozen=True)
class WeightSplit:
    """Weight bytes per side, and the largest matrix of a CPU layer (copied to the GPU per op)."""

    gpu_bytes: int
    cpu_bytes: int
    largest_cpu_matrix: int


def layers_on_gpu(shape: ModelShape, ctx: Context) -> list[bool]:
    """Per offloadable layer (the blocks, then the output layer): on the GPU?"""
    start = shape.n_layer + 1 - ctx.n_gpu_layers
    return [il >= start for il in range(shape.n_layer + 1)]


def _group(shape: ModelShape, tensor: TensorInfo) -> int | None:
    """The offloadable layer of a tensor: its block, n_layer for the output layer, None for input."""
    if tensor.name.startswith(_INPUT):
        return None
    index = layer_index(tensor.name)
    return index if index is not None and index < shape.n_layer else shape.n_layer


def _pad(n: int, to: int) -> int:
    return -(-n // to) * to


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


def split_weights(shape: ModelShape, ctx: Context, backend: Backend) -> WeightSplit:
    """Bytes of weights on the GPU and on the CPU for this many GPU layers."""
    on_gpu = layers_on_gpu(shape, ctx)
    gpu: list[TensorInfo] = []
    cpu: list[TensorInfo] = []
    for tensor in shape.tensors:
        index = layer_index(tensor.name)
        if index is not None and shape.n_layer_trunk <= index < shape.n_layer:
            continue  # multi-token-prediction blocks are skipped (TENSOR_SKIP), inside the span or not
        group = _group(shape, tensor)
        (gpu if group is not None and on_gpu[group] else cpu).append(tensor)
    gpu_bytes = sum(cuda_alloc_bytes(t) for t in gpu)
    if shape.tied_output and on_gpu[shape.n_layer]:
        gpu_bytes += sum(cuda_alloc_bytes(t) for t in shape.tensors if t.name == "token_embd.weight")
    repacked = [t for t in cpu if backend == "cpu" and _group(shape, t) is not None and _repacked(t)]
    repacked_names = {t.name for t in repacked}
    mapped = [t for t in cpu if t.name not in repacked_names]
    cpu_bytes = _span(mapped) + sum(_pad(t.n_bytes, _CPU_ALIGN) for t in repacked)
    matrices = [t.n_bytes for t in cpu if len(t.shape) >= 2 and _group(shape, t) not in (None, shape.n_layer)]
    return WeightSplit(gpu_bytes, cpu_bytes, max(matrices, default=0))
