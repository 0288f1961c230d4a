"""The fit and the cluster file: what `homelab plan fit` reads from it, and the choices `--write` puts back.

Fit places what a rollout places (`lineup_from_inventory(deployed_only=True)`): the llama.cpp
containers and the Ollama models with `deploy:`. Ollama loads the others on demand, choosing for
itself, so they are listed and left alone. A model's ask is `fit.max_ctx` when that names it,
else its `ctx_size` (Ollama: `num_ctx`, clamped to the training context, times the node's
parallel sequences), or the lineup file's `ctx_size`.

Writing goes through ruamel.yaml's round trip, so comments, key order, quoting and flow style
stay; only what fit chooses is touched, and only for models it placed on a GPU and does not keep:

  llama.cpp container  `ctx_size`, `gpu_layers` (or `-c`/`-ngl` where `args` give them), and in
                       `args`: `--n-cpu-moe N` (none for 0), `-fa on`, `-ctk`/`-ctv` (none for f16,
                       llama.cpp's default); `gpus: [i]` when it would split over several GPUs
  Ollama deploy        `num_ctx`, `num_gpu`
  fit.max_ctx          the ask of a model whose context fit lowered (dropped once it gets all of it)

The new text must validate as a cluster file, and is written atomically, only if the file still
holds the bytes it was made from (another editor's change is never overwritten).
"""

from __future__ import annotations

import difflib
import io
from pathlib import Path
from typing import Any

import yaml
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.scalarstring import SingleQuotedScalarString

from homelab.errors import FileAccessError, InventoryError, LineupError, Problem
from homelab.files import read_regular, write_atomic
from homelab.inventory import EndpointKind, Inventory, parse_inventory
from homelab.inventory.container import PLANNED_FLAGS
from homelab.inventory.settings import FitSettings
from homelab.vram.fit import FitEntry, FittedModel, LineupFit, fit_entries
from homelab.vram.lineup import LineupFile, SourceShapes, lineup_from_inventory
from homelab.yaml_source import MAX_FILE_BYTES, loads_yaml

__all__ = ["fit_inventory", "fitted_text", "text_diff", "write_fitted"]

# Indentations (mapping, sequence, dash offset) tried for the round trip, the usual ones first: the
# first that reproduces the file unchanged is used.
_USUAL = ((2, 4, 2), (2, 2, 0), (4, 4, 2), (4, 6, 4), (4, 4, 0))
_INDENTS = tuple(dict.fromkeys(_USUAL + tuple((m, s, o) for m in (2, 3, 4) for s in range(2, 7) for o in range(s - 1))))
_N_CPU_MOE = ("--n-cpu-moe", "-ncmoe")
_FLASH = ("-fa", "--flash-attn")
_CTK = ("-ctk", "--cache-type-k")
_CTV = ("-ctv", "--cache-type-v")


def fit_inventory(
    inventory: Inventory,
    *,
    models_dir: Path | None = None,
    lineup_file: LineupFile | None = None,
    sources: SourceShapes | None = None,
) -> LineupFit:
    """Fit the models a rollout places (module docstring) with the cluster file's `fit:` section.

    Args:
        sources: shapes of the models with a `source:`, by model file (`lineup_from_inventory`).

    Raises:
        LineupError: `fit.keep` or `fit.max_ctx` names a model fit does not place, or the lineup
            file names one no GPU node serves.
        ModelFileError: A GGUF named or found is unreadable.
    """
    settings = inventory.fit or FitSettings()
    lineup = lineup_from_inventory(
        inventory, models_dir=models_dir, lineup_file=lineup_file, deployed_only=True, sources=sources
    )
    known = [e.name for e in lineup.entries] + [u.model for u in lineup.unsized]
    for where, names in (("keep", settings.keep), ("max_ctx", list(settings.max_ctx))):
        if unknown := [n for n in names if n not in known]:
            raise LineupError(
                f"fit.{where}: {', '.join(unknown)}: not a llama.cpp container or deployed Ollama model of a GPU node "
                f"(those are: {', '.join(known) or 'none'})"
            )
    kinds = {(node.name, ep.name): ep.kind for node, ep in inventory.endpoints()}
    entries = []
    for e in lineup.entries:
        ollama = kinds.get((e.node or "", e.endpoint or "")) == EndpointKind.OLLAMA
        asked = settings.max_ctx.get(e.name)
        if asked is None:
            ctx = e.ctx_size or e.shape.context_length
        else:
            ctx = min(asked, e.shape.context_length) * e.parallel if ollama else asked
        entries.append(FitEntry(entry=e, ollama=ollama, ctx_asked=ctx, keep=e.name in settings.keep))
    on_demand = [
        m.alias
        for node in inventory.nodes
        if node.gpus
        for ep in node.endpoints
        if ep.kind == EndpointKind.OLLAMA
        for m in ep.models
        if m.deploy is None
    ]
    return fit_entries(entries, lineup.slots, settings, lineup.unsized, on_demand)


def _round_trip(text: str, name: str) -> YAML:
    """A ruamel YAML that dumps this text back unchanged (its indentation found by trying).

    Raises:
        InventoryError: No indentation reproduces the file, so writing would change lines fit does not own.
    """
    for mapping, sequence, offset in _INDENTS:
        rt = YAML()
        rt.preserve_quotes = True
        rt.width = 4096
        rt.indent(mapping=mapping, sequence=sequence, offset=offset)
        out = io.StringIO()
        rt.dump(rt.load(text), out)
        if out.getvalue() == text:
            return rt
    message = (
        "its layout (indentation, spaces inside [ ] or { }) is not one plan fit can reproduce, so writing would "
        "change lines fit does not own; "
        "copy the choices shown by hand"
    )
    raise InventoryError([Problem(name, None, "", message)])


def _put(mapping: CommentedMap, key: str, value: Any, after: str | None = None) -> None:
    """Set `key`; a new key goes after `after` (or last), taking over the comment that trailed the
    old last key (ruamel keeps the blank lines and comment before the next item there)."""
    if key in mapping:
        mapping[key] = value
        return
    keys = list(mapping)
    if after in mapping and after != keys[-1]:
        mapping.insert(keys.index(after) + 1, key, value)
        return
    trailing = mapping.ca.items.pop(keys[-1], None) if keys else None
    mapping[key] = value
    if trailing is not None:
        mapping.ca.items[key] = trailing


def _word(value: str) -> str:
    """A command-line word as YAML must hold it: quoted where PyYAML would read a number or a bool."""
    return value if yaml.safe_load(value) == value else SingleQuotedScalarString(value)


def _flag_name(word: object) -> tuple[str, bool]:
    """A word's flag name (llama.cpp reads `--long_name` as `--long-name`) and whether it holds `=value`."""
    name, equals, _ = str(word).partition("=")
    return (name.replace("_", "-") if name.startswith("--") else name), bool(equals)


def _set_flag(words: CommentedSeq, flags: tuple[str, ...], value: str | None) -> None:
    """One `flag value` in `words` where the first of `flags` stood (else at the end), or none (None).

    Every other occurrence goes: llama.cpp keeps a repeated flag's last value (or, for
    --n-cpu-moe, adds them up), so one left behind would override the value written.
    """
    at = None
    i = 0
    while i < len(words):
        name, inline = _flag_name(words[i])
        if name not in flags:
            i += 1
            continue
        at = i if at is None else at
        del words[i : i + (1 if inline else 2)]
    if value is None:
        return
    at = len(words) if at is None else at
    words[at:at] = [flags[0], _word(value)]


def _words_with(words: CommentedSeq, flags: tuple[str, ...]) -> bool:
    return any(_flag_name(w)[0] in flags for w in words)


def _set_planned(container: CommentedMap, words: CommentedSeq | None, field: str, value: int) -> None:
    """A planned value (`ctx_size`, `gpu_layers`) where the file gives it: in the words, the field, or both."""
    flags = PLANNED_FLAGS[field]
    in_words = words is not None and _words_with(words, flags)
    if in_words and words is not None:
        _set_flag(words, flags, str(value))
    if field in container or not in_words:
        _put(container, field, value, after="ctx_size")


def _write_container(container: CommentedMap, model: FittedModel) -> None:
    words = container.get("command") if container.get("command") is not None else container.get("args")
    _set_planned(container, words, "ctx_size", model.ctx_size)
    _set_planned(container, words, "gpu_layers", model.n_gpu_layers)
    if container.get("command") == []:  # the image's own command line: flags would not reach llama-server
        return
    if words is None:
        words = CommentedSeq()
        words.fa.set_flow_style()
    _set_flag(words, _N_CPU_MOE, str(model.n_cpu_moe) if model.n_cpu_moe else None)
    _set_flag(words, _FLASH, "on" if model.flash_attn else "off")
    quantized = None if model.cache_type == "f16" else model.cache_type
    _set_flag(words, _CTK, quantized)
    _set_flag(words, _CTV, quantized)
    if words and "args" not in container and container.get("command") is None:
        _put(container, "args", words)
    elif not words and "args" in container:
        del container["args"]
    if model.pin_gpu:
        gpus = CommentedSeq(model.gpu_indexes)
        gpus.fa.set_flow_style()
        _put(container, "gpus", gpus)


def _endpoint(data: CommentedMap, model: FittedModel) -> CommentedMap:
    node = next(n for n in data["nodes"] if n["name"] == model.node)
    endpoint: CommentedMap = next(e for e in node["endpoints"] if e["name"] == model.endpoint)
    return endpoint


def _record_ask(data: CommentedMap, model: FittedModel) -> None:
    """fit.max_ctx keeps the ask of a model whose context fit lowered, in the file's own unit."""
    unit = model.parallel if model.ollama else 1
    fit = data.get("fit")
    if model.ctx_size < model.ctx_asked:
        if fit is None:
            fit = CommentedMap()
            _put(data, "fit", fit)
        if fit.get("max_ctx") is None:
            _put(fit, "max_ctx", CommentedMap())
        _put(fit["max_ctx"], model.model, model.ctx_asked // unit)
    elif fit is not None and model.model in (fit.get("max_ctx") or {}):
        del fit["max_ctx"][model.model]
        if not fit["max_ctx"]:
            del fit["max_ctx"]


def _shared(data: Any) -> set[int]:
    """Ids of the mappings and lists the document reaches more than once (YAML aliases, `*name`)."""
    seen: set[int] = set()
    shared: set[int] = set()
    stack = [data]
    while stack:
        item = stack.pop()
        if not isinstance(item, dict | list):
            continue
        if id(item) in seen:
            shared.add(id(item))
            continue
        seen.add(id(item))
        stack.extend(item.values() if isinstance(item, dict) else item)
    return shared


def _refuse_shared(name: str, model: FittedModel, shared: set[int], *parts: Any) -> None:
    """Writing into what an alias shares would change every place that uses it.

    Raises:
        InventoryError: One of `parts` is shared.
    """
    if any(part is not None and id(part) in shared for part in parts):
        message = (
            f"{model.model}: its container or deploy section (or args) is shared through a YAML alias, so "
            "writing would change every place that uses it; copy the choices shown by hand"
        )
        raise InventoryError([Problem(name, None, "", message)])


def fitted_text(text: str, name: str, fit: LineupFit) -> str:
    """The cluster file's text with fit's choices in it (module docstring); `text` itself when nothing changes.

    Raises:
        InventoryError: The file's layout cannot be reproduced, a section fit writes is shared
            through a YAML alias, or the new text would not validate (a bug: the message says where).
    """
    rt = _round_trip(text, name)
    data = rt.load(text)
    shared = _shared(data)
    for model in fit.models:
        if model.kept or model.gpu is None or model.node is None or model.endpoint is None:
            continue
        endpoint = _endpoint(data, model)
        if model.ollama:
            deploy = next(m for m in endpoint["models"] if m["alias"] == model.model)["deploy"]
            _refuse_shared(name, model, shared, deploy)
            _put(deploy, "num_ctx", model.ctx_size // model.parallel)
            _put(deploy, "num_gpu", model.n_gpu_layers, after="num_ctx")
        else:
            container = endpoint["container"]
            _refuse_shared(name, model, shared, container, container.get("args"), container.get("command"))
            _write_container(container, model)
        _record_ask(data, model)
    out = io.StringIO()
    rt.dump(data, out)
    new = out.getvalue()
    if new != text:
        parsed, source = loads_yaml(new, f"{name} (as plan fit would write it)")
        parse_inventory(parsed, source)
    return new


def text_diff(old: str, new: str, name: str) -> str:
    """A unified diff of the two texts ('' when equal)."""
    lines = difflib.unified_diff(old.splitlines(True), new.splitlines(True), name, f"{name} (fitted)")
    return "".join(lines)


def write_fitted(path: Path, read: bytes, new_text: str) -> None:
    """Replace the cluster file with `new_text`, atomically, if it still holds the bytes `read`.

    Raises:
        FileAccessError: The file changed since it was read (or cannot be read or written).
    """
    now = read_regular(path, limit_bytes=MAX_FILE_BYTES, what="cluster file")
    if now != read:
        raise FileAccessError(path, "changed since plan fit read it; run plan fit again")
    write_atomic(path, new_text.encode("utf-8"))
