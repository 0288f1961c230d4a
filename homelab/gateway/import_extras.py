"""What `homelab gateway import` keeps beside the nodes: external entries, settings, and its notes.

An entry homelab does not run is kept as written (`gateway.external`), and so are the three
settings sections (`gateway.settings`), with one change to both: a secret key holding a
literal value is left out, and a note says where (never what). The cluster file is committed
and shown; a key belongs in the proxy's environment, where an `os.environ/NAME` reference finds it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from pydantic import ValidationError

from homelab.errors import Problem
from homelab.inventory import Gateway
from homelab.inventory.gateway import env_name, split_secrets
from homelab.yaml_source import SourceMap

__all__ = ["SETTINGS_SECTIONS", "External", "entry_label", "gateway_section", "read_external"]

SETTINGS_SECTIONS = ("router_settings", "litellm_settings", "general_settings")
_READ = {"model_list", *SETTINGS_SECTIONS}
_LABEL_MAX = 200  # a tier, "/" and an alias fit; a longer model_name is cut in messages, which stay short


@dataclass(frozen=True)
class External:
    """One `model_list` entry as the cluster file keeps it: api_base resolved when asked, secrets out."""

    index: int
    model_name: str
    litellm_params: dict[str, Any]
    model_info: dict[str, Any] | None
    notes: tuple[str, ...] = ()

    def as_data(self) -> dict[str, Any]:
        data = {"model_name": self.model_name, "litellm_params": self.litellm_params}
        return data | ({"model_info": self.model_info} if self.model_info is not None else {})


def entry_label(index: int, item: Any) -> str:
    """`model_list[i] (model_name)`, cut and quoted so that a message stays one short line."""
    model_name = item.get("model_name") if isinstance(item, dict) else None
    if not isinstance(model_name, str) or not model_name:
        return f"model_list[{index}]"
    shown = model_name if len(model_name) <= _LABEL_MAX else f"{model_name[:_LABEL_MAX]}..."
    return f"model_list[{index}] ({shown!r})" if not shown.isprintable() else f"model_list[{index}] ({shown})"


def _secret_notes(where: str, paths: list[str]) -> tuple[str, ...]:
    return tuple(
        f"{where}{path}: a literal secret, not copied; give it as os.environ/NAME if it is needed" for path in paths
    )


def _plain(value: Any) -> Any:
    """YAML's dates as the text they were written as (`api_version: 2024-06-01`): the proxy wants a string."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value.isoformat() if isinstance(value, date) else value


def read_external(index: int, item: dict[str, Any], environ: Mapping[str, str] | None) -> tuple[External, str | None]:
    """The entry as kept, and why it cannot be read (an unset variable of a resolved api_base).

    Args:
        index, item: the entry (a mapping with model_name and litellm_params).
        environ: where `os.environ/NAME` api_bases are resolved; None keeps them as references.
    """
    params = _plain(item["litellm_params"])
    name = env_name(params.get("api_base"))
    why = None
    if environ is not None and name is not None:
        if environ.get(name):
            params["api_base"] = environ[name]
        else:
            why = f"api_base {params['api_base']}: {name} is not set, and --resolve-env asks to read it"
    label = entry_label(index, item)
    kept, dropped = split_secrets(params, "litellm_params")
    info = _plain(item.get("model_info"))
    kept_info, dropped_info = split_secrets(info, "model_info") if info is not None else (None, [])
    notes = _secret_notes(f"{label}: ", dropped + dropped_info)
    return External(index, item["model_name"], kept, kept_info, notes), why


def gateway_section(
    data: dict[str, Any], external: list[External], source: SourceMap
) -> tuple[dict[str, Any] | None, list[str], list[Problem]]:
    """The cluster file's `gateway:` from the external entries and the config's settings.

    Returns:
        The section (None when there is nothing to keep), notes on what was left out, and the
        problems of values the cluster file refuses, each named by where it came from.
    """
    problems: list[Problem] = []
    notes: list[str] = []
    settings: dict[str, Any] = {}
    for key in SETTINGS_SECTIONS:
        value = data.get(key)
        if value is None:
            continue
        if not isinstance(value, dict):
            problems.append(source.problem((key,), f"{key} must be a mapping, got {type(value).__name__}"))
            continue
        kept, dropped = split_secrets(_plain(value), key)
        notes += _secret_notes("", dropped)
        if kept:
            settings[key] = kept
    notes += [
        f"{key}: not imported (the cluster file keeps model_list and the settings)" for key in data if key not in _READ
    ]
    gateway: dict[str, Any] = {}
    if external:
        gateway["external"] = [e.as_data() for e in external]
    if settings:
        gateway["settings"] = settings
    try:
        Gateway.model_validate(gateway)
    except ValidationError as exc:
        problems += [_refused(error, external, source) for error in exc.errors()]
    return gateway or None, notes, problems


def _refused(error: Any, external: list[External], source: SourceMap) -> Problem:
    """A refused value of the gateway section, located in the LiteLLM config it came from."""
    loc = tuple(error["loc"])
    why = str(error["msg"]).removeprefix("Value error, ")
    if loc[:1] == ("external",) and len(loc) > 1 and isinstance(loc[1], int):
        entry = external[loc[1]]
        path = ("model_list", entry.index, *loc[2:])
        label = entry_label(entry.index, {"model_name": entry.model_name})
        where = ".".join(str(p) for p in loc[2:]) or "entry"
        return Problem(source.file, source.line_of(path), label, f"{where}: {why}")
    return source.problem(loc[1:] if loc[:1] == ("settings",) else loc, why)
