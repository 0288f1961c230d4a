"""Read a local GGUF file into a `ModelShape`: hyperparameters and every tensor's type, size and offset.

`gguf_header` reads the header with every count checked against the file (only the header is
read, however large the model). This module turns its key/values into a shape, and refuses a
hyperparameter outside the range a real model can have (`_RANGES`) by naming the key: a zero head
count must not become a ZeroDivisionError, nor a NaN or a 2^60 block count a hang.

A split GGUF (`-00001-of-00003.gguf`) keeps the metadata in its first part and each part's
tensors in that part's own header (llama.cpp's `llama_model_loader` reads every split's), so the
shape is the first header's metadata with the tensors of all of them.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from gguf import LlamaFileType
from pydantic import ValidationError

from homelab.errors import ModelFileError, UnsupportedModel
from homelab.sources.spec import split_parts
from homelab.vram.architectures import arch_info, swa_layers
from homelab.vram.gguf_header import GGUFHeader, SkippedArray, read_header
from homelab.vram.shape import ModelShape, TensorInfo
from homelab.vram.sizes import MAX_CONTEXT

__all__ = ["read_gguf", "shape_from_fields", "shape_from_headers", "split_count"]

# The range of each `{arch}.` hyperparameter; a value outside it is refused with the key named.
# Upper bounds are llama.cpp's own where it has one, else far above any released model.
_RANGES: dict[str, tuple[int, int]] = {
    "block_count": (1, 512),  # LLAMA_MAX_LAYERS (src/llama-hparams.h), asserted in llama-model.cpp
    "embedding_length": (1, 1 << 18),  # widest released model: 16,384 (Llama 3.1 405B)
    "attention.head_count": (1, 1 << 12),
    "attention.head_count_kv": (1, 1 << 12),
    "attention.key_length": (1, 1 << 16),
    "attention.value_length": (1, 1 << 16),
    "attention.key_length_mla": (1, 1 << 16),
    "attention.value_length_mla": (1, 1 << 16),
    "feed_forward_length": (0, 1 << 20),
    "context_length": (1, MAX_CONTEXT),
    "vocab_size": (1, 1 << 24),
    "expert_count": (0, 1024),  # LLAMA_MAX_EXPERTS (src/llama-hparams.h)
    "expert_used_count": (0, 1024),
    "expert_feed_forward_length": (0, 1 << 20),
    "attention.sliding_window": (1, 1 << 26),
    "attention.sliding_window_pattern": (0, 512),
    "nextn_predict_layers": (0, 512),
}
_MAX_PARAMETERS = 1 << 50  # a parameter count from metadata: a thousand times the largest model
_DEFAULT_CONTEXT = 4096


def read_gguf(path: str | os.PathLike[str]) -> ModelShape:
    """The shape of the model in a local GGUF file.

    Raises:
        ModelFileError: The file is missing, not a regular file, not GGUF, truncated or corrupt.
        UnsupportedModel: It is GGUF, but of an architecture the estimator does not model, or
            required hyperparameters are missing or out of range (the key is named).
    """
    file = Path(path)
    headers = [read_header(file)]
    if split_count(headers[0], file.name) > 1:
        headers += [read_header(file.with_name(part)) for part in split_parts(file.name)[1:]]
    try:
        return shape_from_headers(headers, file.name)
    except UnsupportedModel as exc:
        raise UnsupportedModel(f"{file}: {exc}") from None


def split_count(first: GGUFHeader, name: str) -> int:
    """How many parts the file named `name` with header `first` is the first of (1: not split).

    Raises:
        ModelFileError: the header says it is split, but the name is not its first part's.
    """
    count, number = first.fields.get("split.count", 1), first.fields.get("split.no", 0)
    if not isinstance(count, int) or count <= 1:
        return 1
    parts = split_parts(name) if number == 0 else []
    if len(parts) != count:
        raise ModelFileError(
            f"{name}: part {number + 1 if isinstance(number, int) else number} of a {count}-part split GGUF; "
            f"give the first part, named PREFIX-00001-of-{count:05d}.gguf (llama.cpp finds the others by name)"
        )
    return count


def shape_from_headers(headers: list[GGUFHeader], name: str) -> ModelShape:
    """The shape of a model from its headers: the first part's metadata, every part's tensors.

    Raises:
        UnsupportedModel: as `shape_from_fields`.
    """
    tensors = [t for header in headers for t in header.tensors]
    return shape_from_fields(headers[0].fields, tensors, name=name, source="gguf")


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _whole(key: str, value: Any, bounds: tuple[int, int]) -> int:
    """`value` as an int within `bounds`; anything else (a float, NaN, text, a list) names the key."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise UnsupportedModel(f"metadata key {key!r}: {_shown(value)} is not a whole number")
    low, high = bounds
    if not low <= value <= high:
        raise UnsupportedModel(f"metadata key {key!r}: {value:,} is out of range {low:,}..{high:,}")
    return value


def _optional(fields: dict[str, Any], arch: str, name: str) -> int | None:
    """A checked `{arch}.{name}`, or None when absent (Ollama gives null for some)."""
    key = f"{arch}.{name}"
    value = fields.get(key)
    return None if value is None else _whole(key, value, _RANGES[name])


def _required(fields: dict[str, Any], arch: str, name: str) -> int:
    value = _optional(fields, arch, name)
    if value is None:
        raise UnsupportedModel(f"metadata key {f'{arch}.{name}'!r} is missing")
    return value


def _per_layer(fields: dict[str, Any], arch: str, name: str, n_layer: int, default: int | None) -> list[int]:
    """One value per layer: a GGUF array of `n_layer` entries, or one value for every layer."""
    key = f"{arch}.{name}"
    value = fields.get(key)
    if isinstance(value, list | SkippedArray):
        if len(value) != n_layer:
            raise UnsupportedModel(f"metadata key {key!r} has {len(value):,} entries for {n_layer} layers")
        return [_whole(key, x, _RANGES[name]) for x in _items(key, value)]
    if value is None and default is None:
        raise UnsupportedModel(f"metadata key {key!r} is missing")
    return [default if value is None else _whole(key, value, _RANGES[name])] * n_layer  # type: ignore[list-item]


def _vocab(fields: dict[str, Any], arch: str, tensors: list[TensorInfo]) -> int:
    """The vocabulary size: `vocab_size`, else the token list's length, else token_embd's rows."""
    tokens = fields.get("tokenizer.ggml.tokens")
    embd = next((t.shape for t in tensors if t.name == "token_embd.weight" and len(t.shape) >= 2), [0, 0])
    vocab = _optional(fields, arch, "vocab_size") or (len(tokens) if isinstance(tokens, list | SkippedArray) else 0)
    vocab = vocab or embd[1]
    if not vocab:
        raise UnsupportedModel("vocabulary size unknown (no vocab_size, token list or token_embd)")
    return vocab  # a list's length or a tensor's rows: bounded by the file's own size


def shape_from_fields(
    fields: dict[str, Any], tensors: list[TensorInfo], *, name: str, source: str, estimated: bool = False
) -> ModelShape:
    """A shape from GGUF-style keys (`llama.block_count`...) and a tensor table.

    Ollama's /api/show returns the same keys as `model_info`, so both readers share this.

    Raises:
        UnsupportedModel: Unknown architecture, or a required key is missing or out of range.
    """
    arch = fields.get("general.architecture")
    if not isinstance(arch, str):
        raise UnsupportedModel(f"metadata key 'general.architecture' is {'missing' if arch is None else 'not text'}")
    arch_info(arch)
    n_layer = _required(fields, arch, "block_count")
    n_embd = _required(fields, arch, "embedding_length")
    n_head = max(_per_layer(fields, arch, "attention.head_count", n_layer, None))
    n_head_kv = _per_layer(fields, arch, "attention.head_count_kv", n_layer, n_head)
    head_dim_k = _optional(fields, arch, "attention.key_length") or n_embd // n_head
    if head_dim_k < 1:
        key = f"{arch}.attention.head_count"
        raise UnsupportedModel(f"metadata key {key!r}: {n_head} heads for {n_embd} embedding values")
    head_dim_v = _optional(fields, arch, "attention.value_length") or head_dim_k
    window, swa = swa_layers(
        arch, n_layer, _optional(fields, arch, "attention.sliding_window"), _swa_pattern(fields, arch, n_layer)
    )
    params = fields.get("general.parameter_count")
    try:
        return ModelShape(
            name=name,
            arch=arch,
            source=source,
            estimated=estimated,
            n_layer=n_layer,
            n_layer_nextn=_optional(fields, arch, "nextn_predict_layers") or 0,
            n_embd=n_embd,
            n_head=n_head,
            n_head_kv=n_head_kv,
            head_dim_k=head_dim_k,
            head_dim_v=head_dim_v,
            n_ff=max(_per_layer(fields, arch, "feed_forward_length", n_layer, 0)),
            n_vocab=_vocab(fields, arch, tensors),
            context_length=_optional(fields, arch, "context_length") or _DEFAULT_CONTEXT,
            sliding_window=window,
            swa_layers=swa,
            # llama.cpp's is_mla(): both MLA head sizes given; key_length is then the latent row.
            mla=bool(_optional(fields, arch, "attention.key_length_mla"))
            and bool(_optional(fields, arch, "attention.value_length_mla")),
            n_expert=_optional(fields, arch, "expert_count") or 0,
            n_expert_used=_optional(fields, arch, "expert_used_count") or 0,
            n_ff_expert=_optional(fields, arch, "expert_feed_forward_length") or 0,
            file_type=_file_type(fields.get("general.file_type")),
            parameter_count=sum(math.prod(t.shape) for t in tensors)
            or (0 if params is None else _whole("general.parameter_count", params, (0, _MAX_PARAMETERS))),
            tensors=tensors,
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        raise UnsupportedModel(f"{'.'.join(map(str, first['loc']))}: {first['msg']}") from None


def _items(key: str, value: list[Any] | SkippedArray) -> list[Any]:
    """A per-layer array's items; one the header reader skipped (its budget of kept items spent
    on earlier arrays, as only a hostile file does) has none to give."""
    if isinstance(value, SkippedArray):
        raise UnsupportedModel(f"metadata key {key!r}: its {len(value):,} entries were not read (too many arrays)")
    return value


def _swa_pattern(fields: dict[str, Any], arch: str, n_layer: int) -> int | list[bool] | None:
    """`sliding_window_pattern`: a period, or flags for the first layers (llama.cpp's get_key_or_arr)."""
    key = f"{arch}.attention.sliding_window_pattern"
    value = fields.get(key)
    if isinstance(value, list | SkippedArray):
        if len(value) > n_layer:
            raise UnsupportedModel(f"metadata key {key!r} has {len(value):,} entries for {n_layer} layers")
        return [bool(x) for x in _items(key, value)]
    return _optional(fields, arch, "attention.sliding_window_pattern")


def _file_type(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, int):
        try:
            return LlamaFileType(value).name.removeprefix("MOSTLY_")
        except ValueError:
            pass  # a file type newer than gguf-py: shown as its number
    return str(value)[:40]
