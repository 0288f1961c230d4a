"""Read a local GGUF file into a `ModelShape`: hyperparameters and every tensor's type, size and offset.

gguf-py's `GGUFReader` memory-maps the file, so only the header is read, however large the model.
Its errors (bad magic, a header cut short, tensor data past the end of the file: an interrupted
download) surface as assorted Python exceptions from numpy and struct unpacking; this module is
the one boundary that turns them into a `ModelFileError` naming the file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
from gguf import GGMLQuantizationType, GGUFReader, LlamaFileType

from homelab.vram.architectures import arch_info, swa_layers
from homelab.vram.errors import ModelFileError, UnsupportedModel
from homelab.vram.shape import ModelShape, TensorInfo

__all__ = ["read_gguf", "shape_from_fields"]

_MAGIC = b"GGUF"


def read_gguf(path: str | os.PathLike[str]) -> ModelShape:
    """The shape of the model in a local GGUF file.

    Raises:
        ModelFileError: The file is missing, not GGUF, truncated or corrupt.
        UnsupportedModel: It is GGUF, but of an architecture the estimator does not model, or
            required hyperparameters are missing.
    """
    file = Path(path)
    try:
        with file.open("rb") as handle:
            magic = handle.read(4)
    except OSError as exc:
        raise ModelFileError(f"{file}: cannot read: {exc.strerror or exc}") from exc
    if magic != _MAGIC:
        raise ModelFileError(f"{file}: not a GGUF file (starts with {magic!r}, expected b'GGUF')")
    try:
        reader = GGUFReader(file)
    except (ValueError, IndexError, KeyError, OSError, OverflowError, UnicodeDecodeError, TypeError) as exc:
        raise ModelFileError(f"{file}: corrupt or truncated GGUF (an interrupted download?): {exc}") from exc
    fields = {name: _value(field, file) for name, field in reader.fields.items()}
    tensors = [_tensor(t, reader.data_offset) for t in reader.tensors]
    try:
        return shape_from_fields(fields, tensors, name=file.name, source="gguf")
    except UnsupportedModel as exc:
        raise UnsupportedModel(f"{file}: {exc}") from None


def _value(field: Any, file: Path) -> Any:
    """A field's value as plain Python: str, int, float, bool or a list of them."""
    try:
        value = field.contents()
    except (ValueError, IndexError, UnicodeDecodeError) as exc:
        raise ModelFileError(f"{file}: corrupt metadata field {field.name!r}: {exc}") from exc
    return value.tolist() if isinstance(value, np.ndarray) else value


def _tensor(tensor: Any, data_offset: int) -> TensorInfo:
    return TensorInfo(
        name=str(tensor.name),
        type=GGMLQuantizationType(int(tensor.tensor_type)).name,
        shape=[int(x) for x in tensor.shape],
        n_bytes=int(tensor.n_bytes),
        offset=int(tensor.data_offset) - data_offset,
    )


def _per_layer(value: Any, n_layer: int, key: str) -> list[int]:
    if isinstance(value, list):
        if len(value) != n_layer:
            raise UnsupportedModel(f"{key} has {len(value)} entries for {n_layer} layers")
        return [int(x) for x in value]
    return [int(value)] * n_layer


def _require(fields: dict[str, Any], key: str) -> Any:
    if key not in fields:
        raise UnsupportedModel(f"metadata key {key!r} is missing")
    return fields[key]


def shape_from_fields(
    fields: dict[str, Any], tensors: list[TensorInfo], *, name: str, source: str, estimated: bool = False
) -> ModelShape:
    """A shape from GGUF-style keys (`llama.block_count`...) and a tensor table.

    Ollama's /api/show returns the same keys as `model_info`, so both readers share this.

    Raises:
        UnsupportedModel: Unknown architecture or a required key is missing.
    """
    arch = str(_require(fields, "general.architecture"))
    arch_info(arch)
    p = f"{arch}."
    n_layer = int(_require(fields, p + "block_count"))
    n_embd = int(_require(fields, p + "embedding_length"))
    n_head = max(_per_layer(_require(fields, p + "attention.head_count"), n_layer, "head_count"))
    n_head_kv = _per_layer(fields.get(p + "attention.head_count_kv", n_head), n_layer, "head_count_kv")
    head_dim_k = int(fields.get(p + "attention.key_length", n_embd // n_head))
    head_dim_v = int(fields.get(p + "attention.value_length", head_dim_k))
    n_ff = max(_per_layer(fields.get(p + "feed_forward_length", 0), n_layer, "feed_forward_length"))
    vocab = fields.get(p + "vocab_size") or len(fields.get("tokenizer.ggml.tokens") or [])
    if not vocab:
        vocab = next((t.shape[1] for t in tensors if t.name == "token_embd.weight"), 0)
    if not vocab:
        raise UnsupportedModel("vocabulary size unknown (no vocab_size, token list or token_embd)")
    window, swa = swa_layers(
        arch, n_layer, fields.get(p + "attention.sliding_window"), fields.get(p + "attention.sliding_window_pattern")
    )
    n_params = sum(int(np.prod(t.shape)) for t in tensors) or int(fields.get("general.parameter_count") or 0)
    return ModelShape(
        name=name,
        arch=arch,
        source=source,  # type: ignore[arg-type]
        estimated=estimated,
        n_layer=n_layer,
        n_embd=n_embd,
        n_head=n_head,
        n_head_kv=n_head_kv,
        head_dim_k=head_dim_k,
        head_dim_v=head_dim_v,
        n_ff=n_ff,
        n_vocab=int(vocab),
        context_length=int(fields.get(p + "context_length") or 4096),
        sliding_window=window,
        swa_layers=swa,
        n_expert=int(fields.get(p + "expert_count") or 0),
        n_expert_used=int(fields.get(p + "expert_used_count") or 0),
        n_ff_expert=int(fields.get(p + "expert_feed_forward_length") or 0),
        file_type=_file_type(fields.get("general.file_type")),
        parameter_count=n_params,
        tensors=tensors,
    )


def _file_type(value: Any) -> str | None:
    if value is None:
        return None
    try:
        return LlamaFileType(int(value)).name.removeprefix("MOSTLY_")
    except ValueError:
        return str(value)
