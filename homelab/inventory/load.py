"""Loading a cluster file: YAML with lines, pydantic validation, then cross-references.

Every problem is reported at once as `FILE:LINE: field.path: what is wrong`, in words about
YAML (a number, a list) rather than Python types or regular expressions.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, get_args, get_origin

from pydantic import BaseModel, ValidationError

from homelab.errors import InventoryError, Problem
from homelab.inventory.models import (
    ALIAS_PATTERN,
    ALIAS_RULE,
    NAME_PATTERN,
    NAME_RULE,
    Endpoint,
    EndpointKind,
    Inventory,
)
from homelab.yaml_source import FieldPath, SourceMap, load_yaml

__all__ = ["load_inventory", "parse_inventory"]


def load_inventory(path: str | Path) -> Inventory:
    """Read and validate a cluster file.

    Raises:
        InventoryError: with every problem found, each naming file, line and field.
    """
    data, source = load_yaml(Path(path))
    return parse_inventory(data, source)


def parse_inventory(data: Any, source: SourceMap) -> Inventory:
    """Validate already-parsed YAML data, locating problems through `source`."""
    if not isinstance(data, dict):
        got = "an empty file" if data is None else _described(data)
        raise InventoryError([source.problem((), f"expected a mapping with 'nodes' at the top level, got {got}")])
    try:
        inventory = Inventory.model_validate(data)
    except ValidationError as exc:
        raise InventoryError([_problem(error, source) for error in exc.errors()]) from None
    problems = _cross_check(inventory, source)
    if problems:
        raise InventoryError(problems)
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
        message = f"{error['input']!r} is not a valid {_PATTERN_RULES[ctx['pattern']]}"
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
    return repr(value)


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


def _cross_check(inv: Inventory, source: SourceMap) -> list[Problem]:
    """References and uniqueness that a single field cannot check."""
    problems: list[Problem] = []

    def report(path: FieldPath, message: str) -> None:
        problems.append(source.problem(path, message))

    def unique(items: list[tuple[str, FieldPath]], what: str) -> None:
        first: dict[str, FieldPath] = {}
        for value, path in items:
            if value in first:
                report(path, f"duplicate {what} {value!r} (first at line {source.line_of(first[value])})")
            else:
                first[value] = path

    def secret(ref: str | None, path: FieldPath) -> None:
        if ref is not None and ref not in inv.secrets:
            known = ", ".join(inv.secrets) or "none defined"
            report(path, f"no secret named {ref!r} in secrets ({known})")

    unique([(n.name, ("nodes", i, "name")) for i, n in enumerate(inv.nodes)], "node name")
    aliases: list[tuple[str, FieldPath]] = []
    for i, node in enumerate(inv.nodes):
        at: FieldPath = ("nodes", i)
        unique([(e.name, (*at, "endpoints", j, "name")) for j, e in enumerate(node.endpoints)], "endpoint name")
        unique([(str(e.port), (*at, "endpoints", j, "url")) for j, e in enumerate(node.endpoints)], "port")
        unique(
            [(str(k if g.index is None else g.index), (*at, "gpus", k, "index")) for k, g in enumerate(node.gpus)],
            "GPU index",
        )
        if node.ssh:
            secret(node.ssh.key_secret, (*at, "ssh", "key_secret"))
            secret(node.ssh.password_secret, (*at, "ssh", "password_secret"))
        if node.wake:
            secret(node.wake.command_secret, (*at, "wake", "command_secret"))
        for j, endpoint in enumerate(node.endpoints):
            aliases += [(m.alias, (*at, "endpoints", j, "models", k, "alias")) for k, m in enumerate(endpoint.models)]
            if endpoint.container and endpoint.kind is not EndpointKind.LLAMACPP:
                report((*at, "endpoints", j, "container"), f"only llamacpp endpoints run in containers, not {endpoint.kind}")
            deployed = [(k, m) for k, m in enumerate(endpoint.models) if m.deploy is not None]
            for k, _ in deployed if endpoint.kind is not EndpointKind.OLLAMA else []:
                report(
                    (*at, "endpoints", j, "models", k, "deploy"),
                    f"only models of ollama endpoints are deployed this way, not {endpoint.kind} (use container:)",
                )
            # Ollama names `qwen` and `qwen:latest` the same model: two deploy sections would fight over it.
            unique([(_ollama_name(m.name), (*at, "endpoints", j, "models", k, "name")) for k, m in deployed], "model")
            if (message := _probe_problem(inv, endpoint)) is not None:
                report((*at, "endpoints", j, "probe"), message)
    unique(aliases, "model alias")
    served = {alias for alias, _ in aliases}
    for category, chain in inv.experts.items():
        for k, alias in enumerate(chain):
            if alias not in served:
                report(("experts", category.value, k), f"no endpoint serves model alias {alias!r}")
    if inv.gateway:
        secret(inv.gateway.master_key_secret, ("gateway", "master_key_secret"))
        if (message := _gateway_problem(inv, inv.gateway.endpoint)) is not None:
            report(("gateway", "endpoint"), message)
    return problems


def _ollama_name(name: str) -> str:
    return name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"


def _probe_problem(inv: Inventory, endpoint: Endpoint) -> str | None:
    """Overrides are checked field by field on their own; merged, they must still agree."""
    try:
        inv.probe_settings(endpoint)
    except ValidationError as exc:
        return f"{exc.errors()[0]['msg'].removeprefix('Value error, ')} once merged with defaults.probe"
    return None


def _gateway_problem(inv: Inventory, ref: str) -> str | None:
    node_name, slash, endpoint_name = ref.partition("/")
    if not (node_name and slash and endpoint_name):
        return f"must be NODE/ENDPOINT, got {ref!r}"
    for node, endpoint in inv.endpoints():
        if (node.name, endpoint.name) == (node_name, endpoint_name):
            if endpoint.kind is not EndpointKind.LITELLM:
                return f"{ref!r} has kind {endpoint.kind}, not litellm"
            return None
    if node_name not in {node.name for node in inv.nodes}:
        return f"no node named {node_name!r} (expected NODE/ENDPOINT)"
    return f"node {node_name!r} has no endpoint named {endpoint_name!r}"
