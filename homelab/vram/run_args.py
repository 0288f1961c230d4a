"""llama-server's memory flags read from a container's `args` or `command`, for the VRAM plan.

A container section may carry the flags that change where memory goes (`--n-cpu-moe 20`,
`-ot exps=CPU`, `-ts 3,1`, `-fa on`, `-ctk q8_0`); the plan has to run the model the way the
container will. `parse_run_args` reads them as llama.cpp 11434's parser does (common/arg.cpp):
a flag's value is the next word (`--flag=value`, which llama.cpp refuses, is read too, as
homelab reads `-c`), `--long_name` equals `--long-name` (arg.cpp:826-828), a repeated flag keeps
its last value except `-ot`, `--cpu-moe` and `--n-cpu-moe`, which add overrides each time
(arg.cpp:2757-2777). Malformed values are errors naming the flag and the value.

`-c`, `-ngl` and `-np` are the container's own fields (homelab.inventory.container.PLANNED_FLAGS).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from homelab.vram.settings import (
    CacheType,
    SplitMode,
    TensorOverride,
    TensorOverrides,
    check_override,
    moe_overrides,
)
from homelab.vram.sizes import MAX_CONTEXT, MAX_GPU_LAYERS

__all__ = ["RunArgs", "parse_run_args"]

_TRUE = ("on", "enabled", "true", "1")  # common_arg_utils::is_truthy, arg.cpp:1337-1347
_FALSE = ("off", "disabled", "false", "0")
_AUTO = ("auto", "-1")
_SPLIT = re.compile(r"[,/]+")  # -ts splits at ',' and '/' (arg.cpp:2838-2840)
_MAX_WORDS = 64


class RunArgs(BaseModel):
    """The memory flags a command line gives; None: not given (the plan's policy decides)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    n_cpu_moe: int | None = Field(None, ge=0, le=MAX_GPU_LAYERS)
    cpu_moe: bool | None = None
    override_tensor: TensorOverrides | None = None
    tensor_split: tuple[float, ...] | None = None
    split_mode: SplitMode | None = None
    main_gpu: int | None = Field(None, ge=0)
    flash_attn: bool | None = Field(None, description="-fa on/off; auto (llama.cpp's default) leaves it to the plan")
    cache_type_k: CacheType | None = None
    cache_type_v: CacheType | None = None
    n_ubatch: int | None = Field(None, gt=0, le=MAX_CONTEXT)
    n_batch: int | None = Field(None, gt=0, le=MAX_CONTEXT)
    kv_unified: bool | None = None

    def updates(self) -> dict[str, Any]:
        """The given flags as RunSettings fields."""
        return {name: value for name, value in self if value is not None}


def _number(flag: str, text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{flag} needs a whole number, got {text!r}") from None


def _flash(flag: str, text: str) -> bool | None:
    if text in _TRUE or text in _FALSE:
        return text in _TRUE
    if text in _AUTO:
        return None
    raise ValueError(f"{flag} needs on, off or auto, got {text!r}")


def _split(flag: str, text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(part) for part in _SPLIT.split(text))
    except ValueError:
        raise ValueError(f"{flag} needs proportions like 3,1, got {text!r}") from None
    if not all(0 <= v < float("inf") for v in values):
        raise ValueError(f"{flag} needs finite proportions >= 0, got {text!r}")
    return values


def _split_mode(flag: str, text: str) -> str:
    if text == "tensor":
        raise ValueError(f"{flag} tensor (experimental tensor parallelism) is not planned; use layer or none")
    if text not in get_args(SplitMode):
        raise ValueError(f"{flag} needs none, layer or row, got {text!r}")
    return text


def _cache(flag: str, text: str) -> str:
    if text not in get_args(CacheType):
        raise ValueError(f"{flag}: unsupported cache type {text!r} (one of {', '.join(get_args(CacheType))})")
    return text


def _overrides(flag: str, text: str) -> list[TensorOverride]:
    out = []
    for item in text.split(","):  # parse_tensor_buffer_overrides, arg.cpp:252-283
        pattern, equals, device = item.partition("=")
        if not equals:
            raise ValueError(f"{flag} needs PATTERN=DEVICE pairs, got {item!r}")
        out.append(check_override(pattern, device))
    return out


_VALUED: dict[str, tuple[str, Callable[[str, str], Any]]] = {
    "-ncmoe": ("n_cpu_moe", _number),
    "--n-cpu-moe": ("n_cpu_moe", _number),
    "-ts": ("tensor_split", _split),
    "--tensor-split": ("tensor_split", _split),
    "-sm": ("split_mode", _split_mode),
    "--split-mode": ("split_mode", _split_mode),
    "-mg": ("main_gpu", _number),
    "--main-gpu": ("main_gpu", _number),
    "-fa": ("flash_attn", _flash),
    "--flash-attn": ("flash_attn", _flash),
    "-ctk": ("cache_type_k", _cache),
    "--cache-type-k": ("cache_type_k", _cache),
    "-ctv": ("cache_type_v", _cache),
    "--cache-type-v": ("cache_type_v", _cache),
    "-ub": ("n_ubatch", _number),
    "--ubatch-size": ("n_ubatch", _number),
    "-b": ("n_batch", _number),
    "--batch-size": ("n_batch", _number),
    "-ot": ("override_tensor", _overrides),
    "--override-tensor": ("override_tensor", _overrides),
}
_SWITCHES = {
    "-cmoe": ("cpu_moe", True),
    "--cpu-moe": ("cpu_moe", True),
    "-kvu": ("kv_unified", True),
    "--kv-unified": ("kv_unified", True),
    "-no-kvu": ("kv_unified", False),
    "--no-kv-unified": ("kv_unified", False),
}


def _name(word: str) -> tuple[str, str | None]:
    name, equals, inline = word.partition("=")
    if name.startswith("--"):
        name = name.replace("_", "-")
    return name, (inline if equals else None)


def parse_run_args(words: list[str]) -> RunArgs:
    """The memory flags of a llama-server command line (see the module docstring).

    Raises:
        ValueError: A flag lacks its value or has a malformed one; the message names both.
    """
    if len(words) > _MAX_WORDS:
        raise ValueError(f"has {len(words)} words; at most {_MAX_WORDS}")
    found: dict[str, Any] = {}
    overrides: list[TensorOverride] = []
    explicit = 0  # overrides up to the last -ot: the flags' own patterns before it keep their place
    at = 0
    while at < len(words):
        name, inline = _name(words[at])
        at += 1
        if name in _SWITCHES:
            field, value = _SWITCHES[name]
            found[field] = value
            if field == "cpu_moe":
                overrides += moe_overrides(True, 0)
            continue
        if name not in _VALUED:
            continue
        if inline is None:
            if at >= len(words):
                raise ValueError(f"{name} needs a value")
            inline, at = words[at], at + 1
        field, read = _VALUED[name]
        value = read(name, inline)
        if field == "override_tensor":
            overrides += value
            explicit = len(overrides)
        elif field == "n_cpu_moe":
            overrides += moe_overrides(False, value)
            found[field] = max(found.get(field, 0), value)
        else:
            found[field] = value
    if explicit:
        found["override_tensor"] = tuple(overrides[:explicit])
    try:
        return RunArgs(**found)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ValueError(f"{first['loc'][0]}: {first['msg']}, got {first['input']!r}") from None
