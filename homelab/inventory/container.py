"""The cluster file's container section: the llama.cpp server container behind a `llamacpp` endpoint.

Its command line words are bounded (count, length, no NUL), the flags homelab writes itself are
refused in `args`, and a `-c`/`-ngl`/`-np` given in the words fills the field the VRAM plan reads.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, StrictInt, StringConstraints, model_validator

from homelab.frozen import Frozen
from homelab.inventory.fields import (
    ContextTokens,
    Layers,
    Name,
    Port,
    StrictPositiveInt,
    file_name_in,
    name_from_source,
)
from homelab.sources.spec import SourceSpec
from homelab.vram.run_args import parse_run_args

__all__ = ["OWNED_FLAGS", "PLANNED_FLAGS", "Container", "RestartPolicy", "flag_values"]

_plain_file_name = file_name_in("inside the volume")
RestartPolicy = Literal["no", "unless-stopped", "always", "on-failure"]
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
_MAX_WORDS = 64
_MAX_WORD_CHARS = 1024


def _no_nul(word: str) -> str:
    # The engine passes argv and entrypoint to execve, which ends a C string at the first NUL.
    at = word.find("\x00")
    if at >= 0:
        raise ValueError(f"holds a NUL character at position {at}")
    return word


Word = Annotated[str, StringConstraints(min_length=1, max_length=_MAX_WORD_CHARS), AfterValidator(_no_nul)]
Words = Annotated[list[Word], Field(max_length=_MAX_WORDS)]
# llama-server options homelab writes from the container section; `args` may not repeat them.
OWNED_FLAGS = {
    "-m": "model_file",
    "--model": "model_file",
    "--host": "the endpoint URL",
    "--port": "container_port",
    "--alias": "the endpoint's model name",
    "-a": "the endpoint's model name",
}
# Options the VRAM plan reads, by field: a value in `args` or `command` is the one the plan uses.
PLANNED_FLAGS = {
    "ctx_size": ("-c", "--ctx-size"),
    "gpu_layers": ("-ngl", "--gpu-layers", "--n-gpu-layers"),
    "parallel": ("-np", "--parallel"),
}


def _env(value: dict[str, str]) -> dict[str, str]:
    if len(value) > _MAX_WORDS:
        raise ValueError(f"has {len(value)} variables; at most {_MAX_WORDS}")
    for name, text in value.items():
        if not _ENV_NAME.fullmatch(name):
            raise ValueError(f"{name[:80]!r} is not a variable name (letters, digits, '_'; not starting with a digit)")
        if len(text) > _MAX_WORD_CHARS or "\x00" in text:
            raise ValueError(f"{name}: the value is longer than {_MAX_WORD_CHARS} characters or holds a NUL")
    return value


def flag_values(words: list[str], flags: tuple[str, ...]) -> list[str]:
    """Every value given to one of `flags` in a llama-server command line (`-c 8192`, `--ctx-size=8192`)."""
    values = []
    for index, word in enumerate(words):
        name, equals, inline = word.partition("=")
        if name in flags:
            if equals:
                values.append(inline)
            elif index + 1 < len(words):
                values.append(words[index + 1])
            else:
                values.append("")
    return values


class Container(Frozen):
    """A llama.cpp server container that backs a `llamacpp` endpoint (host port from its URL).

    By default homelab writes llama-server's command line (`-m`, `--host`, `--port`, `-c`, `-np`,
    `-ngl`, `--alias`) and `args` adds to it. An image with its own start script (say, one that
    reads `MODEL_PATH` and listens on 8000) takes `command: []` (the image's own), `env` and
    `container_port`. A `-c`, `-ngl` or `-np` in `args` or `command` is the value the VRAM plan
    uses; giving it there and in `ctx_size`/`gpu_layers`/`parallel` with another value is an error.
    """

    image: str = Field(min_length=1, max_length=_MAX_WORD_CHARS)
    model_file: Annotated[str, Field(min_length=1), AfterValidator(_plain_file_name)] = Field(
        description="the file's name in the volume; unset: the source's file name"
    )
    source: SourceSpec | None = Field(None, description="where the file comes from: a path, https:// or hf://")
    volume: Name = "models"
    ctx_size: ContextTokens = 4096
    gpu_layers: Layers | None = Field(None, description="layers on the GPU; unset: from the VRAM plan")
    parallel: StrictPositiveInt = Field(1, le=256)
    start_order: StrictInt = Field(0, ge=-1000, le=1000, description="lower starts first; ties keep file order")
    container_port: Port = Field(8080, description="where the server listens inside the container")
    env: Annotated[dict[str, str], AfterValidator(_env)] = Field(
        default_factory=dict, description="environment of the container (visible to `docker inspect`: no secrets)"
    )
    args: Words = Field(default_factory=list, description="extra llama-server options, after homelab's own")
    command: Words | None = Field(
        None, description="replaces homelab's llama-server arguments; [] keeps the image's own command"
    )
    entrypoint: Words | None = Field(None, description="replaces the image's entrypoint")
    restart_policy: RestartPolicy | None = Field(
        None,
        description="the engine's restart policy; unset: 'no' on a node with GPUs (homelab starts them one "
        "at a time after a reboot), 'unless-stopped' elsewhere",
    )
    gpus: Annotated[list[Annotated[StrictInt, Field(ge=0, le=255)]], Field(min_length=1, max_length=64)] | None = Field(
        None, description="CUDA indexes of the node's GPUs the container gets; unset: all of them"
    )

    @model_validator(mode="before")
    @classmethod
    def _file_from_source(cls, data: object) -> object:
        return name_from_source(data, "model_file") if isinstance(data, dict) else data

    @model_validator(mode="after")
    def _split_by_name(self) -> Container:
        # llama.cpp opens a split's other parts by name beside the first (llama_split_prefix).
        if self.source is not None and len(parts := self.source.part_names()) > 1 and self.model_file != parts[0]:
            raise ValueError(f"model_file must be {parts[0]!r}: llama.cpp finds a split's parts by their names")
        return self

    @model_validator(mode="before")
    @classmethod
    def _planned_from_words(cls, data: object) -> object:
        """A `-c`/`-ngl`/`-np` in the words fills its field, or conflicts with the field's own value."""
        if not isinstance(data, dict):
            return data
        words = data.get("command") if data.get("command") is not None else data.get("args")
        if not isinstance(words, list) or len(words) > _MAX_WORDS or not all(isinstance(w, str) for w in words):
            return data  # the schema reports it, on the field's own line
        if data.get("command") is not None and data.get("args"):
            raise ValueError("give args (added to homelab's command line) or command (replacing it), not both")
        if data.get("command") is None:
            for word in words:
                if (owner := OWNED_FLAGS.get(word.partition("=")[0])) is not None:
                    raise ValueError(f"args: {word.partition('=')[0]} is set by homelab from {owner}; remove it")
        data = dict(data)
        for field, flags in PLANNED_FLAGS.items():
            values = set(flag_values(words, flags))
            if not values:
                continue
            where = "command" if data.get("command") is not None else "args"
            if len(values) > 1:
                raise ValueError(f"{where} gives {flags[0]} more than once with different values: {sorted(values)}")
            (text,) = values
            try:
                number = int(text)
            except ValueError:
                raise ValueError(f"{where}: {flags[0]} needs a whole number, got {text!r}") from None
            if field in data and data[field] != number:
                raise ValueError(f"{where} sets {flags[0]} {number} but {field} is {data[field]!r}; give it once")
            data[field] = number
        try:
            parse_run_args(words)  # the memory flags the VRAM plan reads (--n-cpu-moe, -ot, -ts...)
        except ValueError as exc:
            raise ValueError(f"{'command' if data.get('command') is not None else 'args'}: {exc}") from None
        return data
