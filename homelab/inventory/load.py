"""Loading a cluster file: YAML with lines, pydantic validation and cross-references.

Every problem is reported at once, structural and cross-reference alike, as
`FILE:LINE: field.path: what is wrong`, in words about YAML (a number, a list) rather than
Python types or regular expressions. Notes, in the same form, say where a valid file is read
differently from how it is written (an endpoint URL with an API path on it); only
`homelab validate` shows them, so that a sweep every minute does not repeat them.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, get_args, get_origin

from pydantic import BaseModel, ValidationError

from homelab.errors import InventoryError, Problem
from homelab.inventory.fields import ALIAS_PATTERN, ALIAS_RULE, NAME_PATTERN, NAME_RULE
from homelab.inventory.models import Endpoint, Inventory
from homelab.inventory.references import check_references
from homelab.inventory.values import api_path_note
from homelab.yaml_source import FieldPath, SourceMap, load_yaml

__all__ = ["load_inventory", "load_inventory_with_notes", "parse_inventory", "url_notes"]


def load_inventory(path: str | Path) -> Inventory:
    """Read and validate a cluster file.

    Raises:
        InventoryError: with every problem found, each naming file, line and field.
    """
    data, source = load_yaml(Path(path))
    return parse_inventory(data, source)


def load_inventory_with_notes(path: str | Path) -> tuple[Inventory, list[Problem]]:
    """Read and validate a cluster file, with the notes on it (see `url_notes`).

    Raises:
        InventoryError: with every problem found, each naming file, line and field.
    """
    data, source = load_yaml(Path(path))
    return parse_inventory(data, source), url_notes(data, source)


def url_notes(data: Any, source: SourceMap) -> list[Problem]:
    """One note per endpoint URL written with an API path, which the schema drops (`Endpoint.url`).

    Read from the YAML, not the models, because the models hold only the base URL. Expects
    data that `parse_inventory` accepted.
    """
    return [
        source.problem(("nodes", i, "endpoints", j, "url"), note)
        for i, node in enumerate(data["nodes"])
        for j, endpoint in enumerate(node.get("endpoints") or [])
        if (note := api_path_note(endpoint["kind"], endpoint["url"])) is not None
    ]


def parse_inventory(data: Any, source: SourceMap) -> Inventory:
    """Validate already-parsed YAML data, locating problems through `source`."""
    if not isinstance(data, dict):
        got = "an empty file" if data is None else _described(data)
        raise InventoryError([source.problem((), f"expected a mapping with 'nodes' at the top level, got {got}")])
    problems = check_references(data, source)
    try:
        inventory = Inventory.model_validate(data)
    except ValidationError as exc:
        problems += [_problem(error, source) for error in exc.errors()]
    else:
        problems += _probe_problems(inventory, source)
    if problems:
        # In file order, as the user reads and fixes them; a problem of the whole file first.
        raise InventoryError(sorted(problems, key=lambda p: p.line or 0))
    return inventory


# Pydantic's wording names Python types and regular expressions; these name YAML's.
_EXPECTED_TYPES = {
    "int_type": "a whole number",
    "float_type": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "string_type": "a string",
    "list_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
}
_SHOWN_CHARS = 120
_PATTERN_RULES = {NAME_PATTERN: f"name ({NAME_RULE})", ALIAS_PATTERN: f"alias ({ALIAS_RULE})"}


def _problem(error: Any, source: SourceMap) -> Problem:
    """Turn one pydantic error into a located, readable problem."""
    path: FieldPath = tuple(error["loc"])
    if path and path[-1] == "[key]":  # pydantic's marker for a bad mapping key; the key's line is the place
        path = path[:-1]
    kind = error["type"]
    ctx = error.get("ctx", {})
    if kind == "extra_forbidden":
        key = str(path[-1])
        allowed = _allowed_keys(path[:-1])
        hint = difflib.get_close_matches(key, allowed, n=1)
        message = f"unknown key {key!r}" + (f" (did you mean {hint[0]!r}?)" if hint else "")
        message += f"; allowed: {', '.join(allowed)}" if allowed and not hint else ""
    elif kind == "missing":
        message = "required field is missing"
    elif kind in _EXPECTED_TYPES:
        message = f"must be {_EXPECTED_TYPES[kind]}, got {_described(error['input'])}"
    elif kind == "string_pattern_mismatch" and ctx.get("pattern") in _PATTERN_RULES:
        message = f"{_described(error['input'])} is not a valid {_PATTERN_RULES[ctx['pattern']]}"
    else:
        message = str(error["msg"]).removeprefix("Value error, ")
        if message.startswith("Input should be "):  # enums, literals, bounds: say what was given
            message = f"must be {message.removeprefix('Input should be ')}, got {_described(error['input'])}"
    return source.problem(path, message)


def _described(value: Any) -> str:
    """A parsed YAML value as its writer would name it: `true`, `a list`, `'22'`."""
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    shown = repr(value)  # quoted back to the user: a 10 MB string is cut short
    return shown if len(shown) <= _SHOWN_CHARS else f"{shown[: _SHOWN_CHARS - 3]}..."


def _allowed_keys(parent: FieldPath) -> list[str]:
    """The field names of the model found at `parent` in the inventory tree."""
    annotation: Any = Inventory
    for part in parent:
        if get_origin(annotation) in (list, dict):  # `part` is an index or a key: step into the items
            annotation = get_args(annotation)[-1]
        elif (model := _model_of(annotation)) is not None and str(part) in model.model_fields:
            annotation = model.model_fields[str(part)].annotation
        else:
            return []
    model = _model_of(annotation)
    return list(model.model_fields) if model else []


def _model_of(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        if (found := _model_of(arg)) is not None:
            return found
    return None


def _probe_problems(inv: Inventory, source: SourceMap) -> list[Problem]:
    """Probe overrides merged with the defaults; this needs both validated first."""
    return [
        source.problem(("nodes", i, "endpoints", j, "probe"), message)
        for i, node in enumerate(inv.nodes)
        for j, endpoint in enumerate(node.endpoints)
        if (message := _probe_problem(inv, endpoint)) is not None
    ]


def _probe_problem(inv: Inventory, endpoint: Endpoint) -> str | None:
    """Overrides are checked field by field on their own; merged, they must still agree."""
    try:
        inv.probe_settings(endpoint)
    except ValidationError as exc:
        return f"{exc.errors()[0]['msg'].removeprefix('Value error, ')} once merged with defaults.probe"
    return None
