"""How a model is run: llama-server's memory-relevant flags, and the sizes llama.cpp derives from them.

`RunSettings` mirrors the flags (`-c`, `-np`, `-ctk/-ctv`, `-fa`, `-ngl`, `-ub`, `-b`, `--kv-unified`,
`--n-cpu-moe`, `--cpu-moe`, `-ot`, `-ts`, `-sm`, `-mg`) plus the build (CUDA, CPU-only, or CPU with
`--rpc` servers as devices), the devices llama.cpp sees (their memory sets the default tensor split)
and the per-GPU overhead that no llama.cpp log shows. `Context`
is what llama.cpp makes of them in `llama_context`'s constructor and the KV cache: the context
padded to 256 cells, split into one stream per parallel sequence, the micro-batch, and the
smaller cache of sliding-window layers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from homelab.vram.sizes import (
    DEFAULT_GPU_OVERHEAD_BYTES,
    MAX_CONTEXT,
    MAX_GPU_LAYERS,
    MAX_GPU_OVERHEAD_BYTES,
    MAX_PARALLEL,
)

if TYPE_CHECKING:
    from homelab.vram.shape import ModelShape

__all__ = [
    "MAX_DEVICES",
    "Backend",
    "CacheType",
    "Context",
    "RunSettings",
    "SplitMode",
    "TensorOverride",
    "TensorOverrides",
    "check_override",
    "context_for",
    "moe_overrides",
]

_CELL_PAD = 256  # llama.cpp pads the context and each stream to 256 cells

CacheType = Literal["f32", "f16", "bf16", "q8_0", "q5_1", "q5_0", "q4_1", "q4_0", "iq4_nl"]
Backend = Literal["cuda", "cpu", "rpc"]
SplitMode = Literal["layer", "row", "none"]
MAX_DEVICES = 16  # GGML_CUDA_MAX_DEVICES (ggml-cuda.h), llama_max_devices() on a CUDA build
_MAX_PATTERN = 256  # characters of one -ot pattern: tensor names are short, and so are useful regexes
_MAX_OVERRIDES = 256
# Python re and llama.cpp's std::regex (ECMAScript) agree on the plain syntax -ot patterns use;
# Python-only forms (named groups, inline flags, lookbehind, \A, \Z) would make llama.cpp throw
# regex_error at start-up (llama-model-loader.cpp:1238), so they are refused.
_PYTHON_ONLY_ESCAPES = "AZz"
_ECMASCRIPT_GROUPS = ":=!"
_DEVICE = re.compile(r"CPU|CUDA\d{1,2}|RPC\d{1,2}(\[[^\]\s]{1,200}\])?")


def _python_only_at(pattern: str) -> int | None:
    """Where the pattern uses syntax Python's re has and ECMAScript's lacks, or None."""
    at = 0
    while at < len(pattern):
        char, nxt = pattern[at], pattern[at + 1 : at + 2]
        if char == "\\" and nxt in _PYTHON_ONLY_ESCAPES and nxt:
            return at
        if char == "(" and nxt == "?" and pattern[at + 2 : at + 3] not in _ECMASCRIPT_GROUPS:
            return at
        at += 2 if char == "\\" else 1
    return None


def check_override(pattern: str, device: str) -> tuple[str, str]:
    """One `-ot PATTERN=DEVICE` pair, checked as llama.cpp would take it.

    Raises:
        ValueError: The pattern is empty, too long, not a regex both Python and std::regex read,
            or the device is no buffer type llama.cpp names (CPU, CUDA0, RPC0[host:port]).
    """
    if not pattern or len(pattern) > _MAX_PATTERN:
        raise ValueError(f"pattern {pattern[:40]!r}: needs 1 to {_MAX_PATTERN} characters")
    if "," in pattern or "=" in pattern:
        raise ValueError(f"pattern {pattern!r}: llama.cpp splits -ot at ',' and '='; neither may be in a pattern")
    if (at := _python_only_at(pattern)) is not None:
        raise ValueError(f"pattern {pattern!r}: {pattern[at : at + 3]!r} at position {at} is not std::regex syntax")
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"pattern {pattern!r}: not a regular expression ({exc})") from None
    if not _DEVICE.fullmatch(device):
        raise ValueError(f"device {device[:40]!r}: not a buffer type (CPU, CUDA0, RPC0[host:port])")
    return pattern, device


def _overrides(value: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
    if len(value) > _MAX_OVERRIDES:
        raise ValueError(f"has {len(value)} overrides; at most {_MAX_OVERRIDES}")
    return tuple(check_override(pattern, device) for pattern, device in value)


TensorOverride = tuple[str, str]
"""(`-ot` pattern, buffer type): tensors whose name the pattern matches go there; first match wins."""
TensorOverrides = Annotated[tuple[TensorOverride, ...], AfterValidator(_overrides)]
_EXPERTS = r"\.ffn_(up|down|gate|gate_up)_(ch|)exps"  # LLM_FFN_EXPS_REGEX, common/common.h:1224


def moe_overrides(cpu_moe: bool, n_cpu_moe: int) -> list[TensorOverride]:
    """The overrides `--cpu-moe` and `--n-cpu-moe N` add (common/common.h:1228-1242)."""
    every = [(_EXPERTS, "CPU")] if cpu_moe else []
    return every + [(rf"blk\.{i}{_EXPERTS}", "CPU") for i in range(n_cpu_moe)]


class RunSettings(BaseModel):
    """One llama-server configuration, as far as memory is concerned."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    ctx_size: int | None = Field(None, gt=0, le=MAX_CONTEXT, description="-c; None: the model's training context")
    parallel: int = Field(1, gt=0, le=MAX_PARALLEL, description="-np: parallel sequences (slots)")
    cache_type_k: CacheType = "f16"
    cache_type_v: CacheType = "f16"
    flash_attn: bool = False
    n_gpu_layers: int = Field(0, ge=-1, le=MAX_GPU_LAYERS, description="-ngl; the output layer counts as one; -1: all")
    n_ubatch: int = Field(512, gt=0, le=MAX_CONTEXT)
    n_batch: int = Field(2048, gt=0, le=MAX_CONTEXT)
    kv_unified: bool = False
    backend: Backend = Field(
        "cuda", description="the llama.cpp build: CUDA, CPU only (no GPU use), or CPU with --rpc servers as devices"
    )
    gpu_overhead_bytes: int = Field(
        DEFAULT_GPU_OVERHEAD_BYTES, ge=0, le=MAX_GPU_OVERHEAD_BYTES, description="per GPU used, per process"
    )
    n_cpu_moe: int = Field(
        0, ge=0, le=MAX_GPU_LAYERS, description="--n-cpu-moe: the first N layers' experts on the CPU"
    )
    cpu_moe: bool = Field(False, description="--cpu-moe: every layer's experts on the CPU")
    override_tensor: TensorOverrides = Field(
        (), description="-ot PATTERN=DEVICE pairs, in command-line order (applied before the two flags above)"
    )
    tensor_split: tuple[float, ...] | None = Field(
        None, description="-ts: share of the layers per device; None: by each device's memory, as llama.cpp splits"
    )
    split_mode: SplitMode = Field("layer", description="-sm: layers per device, rows of each matrix, or one device")
    main_gpu: int = Field(0, ge=0, lt=MAX_DEVICES, description="-mg: the one device of -sm none")
    device_memory_bytes: tuple[int, ...] = Field(
        (), description="each device's memory in llama.cpp's order; sets the device count and the default split"
    )

    @model_validator(mode="after")
    def _llama_cpp_rules(self) -> RunSettings:
        if self.cache_type_v not in ("f32", "f16", "bf16") and not self.flash_attn:
            raise ValueError(f"a quantized V cache ({self.cache_type_v}) needs flash attention, as in llama.cpp")
        if len(self.device_memory_bytes) > MAX_DEVICES or any(m <= 0 for m in self.device_memory_bytes):
            raise ValueError(f"device_memory_bytes: 1 to {MAX_DEVICES} positive sizes")
        if self.tensor_split is not None:
            split = self.tensor_split
            # arg.cpp:2834-2850: fewer proportions than devices leave the rest at 0; llama-model.cpp:1578
            # reads one per device and ignores the rest; only llama_max_devices() or more is an error.
            if not split or len(split) >= MAX_DEVICES or not all(0 <= x < float("inf") for x in split):
                raise ValueError(f"tensor_split {list(split)}: finite proportions >= 0, fewer than {MAX_DEVICES}")
        if self.split_mode != "layer" and self.main_gpu >= self.n_devices:  # src/llama.cpp:289-296
            raise ValueError(f"main_gpu {self.main_gpu}: there are {self.n_devices} devices (llama.cpp: invalid value)")
        return self

    @property
    def n_devices(self) -> int:
        """Devices llama.cpp may use: as many as have a memory size, else one per -ts proportion, else one."""
        if self.device_memory_bytes:
            return len(self.device_memory_bytes)
        return len(self.tensor_split) if self.tensor_split else 1


@dataclass(frozen=True)
class Context:
    """The sizes llama.cpp derives from the settings for one model."""

    n_ctx: int  # total cells
    n_stream: int  # KV streams: one per sequence unless the cache is unified
    n_ctx_seq: int  # cells per stream
    swa_cells: int  # cells per stream of a sliding-window layer
    n_ubatch: int  # tokens of the worst-case graph that sizes the compute buffers
    n_outputs: int  # logits rows reserved (llama-server: one per sequence)
    n_gpu_layers: int  # clamped to 0..n_layer+1 (0 on a CPU-only build)

    def cells(self, swa: bool) -> int:
        """Cells per stream of a layer."""
        return self.swa_cells if swa else self.n_ctx_seq


def _pad(n: int) -> int:
    return -(-n // _CELL_PAD) * _CELL_PAD


def context_for(shape: ModelShape, settings: RunSettings) -> Context:
    """llama.cpp's context arithmetic (llama-context.cpp, llama-kv-cache-iswa.cpp) for this model."""
    n_ctx = _pad(settings.ctx_size or shape.context_length)
    n_stream = 1 if settings.kv_unified else settings.parallel
    n_ctx_seq = n_ctx if settings.kv_unified else _pad(n_ctx // n_stream)
    n_ctx = n_ctx_seq * (1 if settings.kv_unified else n_stream)
    n_batch = min(n_ctx, settings.n_batch)
    n_ubatch = min(n_batch, settings.n_ubatch)
    swa_cells = n_ctx_seq
    if shape.sliding_window:
        seqs = settings.parallel if settings.kv_unified else 1
        swa_cells = _pad(min(n_ctx_seq, shape.sliding_window * seqs + n_ubatch))
    layers = shape.n_layer + 1
    ngl = layers if settings.n_gpu_layers < 0 else min(settings.n_gpu_layers, layers)
    if settings.backend == "cpu":
        ngl = 0
    return Context(n_ctx, n_stream, n_ctx_seq, swa_cells, n_ubatch, settings.parallel, ngl)
