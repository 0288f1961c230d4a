"""A model as the estimator sees it: hyperparameters plus the tensor table, from any source.

Every reader (a local GGUF, Ollama's /api/show, llama-server's /props, a bare name) produces a
`ModelShape`, so the estimator has one input type. A shape read from a GGUF carries the real
tensor table (type, size and file offset of every tensor); the others carry a synthetic one
built by `synthesize_tensors` and say so with `estimated=True`. Shapes are plain data and dump
to JSON, which is how the accuracy test stores the benchmark models without their 300 MB of
weights.
"""

from __future__ import annotations

import re
from typing import Literal

from gguf import GGML_QUANT_SIZES, GGMLQuantizationType
from pydantic import BaseModel, ConfigDict, Field, model_validator

from homelab.errors import UnsupportedModel

__all__ = [
    "ModelShape",
    "Source",
    "TensorInfo",
    "layer_index",
    "row_bytes",
    "synthesize_tensors",
    "tensor_bytes",
    "type_size",
]

Source = Literal["gguf", "ollama", "llama-server", "name"]
_LAYER = re.compile(r"^blk\.(\d+)\.")


def type_size(type_name: str) -> tuple[int, int]:
    """(elements per block, bytes per block) of a ggml type such as 'Q4_K' or 'F16'.

    Raises:
        UnsupportedModel: The type is not one gguf-py knows.
    """
    try:
        return GGML_QUANT_SIZES[GGMLQuantizationType[type_name.upper()]]
    except KeyError:
        raise UnsupportedModel(f"unknown ggml tensor type {type_name!r}") from None


def row_bytes(type_name: str, n: int) -> int:
    """Bytes of `n` consecutive elements of a type (ggml_row_size); `n` must fill whole blocks."""
    block, size = type_size(type_name)
    return n // block * size


def tensor_bytes(type_name: str, shape: list[int]) -> int:
    """Bytes of a tensor: rows of `shape[0]` elements times the other dimensions."""
    rows = 1
    for dim in shape[1:]:
        rows *= dim
    return row_bytes(type_name, shape[0]) * rows


def layer_index(name: str) -> int | None:
    """The block number of a per-layer tensor (`blk.7.ffn_up.weight` -> 7), None for the rest."""
    match = _LAYER.match(name)
    return int(match.group(1)) if match else None


class TensorInfo(BaseModel):
    """One tensor of the model file: ggml shape order (`ne0` first), type, bytes, offset."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    type: str = Field(description="ggml type name: F32, F16, Q8_0, Q4_K...")
    shape: list[int]
    n_bytes: int = Field(ge=0)
    offset: int = Field(ge=0, description="from the start of the file's tensor data section")


class ModelShape(BaseModel):
    """Hyperparameters and tensors of one model; the estimator's only input about the model."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    arch: str
    source: Source
    estimated: bool = Field(description="tensor sizes derived from a parameter count, not read")
    n_layer: int = Field(gt=0, description="blocks in the file (block_count), multi-token-prediction ones included")
    n_layer_nextn: int = Field(0, ge=0, description="trailing multi-token-prediction blocks llama-server skips")
    n_embd: int = Field(gt=0)
    n_head: int = Field(gt=0)
    n_head_kv: list[int] = Field(description="key/value heads per layer (grouped-query attention)")
    head_dim_k: int = Field(gt=0)
    head_dim_v: int = Field(gt=0)
    n_ff: int = Field(ge=0, description="feed-forward width (largest layer); 0 for pure MoE")
    n_vocab: int = Field(gt=0)
    context_length: int = Field(gt=0, description="training context")
    sliding_window: int | None = Field(None, description="tokens a sliding-window layer attends to")
    swa_layers: list[bool] = Field(description="per layer: True for a sliding-window layer")
    mla: bool = Field(False, description="multi-head latent attention: the cache holds compressed keys and no V")
    n_expert: int = 0
    n_expert_used: int = 0
    n_ff_expert: int = 0
    file_type: str | None = None
    parameter_count: int = Field(ge=0)
    tensors: list[TensorInfo]

    @model_validator(mode="after")
    def _per_layer_lists(self) -> ModelShape:
        for field in ("n_head_kv", "swa_layers"):
            if len(getattr(self, field)) != self.n_layer:
                raise ValueError(f"{field} needs one entry per layer ({self.n_layer})")
        if self.n_layer_nextn >= self.n_layer:
            raise ValueError("n_layer_nextn must leave at least one block")
        if any(self.swa_layers) and not self.sliding_window:
            raise ValueError("sliding-window layers need a sliding_window")
        return self

    def n_embd_k_gqa(self, il: int) -> int:
        """Key width of layer `il` (heads x head size): one KV cache row."""
        return self.n_head_kv[il] * self.head_dim_k

    def n_embd_v_gqa(self, il: int) -> int:
        """Value width of layer `il`."""
        return self.n_head_kv[il] * self.head_dim_v

    @property
    def n_layer_trunk(self) -> int:
        """The blocks a llama-server run computes and caches (llama.cpp's hparams.n_layer())."""
        return self.n_layer - self.n_layer_nextn

    @property
    def tied_output(self) -> bool:
        """No `output.weight`: llama.cpp reuses token_embd as the output layer (and copies it to a GPU)."""
        return not any(t.name == "output.weight" for t in self.tensors)

    @property
    def weight_bytes(self) -> int:
        """All tensor bytes in the file."""
        return sum(t.n_bytes for t in self.tensors)


def synthesize_tensors(
    *,
    n_layer: int,
    n_embd: int,
    n_head: int,
    n_head_kv: int,
    head_dim: int,
    n_ff: int,
    n_vocab: int,
    weight_type: str,
    bits_per_weight: float | None = None,
    tied_output: bool = False,
) -> list[TensorInfo]:
    """A llama-shaped tensor table for a model known only by its hyperparameters.

    2-D weights are labelled `weight_type`; their bytes follow `bits_per_weight` when given (a
    file type such as Q4_K_M mixes several ggml types; its average rate is what counts), else the
    type's own size. Norms are F32.
    """
    out: list[TensorInfo] = []
    offset = 0

    def add(name: str, type_name: str, shape: list[int]) -> None:
        nonlocal offset
        if bits_per_weight is not None and type_name == weight_type:
            n = 1
            for dim in shape:
                n *= dim
            size = -(-int(n * bits_per_weight) // 8)
        else:
            size = tensor_bytes(type_name, shape)
        out.append(TensorInfo(name=name, type=type_name, shape=shape, n_bytes=size, offset=offset))
        offset += size

    add("token_embd.weight", weight_type, [n_embd, n_vocab])
    q, kv = n_head * head_dim, n_head_kv * head_dim
    for il in range(n_layer):
        add(f"blk.{il}.attn_norm.weight", "F32", [n_embd])
        for part, rows in (("q", q), ("k", kv), ("v", kv)):
            add(f"blk.{il}.attn_{part}.weight", weight_type, [n_embd, rows])
        add(f"blk.{il}.attn_output.weight", weight_type, [q, n_embd])
        add(f"blk.{il}.ffn_norm.weight", "F32", [n_embd])
        add(f"blk.{il}.ffn_gate.weight", weight_type, [n_embd, n_ff])
        add(f"blk.{il}.ffn_up.weight", weight_type, [n_embd, n_ff])
        add(f"blk.{il}.ffn_down.weight", weight_type, [n_ff, n_embd])
    add("output_norm.weight", "F32", [n_embd])
    if not tied_output:
        add("output.weight", weight_type, [n_embd, n_vocab])
    return out
