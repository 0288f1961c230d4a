"""A model known only by name ("qwen2.5-14b Q4_K_M") or by a parameter count: an estimated shape.

When no GGUF can be read (the file sits in a Docker volume on another node, or Ollama reports
only `parameter_size` and `quantization_level`), the shape is taken from the published
configuration of a known family of that size, and its tensor bytes from the quantization's
typical bits per weight. Unknown families borrow the nearest known configuration and scale its
weights to the stated parameter count. Every such shape has `estimated=True`; a plan built on it
says so.
"""

from __future__ import annotations

import os
import re
from typing import NamedTuple

from homelab.errors import UnsupportedModel
from homelab.tiny_moe import MOE_ARCHS
from homelab.vram.guess_moe import MoeConfig, moe_config_of, moe_parameter_count, moe_shape, nearest_moe
from homelab.vram.metadata import read_gguf
from homelab.vram.shape import ModelShape, Source, synthesize_tensors

__all__ = [
    "FAMILIES",
    "FILE_TYPES",
    "Family",
    "FileType",
    "family_of",
    "guess_shape",
    "parameter_count",
    "parse_file_type",
    "shape_from_counts",
    "shape_of",
]


class FileType(NamedTuple):
    """A llama.cpp file type: its main ggml type and typical bits per weight over the whole file."""

    weight_type: str
    bits_per_weight: float


# Typical whole-file rates (llama.cpp's quantize table and published GGUFs of 7-14B models):
# the mixes keep some tensors (output, attn_v, ffn_down) in a larger type.
FILE_TYPES: dict[str, FileType] = {
    "F32": FileType("F32", 32.0), "F16": FileType("F16", 16.0), "BF16": FileType("BF16", 16.0),
    "Q8_0": FileType("Q8_0", 8.5), "Q6_K": FileType("Q6_K", 6.56),
    "Q5_K_M": FileType("Q5_K", 5.69), "Q5_K_S": FileType("Q5_K", 5.54),
    "Q5_1": FileType("Q5_1", 6.0), "Q5_0": FileType("Q5_0", 5.5),
    "Q4_K_M": FileType("Q4_K", 4.89), "Q4_K_S": FileType("Q4_K", 4.58),
    "Q4_1": FileType("Q4_1", 5.0), "Q4_0": FileType("Q4_0", 4.55),
    "IQ4_NL": FileType("IQ4_NL", 4.5), "IQ4_XS": FileType("IQ4_XS", 4.25),
    "Q3_K_L": FileType("Q3_K", 4.27), "Q3_K_M": FileType("Q3_K", 3.91), "Q3_K_S": FileType("Q3_K", 3.5),
    "IQ3_M": FileType("IQ3_S", 3.66), "IQ3_XXS": FileType("IQ3_XXS", 3.06),
    "Q2_K": FileType("Q2_K", 3.35), "IQ2_M": FileType("IQ2_S", 2.7), "IQ2_XS": FileType("IQ2_XS", 2.31),
    "IQ2_XXS": FileType("IQ2_XXS", 2.06), "IQ1_M": FileType("IQ1_M", 1.75), "IQ1_S": FileType("IQ1_S", 1.56),
}  # fmt: skip
_DEFAULT_FILE_TYPE = "Q4_K_M"  # what Ollama pulls when a tag names no quantization
_FILE_TYPE_RE = re.compile(
    r"(?<![A-Za-z0-9])(" + "|".join(sorted(map(re.escape, FILE_TYPES), key=len, reverse=True)) + r")(?![A-Za-z0-9])",
    re.IGNORECASE,
)
_SIZE_TOLERANCE = 0.15  # "30b" for 30.5B; a stated size further off is another model of the family
_SIZE_RE = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)\s*([bm])(?![a-z])", re.IGNORECASE)


class Family(NamedTuple):
    """A published configuration: arch, blocks, width, heads, KV heads, head size, FFN, vocab, context."""

    arch: str
    n_layer: int
    n_embd: int
    n_head: int
    n_head_kv: int
    head_dim: int
    n_ff: int
    n_vocab: int
    context_length: int
    tied: bool = False
    sliding_window: int | None = None


_QWEN25_V, _LLAMA3_V, _QWEN3_V = 151936, 128256, 151936
FAMILIES: dict[str, dict[str, Family]] = {
    "qwen2.5": {
        "0.5": Family("qwen2", 24, 896, 14, 2, 64, 4864, _QWEN25_V, 32768, tied=True),
        "1.5": Family("qwen2", 28, 1536, 12, 2, 128, 8960, _QWEN25_V, 32768, tied=True),
        "3": Family("qwen2", 36, 2048, 16, 2, 128, 11008, _QWEN25_V, 32768, tied=True),
        "7": Family("qwen2", 28, 3584, 28, 4, 128, 18944, 152064, 32768),
        "14": Family("qwen2", 48, 5120, 40, 8, 128, 13824, 152064, 32768),
        "32": Family("qwen2", 64, 5120, 40, 8, 128, 27648, 152064, 32768),
        "72": Family("qwen2", 80, 8192, 64, 8, 128, 29568, 152064, 32768),
    },
    "qwen3": {
        "0.6": Family("qwen3", 28, 1024, 16, 8, 128, 3072, _QWEN3_V, 40960, tied=True),
        "4": Family("qwen3", 36, 2560, 32, 8, 128, 9728, _QWEN3_V, 40960, tied=True),
        "8": Family("qwen3", 36, 4096, 32, 8, 128, 12288, _QWEN3_V, 40960),
        "14": Family("qwen3", 40, 5120, 40, 8, 128, 17408, _QWEN3_V, 40960),
        "32": Family("qwen3", 64, 5120, 64, 8, 128, 25600, _QWEN3_V, 40960),
    },
    "llama3": {
        "1": Family("llama", 16, 2048, 32, 8, 64, 8192, _LLAMA3_V, 131072, tied=True),
        "3": Family("llama", 28, 3072, 24, 8, 128, 8192, _LLAMA3_V, 131072, tied=True),
        "8": Family("llama", 32, 4096, 32, 8, 128, 14336, _LLAMA3_V, 131072),
        "70": Family("llama", 80, 8192, 64, 8, 128, 28672, _LLAMA3_V, 131072),
    },
    "gemma2": {
        "2": Family("gemma2", 26, 2304, 8, 4, 256, 9216, 256000, 8192, tied=True, sliding_window=4096),
        "9": Family("gemma2", 42, 3584, 16, 8, 256, 14336, 256000, 8192, tied=True, sliding_window=4096),
        "27": Family("gemma2", 46, 4608, 32, 16, 128, 36864, 256000, 8192, tied=True, sliding_window=4096),
    },
    "mistral": {"7": Family("llama", 32, 4096, 32, 8, 128, 14336, 32768, 32768)},
    "mistral-nemo": {"12": Family("llama", 40, 5120, 32, 8, 128, 14336, 131072, 131072)},
    "phi3": {"3.8": Family("phi3", 32, 3072, 32, 32, 96, 8192, 32064, 131072)},
}
_FAMILY_RE = (
    ("mistral-nemo", re.compile(r"mistral[-_ ]?nemo", re.IGNORECASE)),
    ("qwen2.5", re.compile(r"qwen[-_ ]?2[._]?5", re.IGNORECASE)),
    ("qwen3", re.compile(r"qwen[-_ ]?3", re.IGNORECASE)),
    ("llama3", re.compile(r"llama[-_ ]?3", re.IGNORECASE)),
    ("gemma2", re.compile(r"gemma[-_ ]?2", re.IGNORECASE)),
    ("mistral", re.compile(r"mistral", re.IGNORECASE)),
    ("phi3", re.compile(r"phi[-_ ]?3", re.IGNORECASE)),
)
_ARCH_FAMILY = {"qwen2": "qwen2.5", "qwen3": "qwen3", "llama": "llama3", "gemma2": "gemma2", "phi3": "phi3"}


def parse_file_type(text: str | None) -> str | None:
    """The llama.cpp file type named in `text` (`...-Q4_K_M.gguf`, `q8_0`), upper-cased, or None."""
    match = _FILE_TYPE_RE.search(text or "")
    return match.group(1).upper() if match else None


def parameter_count(family: Family) -> int:
    """The weights of a dense configuration: attention, gated FFN and the embeddings (norms left out)."""
    q, kv = family.n_head * family.head_dim, family.n_head_kv * family.head_dim
    per_layer = family.n_embd * (2 * q + 2 * kv) + 3 * family.n_embd * family.n_ff
    embeddings = family.n_vocab * family.n_embd * (1 if family.tied else 2)
    return family.n_layer * per_layer + embeddings


def _nearest(params: float, family_name: str | None) -> Family:
    pool = FAMILIES[family_name].values() if family_name else [f for fam in FAMILIES.values() for f in fam.values()]
    return min(pool, key=lambda f: abs(parameter_count(f) - params))


def shape_from_counts(
    name: str,
    *,
    params: float,
    file_type: str | None,
    family_name: str | None = None,
    family: Family | MoeConfig | None = None,
    source: Source = "name",
) -> ModelShape:
    """An estimated shape for `params` parameters quantized as `file_type` (None: Q4_K_M).

    Args:
        family: the configuration, when known (a node reported it); else the nearest of `family_name`'s
            (a MoE architecture's name: the nearest released configuration of it, `guess_moe`).
    """
    ftype = FILE_TYPES.get((file_type or _DEFAULT_FILE_TYPE).upper(), FILE_TYPES[_DEFAULT_FILE_TYPE])
    if isinstance(family, MoeConfig) or (family is None and family_name in MOE_ARCHS):
        config = family if isinstance(family, MoeConfig) else nearest_moe(params, family_name)
        return _moe(name, config, file_type, params, source)
    family = family or _nearest(params, family_name)
    bits = ftype.bits_per_weight * params / parameter_count(family)
    tensors = synthesize_tensors(
        n_layer=family.n_layer,
        n_embd=family.n_embd,
        n_head=family.n_head,
        n_head_kv=family.n_head_kv,
        head_dim=family.head_dim,
        n_ff=family.n_ff,
        n_vocab=family.n_vocab,
        weight_type=ftype.weight_type,
        bits_per_weight=bits,
        tied_output=family.tied,
    )
    swa = [family.sliding_window is not None and il % 2 == 0 for il in range(family.n_layer)]
    return ModelShape(
        name=name,
        arch=family.arch,
        source=source,
        estimated=True,
        n_layer=family.n_layer,
        n_embd=family.n_embd,
        n_head=family.n_head,
        n_head_kv=[family.n_head_kv] * family.n_layer,
        head_dim_k=family.head_dim,
        head_dim_v=family.head_dim,
        n_ff=family.n_ff,
        n_vocab=family.n_vocab,
        context_length=family.context_length,
        sliding_window=family.sliding_window,
        swa_layers=swa,
        file_type=(file_type or _DEFAULT_FILE_TYPE).upper(),
        parameter_count=int(params),
        tensors=tensors,
    )


def _moe(name: str, config: MoeConfig, file_type: str | None, params: float | None, source: Source) -> ModelShape:
    ftype = FILE_TYPES.get((file_type or _DEFAULT_FILE_TYPE).upper(), FILE_TYPES[_DEFAULT_FILE_TYPE])
    return moe_shape(
        name, config, weight_type=ftype.weight_type, bits_per_weight=ftype.bits_per_weight,
        named_type=file_type is not None, params=params, source=source,
    )  # fmt: skip


def family_of(text: str) -> str | None:
    """The known family a model name or architecture belongs to, if any (a MoE one: its architecture)."""
    if text in _ARCH_FAMILY or text in MOE_ARCHS:
        return _ARCH_FAMILY.get(text, text)
    if (moe := moe_config_of(text)) is not None:
        return moe.arch
    return next((family for family, pattern in _FAMILY_RE if pattern.search(text)), None)


def guess_shape(name: str) -> ModelShape:
    """An estimated shape from a model name such as "qwen2.5-14b Q4_K_M", "llama3.1:8b" or "qwen3:30b-a3b".

    A released mixture of experts (`guess_moe`) gets its configuration, experts as llama.cpp names them.

    Raises:
        UnsupportedModel: The name carries no parameter count (like "14b") to go by, or names a
            mixture of experts ("8x7b"), whose size a name does not tell.
    """
    if (moe := moe_config_of(name)) is not None:
        return _moe(name, moe, parse_file_type(name), _stated_size(name, moe), "name")
    if re.search(r"\d+x\d+(\.\d+)?b", name, re.IGNORECASE):
        raise UnsupportedModel(f"{name!r}: a mixture of experts cannot be sized from its name; give its GGUF")
    size = _SIZE_RE.search(name.replace(":", " "))
    if size is None:
        raise UnsupportedModel(f"{name!r}: no parameter count (like '14b') in the name; give its GGUF")
    params = float(size.group(1)) * (1e9 if size.group(2).lower() == "b" else 1e6)
    family = family_of(name)
    if family and size.group(1) in FAMILIES[family]:
        params = parameter_count(FAMILIES[family][size.group(1)])
    return shape_from_counts(name, params=params, file_type=parse_file_type(name), family_name=family)


def _stated_size(name: str, config: MoeConfig) -> float | None:
    """The name's total size when it is not the configuration's own (an unreleased size: bytes scaled)."""
    size = _SIZE_RE.search(name.replace(":", " ").replace("-", " "))
    if size is None or size.group(2).lower() != "b":
        return None
    stated, own = float(size.group(1)) * 1e9, moe_parameter_count(config)
    return stated if abs(stated - own) > _SIZE_TOLERANCE * own else None


def shape_of(model: str) -> ModelShape:
    """A GGUF file's shape when `model` is a file (or ends in .gguf), else an estimate from the name.

    Raises:
        ModelFileError: A .gguf path that is missing or unreadable.
        UnsupportedModel: The file's architecture is not modelled, or the name cannot be sized.
    """
    # os.path.exists, not Path.exists: a name too long to be a path is a name, not an OSError.
    if model.lower().endswith(".gguf") or os.path.exists(model):
        return read_gguf(model)
    return guess_shape(model)
