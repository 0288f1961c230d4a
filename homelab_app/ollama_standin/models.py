"""What the stand-in knows about a model, and Ollama's rules for names and keep-alive.

A `ModelSpec` is either given (the models the stand-in pretends to have pulled) or made by
`/api/create` from an uploaded GGUF, when it also records the blob, the parameters, the
template and the license it was created with, which `/api/show` reports back as Ollama does.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from homelab.go_syntax import go_duration_s

__all__ = [
    "DEFAULT_KEEP_ALIVE_S",
    "DEFAULT_MODELS",
    "ModelSpec",
    "full_name",
    "parse_keep_alive",
]

DEFAULT_KEEP_ALIVE_S = 300.0  # envconfig.KeepAlive(): 5 minutes (envconfig/config.go:104 at v0.12.11)
_GO_TYPES = {bool: "bool", list: "[]interface {}", dict: "map[string]interface {}"}


def full_name(name: str) -> str:
    """Ollama's canonical name: a tag is always present (`llama3.2` is `llama3.2:latest`)."""
    return name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"


class ModelSpec(BaseModel):
    """A model the stand-in has: pretended pulled, or created from an uploaded GGUF."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, description="an Ollama tag; ':latest' is added when none is given")
    size: int = Field(gt=0, description="bytes on disk, also the bytes in memory when loaded")
    family: str = "llama"
    parameter_size: str = Field("1B", description="as Ollama prints it: '7.6B', '494.03M'")
    quantization_level: str = "Q4_K_M"
    context_length: int = Field(4096, gt=0)
    size_vram: int | None = Field(None, ge=0, description="bytes on the GPU when loaded; default: the rule in `vram`")
    capabilities: tuple[str, ...] = ("completion",)
    blob: str | None = Field(None, description="created models: 'sha256:...' of the GGUF they were made from")
    block_count: int | None = Field(None, ge=0, description="created models: transformer blocks in the GGUF")
    gguf_keys: dict[str, Any] = Field(
        default_factory=dict,
        description="pulled models: more keys of the GGUF they stand for (`qwen2.embedding_length`, per-layer "
        "arrays), shown in /api/show's model_info",
    )
    n_vocab: int | None = Field(
        None, gt=0, le=1 << 20, description="pulled models: the vocabulary, shown as that many placeholder tokens"
    )
    parameters: dict[str, Any] = Field(default_factory=dict, description="created with: num_ctx, num_gpu, ...")
    template: str | None = None
    license: tuple[str, ...] = Field(
        (), description="created with: `license` texts; /api/show joins them with newlines"
    )

    @property
    def full_name(self) -> str:
        return full_name(self.name)

    @property
    def digest(self) -> str:
        """The manifest's digest: it changes whenever what the model is made of changes."""
        made_of = [self.full_name, self.blob, self.parameters, self.template, list(self.license)]
        return hashlib.sha256(json.dumps(made_of, sort_keys=True).encode()).hexdigest()

    def details(self) -> dict[str, Any]:
        return {
            "parent_model": "",
            "format": "gguf",
            "family": self.family,
            "families": [self.family],
            "parameter_size": self.parameter_size,
            "quantization_level": self.quantization_level,
        }

    def parameter_count(self) -> int:
        match = re.fullmatch(r"([\d.]+)\s*([KMBT]?)", self.parameter_size.strip().upper())
        if not match:
            return 0
        scale = {"": 1, "K": 10**3, "M": 10**6, "B": 10**9, "T": 10**12}[match.group(2)]
        return int(float(match.group(1)) * scale)

    def vram(self, override: int | None = None) -> int:
        """`size_vram` in `/api/ps`: the stand-in has no GPU, so this is a documented rule.

        A figure given to the stand-in (`override`, then `size_vram`) wins. Otherwise the model's
        bytes are spread evenly over its layers (the blocks plus the output layer): `num_gpu`
        unset or covering every layer puts all of `size` on the GPU, `num_gpu: 0` none, and
        `num_gpu: n` that share, `size * n // (blocks + 1)`.
        """
        if override is not None:
            return override
        if self.size_vram is not None:
            return self.size_vram
        num_gpu = self.parameters.get("num_gpu")
        layers = None if self.block_count is None else self.block_count + 1
        if num_gpu is None or layers is None or num_gpu >= layers:
            return self.size
        return self.size * max(int(num_gpu), 0) // layers

    def context(self) -> int:
        """The context a loaded model runs with: `num_ctx` when created with one."""
        return int(self.parameters.get("num_ctx", self.context_length))


DEFAULT_MODELS: tuple[ModelSpec, ...] = (
    ModelSpec(name="qwen2.5:0.5b", size=397_821_319, family="qwen2", parameter_size="494.03M", context_length=32768),
    ModelSpec(name="llama3.2:1b", size=1_321_098_329, family="llama", parameter_size="1.2B", context_length=131072),
    ModelSpec(
        name="nomic-embed-text",
        size=274_302_450,
        family="nomic-bert",
        parameter_size="137M",
        quantization_level="F16",
        context_length=2048,
        capabilities=("embedding",),
    ),
)


def parse_keep_alive(value: Any) -> float | None:
    """Seconds from a request's `keep_alive`, as Ollama's `api.Duration` reads it; None when absent.

    A JSON number is seconds; a string is a Go duration, which needs a unit (`"300"` is an
    error); negative means forever (infinity). Ollama api/types.go `Duration.UnmarshalJSON`,
    line 1243 at v0.33.0-rc2 (line 1024 at v0.12.11).

    Raises:
        ValueError: with Ollama's message, which it answers with 400.
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"Unsupported type: '{_GO_TYPES.get(type(value), type(value).__name__)}'")
    seconds = float(value) if isinstance(value, int | float) else go_duration_s(value)
    return float("inf") if seconds < 0 else seconds
