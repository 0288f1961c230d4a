"""Cross-references of a cluster file, checked on the parsed YAML before the schema has passed.

Names must be unique, secrets and aliases referred to must exist, the gateway must name a
litellm endpoint, an expert must be able to take its category's requests when the file says
what it can do (its `capabilities:`, or a name like `nomic-embed-text`). These checks read the
plain YAML data, not the validated models, so that a file with a structural error and a missing
secret gets both reported at once. A value of the wrong type is skipped here: the schema
reports it.
"""

from __future__ import annotations

import json
from typing import Any

from homelab.errors import Problem
from homelab.inventory.capabilities import NEEDS, name_hint
from homelab.inventory.models import Capability, Category, EndpointKind
from homelab.inventory.values import url_port
from homelab.sources.spec import file_name_of
from homelab.yaml_source import FieldPath, SourceMap

__all__ = ["check_references"]

_KINDS = {kind.value for kind in EndpointKind}  # an unknown kind is the schema's to report


def _entries(parent: Any, key: str) -> list[tuple[int, dict[str, Any]]]:
    """The mappings of list `parent[key]`, with their positions."""
    items = parent.get(key) if isinstance(parent, dict) else None
    return [(i, item) for i, item in enumerate(items) if isinstance(item, dict)] if isinstance(items, list) else []


def _text(mapping: Any, key: str) -> str | None:
    value = mapping.get(key) if isinstance(mapping, dict) else None
    return value if isinstance(value, str) else None


def _port(endpoint: dict[str, Any]) -> str | None:
    url = _text(endpoint, "url")
    try:
        return str(url_port(url)) if url is not None else None
    except ValueError:
        return None


def _ollama_name(name: str) -> str:
    return name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"


class _Checker:
    """Collects located problems for one file."""

    def __init__(self, data: dict[str, Any], source: SourceMap) -> None:
        self.source = source
        self.problems: list[Problem] = []
        secrets = data.get("secrets")
        self.secrets = [str(name) for name in secrets] if isinstance(secrets, dict) else []

    def report(self, path: FieldPath, message: str) -> None:
        self.problems.append(self.source.problem(path, message))

    def unique(self, items: list[tuple[str | None, FieldPath]], what: str) -> None:
        first: dict[str, FieldPath] = {}
        for value, path in items:
            if value is None:
                continue
            if value in first:
                self.report(path, f"duplicate {what} {value!r} (first at line {self.source.line_of(first[value])})")
            else:
                first[value] = path

    def secret(self, section: Any, key: str, path: FieldPath) -> None:
        ref = _text(section, key)
        if ref is not None and ref not in self.secrets:
            known = ", ".join(self.secrets) or "none defined"
            self.report((*path, key), f"no secret named {ref!r} in secrets ({known})")


def check_references(data: dict[str, Any], source: SourceMap) -> list[Problem]:
    """Every reference and uniqueness problem of the file's data, located through `source`."""
    check = _Checker(data, source)
    nodes = _entries(data, "nodes")
    check.unique([(_text(n, "name"), ("nodes", i, "name")) for i, n in nodes], "node name")
    aliases: list[tuple[str | None, FieldPath]] = []
    for i, node in nodes:
        aliases += _check_node(check, node, ("nodes", i))
    served = {alias for alias, _ in aliases}
    models = {
        _text(m, "alias"): m
        for _, node in nodes
        for _, e in _entries(node, "endpoints")
        for _, m in _entries(e, "models")
    }
    _check_gateway_names(check, nodes)
    _check_sources(check, nodes)
    experts = data.get("experts")
    for category, chain in experts.items() if isinstance(experts, dict) else []:
        for k, alias in enumerate(chain) if isinstance(chain, list) else []:
            if isinstance(alias, str) and alias not in served:
                check.report(("experts", str(category), k), f"no endpoint serves model alias {alias!r}")
            elif isinstance(alias, str) and (message := _capability_problem(category, alias, models[alias])):
                check.report(("experts", str(category), k), message)
    gateway = data.get("gateway")
    check.secret(gateway, "master_key_secret", ("gateway",))
    if (ref := _text(gateway, "endpoint")) is not None and (message := _gateway_problem(nodes, ref)) is not None:
        check.report(("gateway", "endpoint"), message)
    return check.problems


def _capability_problem(category: Any, alias: str, model: dict[str, Any]) -> str | None:
    """An expert whose capabilities the file states or its name gives, without the one its category needs."""
    if category not in set(Category):
        return None  # the schema reports an unknown category
    declared = model.get("capabilities")
    if isinstance(declared, list):
        known = [Capability(c) for c in declared if isinstance(c, str) and c in set(Capability)]
        where = "its capabilities:"
    else:
        name = _text(model, "name") or ""
        known = name_hint(name) or []
        where = f"its name {name!r} says"
    needed = NEEDS[Category(category)]
    if not known or needed in known:
        return None
    return f"{alias} cannot take {category} requests, which need {needed}: {where} {', '.join(known)}"


def _check_node(check: _Checker, node: dict[str, Any], at: FieldPath) -> list[tuple[str | None, FieldPath]]:
    """Check one node; returns the model aliases its endpoints serve."""
    endpoints = _entries(node, "endpoints")
    check.unique([(_text(e, "name"), (*at, "endpoints", j, "name")) for j, e in endpoints], "endpoint name")
    check.unique([(_port(e), (*at, "endpoints", j, "url")) for j, e in endpoints], "port")
    gpus = _entries(node, "gpus")
    indexes = [(k if g.get("index") is None else g["index"], (*at, "gpus", k, "index")) for k, g in gpus]
    check.unique([(str(k) if type(k) is int else None, path) for k, path in indexes], "GPU index")
    known = [k for k, _ in indexes if type(k) is int]
    check.secret(node.get("ssh"), "key_secret", (*at, "ssh"))
    check.secret(node.get("ssh"), "password_secret", (*at, "ssh"))
    check.secret(node.get("wake"), "command_secret", (*at, "wake"))
    aliases: list[tuple[str | None, FieldPath]] = []
    for j, endpoint in endpoints:
        here: FieldPath = (*at, "endpoints", j)
        models = _entries(endpoint, "models")
        # The same alias on several endpoints is a replica group (the router and the gateway
        # balance over them); twice on one endpoint it is a mistake.
        here_aliases = [(_text(m, "alias"), (*here, "models", k, "alias")) for k, m in models]
        check.unique(here_aliases, "model alias on this endpoint")
        aliases += here_aliases
        kind = _text(endpoint, "kind")
        kind = kind if kind in _KINDS else None
        if endpoint.get("container") is not None and kind not in (None, "llamacpp"):
            check.report((*here, "container"), f"only llamacpp endpoints run in containers, not {kind}")
        _check_container_gpus(check, endpoint.get("container"), known, (*here, "container", "gpus"))
        container = endpoint.get("container")
        check.secret(container.get("source") if isinstance(container, dict) else None, "token_secret",
                     (*here, "container", "source"))  # fmt: skip
        deployed = [(k, m) for k, m in models if m.get("deploy") is not None]
        for k, m in deployed:
            deploy = m["deploy"]
            source = deploy.get("source") if isinstance(deploy, dict) else None
            check.secret(source, "token_secret", (*here, "models", k, "deploy", "source"))
        for k, _ in deployed if kind not in (None, "ollama") else []:
            check.report(
                (*here, "models", k, "deploy"),
                f"only models of ollama endpoints are deployed this way, not {kind} (use container:)",
            )
        # Ollama names `qwen` and `qwen:latest` the same model: two deploy sections would fight over it.
        names = [(_text(m, "name"), (*here, "models", k, "name")) for k, m in deployed]
        check.unique([(_ollama_name(name) if name else None, path) for name, path in names], "model")
        # Ollama keys a loaded model by its file (server/sched.go schedulerModelKey, line 110
        # at v0.33.0-rc2): two models from one GGUF can never both be loaded.
        ggufs = [(_text(m["deploy"], "gguf"), (*here, "models", k, "deploy", "gguf")) for k, m in deployed]
        check.unique(ggufs, "GGUF (Ollama keeps one model per file loaded)")
    return aliases


def _check_gateway_names(check: _Checker, nodes: list[tuple[int, dict[str, Any]]]) -> None:
    """Replicas share one gateway model_name (one LiteLLM model group); two aliases never do."""
    named: dict[str, tuple[str, FieldPath]] = {}  # alias -> its first explicit model_name
    for i, node in nodes:
        for j, endpoint in _entries(node, "endpoints"):
            for k, model in _entries(endpoint, "models"):
                alias, name = _text(model, "alias"), _text(model.get("gateway"), "model_name")
                if alias is None or name is None:
                    continue
                path: FieldPath = ("nodes", i, "endpoints", j, "models", k, "gateway", "model_name")
                first = named.setdefault(alias, (name, path))
                if first[0] != name:
                    line = check.source.line_of(first[1])
                    check.report(
                        path, f"replicas of {alias!r} are one model at the gateway: {first[0]!r} at line {line}"
                    )
    check.unique([(name, path) for name, path in named.values()], "gateway model_name")


def _check_sources(check: _Checker, nodes: list[tuple[int, dict[str, Any]]]) -> None:
    """One model file name, one source: a volume or the planner cannot tell two files of one name apart."""
    first: dict[str, tuple[str, FieldPath]] = {}
    for i, node in nodes:
        for j, endpoint in _entries(node, "endpoints"):
            here: FieldPath = ("nodes", i, "endpoints", j)
            sections = [("model_file", endpoint.get("container"), (*here, "container"))]
            sections += [
                ("gguf", m.get("deploy"), (*here, "models", k, "deploy")) for k, m in _entries(endpoint, "models")
            ]
            for field, section, at in sections:
                source = section.get("source") if isinstance(section, dict) else None
                url = source.get("url") if isinstance(source, dict) else source
                if not isinstance(url, str):
                    continue
                name = _text(section, field) or file_name_of(url)
                said = json.dumps(source if isinstance(source, dict) else {"url": source}, sort_keys=True, default=str)
                seen = first.setdefault(name, (said, (*at, "source")))
                if seen[0] != said:
                    line = check.source.line_of(seen[1])
                    check.report((*at, "source"), f"{name!r} comes from another source at line {line}; name them apart")


def _check_container_gpus(check: _Checker, container: Any, known: list[int], at: FieldPath) -> None:
    """A container's `gpus` are CUDA indexes of its node's `gpus:` list (`index`, else the position)."""
    wanted = container.get("gpus") if isinstance(container, dict) else None
    for k, index in enumerate(wanted) if isinstance(wanted, list) else []:
        if type(index) is not int or index < 0:
            continue  # the schema reports it
        if not known:
            check.report((*at, k), "the node lists no GPUs (its gpus:), so its containers cannot ask for one")
        elif index not in known:
            check.report((*at, k), f"the node has no GPU with index {index} (its gpus: {', '.join(map(str, known))})")


def _gateway_problem(nodes: list[tuple[int, dict[str, Any]]], ref: str) -> str | None:
    node_name, slash, endpoint_name = ref.partition("/")
    if not (node_name and slash and endpoint_name):
        return f"must be NODE/ENDPOINT, got {ref!r}"
    for _, node in nodes:
        for _, endpoint in _entries(node, "endpoints"):
            if (_text(node, "name"), _text(endpoint, "name")) == (node_name, endpoint_name):
                kind = _text(endpoint, "kind")
                return f"{ref!r} has kind {kind}, not litellm" if kind in _KINDS - {"litellm"} else None
    if node_name not in {_text(node, "name") for _, node in nodes}:
        return f"no node named {node_name!r} (expected NODE/ENDPOINT)"
    return f"node {node_name!r} has no endpoint named {endpoint_name!r}"
