"""The managed entries of a LiteLLM config as the cluster file's nodes, endpoints and models.

`homelab.gateway.importer` reads and checks each entry; here the entries it keeps are named
(aliases, node names, tiers) and grouped: nodes by api_base host, endpoints by port, one alias
per `model_name` shared by its replicas.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any

from homelab.inventory import EndpointKind

__all__ = ["EMBEDDING", "NAME_MAX", "Entry", "assign_aliases", "group_nodes", "tier_name"]

_ALIAS_BAD = re.compile(r"[^A-Za-z0-9._:-]+")
_NAME_BAD = re.compile(r"[^a-z0-9_-]+")
NAME_MAX = 63  # the cluster file's limit on a tier or node name (a DNS label's)
_ALIAS_MAX = 128  # and on an alias
EMBEDDING = "embedding"


@dataclass(frozen=True)
class Entry:
    """One managed `model_list` entry."""

    index: int
    label: str
    model_name: str
    tier: str | None
    alias: str  # wanted, until `assign_aliases` gives the one it gets
    backend: str
    kind: EndpointKind
    url: str
    host: str
    port: int
    params: dict[str, Any] = field(default_factory=dict)  # litellm_params beyond model and api_base
    info: dict[str, Any] = field(default_factory=dict)  # model_info
    model: str = ""  # litellm_params.model as written
    notes: tuple[str, ...] = ()  # secrets left out of it
    keep_name: bool = False  # homelab would derive another model_name: the model keeps this one


# Names handed out, each with the last suffix tried when it was wanted: ten thousand entries
# wanting one alias then cost ten thousand steps, not fifty million.
_Taken = dict[str, int]


def _unique(wanted: str, taken: _Taken, max_length: int) -> str:
    """`wanted`, or `wanted-2`, `wanted-3`... whichever is free, cut to fit; recorded as taken."""
    base = wanted[:max_length]
    name, n = base, taken.get(base, 1)
    while name in taken:
        n += 1
        suffix = f"-{n}"
        name = f"{wanted[: max_length - len(suffix)]}{suffix}"
    taken[base] = n
    taken.setdefault(name, 1)
    return name


def assign_aliases(entries: list[Entry]) -> list[Entry]:
    """One alias per model_name (its replicas share it), in first-seen order."""
    taken: _Taken = {}
    given: dict[str, str] = {}
    for entry in entries:
        if entry.model_name not in given:
            alias = _ALIAS_BAD.sub("-", entry.alias).lstrip("._:-") or f"model-{entry.index}"
            if alias in taken and entry.tier:
                alias = _ALIAS_BAD.sub("-", f"{entry.tier}-{alias}")
            given[entry.model_name] = _unique(alias, taken, _ALIAS_MAX)
    return [replace(e, alias=given[e.model_name]) for e in entries]


def _node_name(host: str) -> str:
    """A node name from a host: a DNS name's first label (`mark-i.home.arpa` -> `mark-i`), an IP's digits."""
    is_ip = bool(re.fullmatch(r"[\d.]+|.*:.*", host))
    label = host if is_ip else host.split(".")[0]
    return _NAME_BAD.sub("-", label.lower()).strip("-_") or "node"


def tier_name(tier: str) -> str:
    return _NAME_BAD.sub("-", tier.lower()).strip("-_")


def group_nodes(entries: list[Entry]) -> tuple[list[dict[str, Any]], list[list[list[Entry]]]]:
    """Entries grouped into nodes (by host) and endpoints (by port), in first-seen order.

    Returns:
        The nodes as cluster-file data, and beside them the entries behind each endpoint's
        models (`origins[node][endpoint][model]`), to name the entry a refusal comes from.
    """
    by_host: dict[str, list[Entry]] = {}
    for entry in entries:
        by_host.setdefault(entry.host, []).append(entry)
    node_names: _Taken = {}
    nodes, origins = [], []
    for host, group in by_host.items():
        name = _unique(_node_name(host), node_names, NAME_MAX)
        votes = Counter(e.tier for e in group if e.tier)
        tier = tier_name(votes.most_common(1)[0][0]) if votes else ""
        by_port: dict[int, list[Entry]] = {}
        for entry in group:
            by_port.setdefault(entry.port, []).append(entry)
        nodes.append({"name": name, "tier": tier or name, "host": host, "endpoints": _endpoints(by_port)})
        origins.append(list(by_port.values()))
    return nodes, origins


def _endpoints(by_port: dict[int, list[Entry]]) -> list[dict[str, Any]]:
    kinds = {
        port: EndpointKind.OLLAMA if any(e.kind is EndpointKind.OLLAMA for e in es) else es[0].kind
        for port, es in by_port.items()
    }
    per_kind = Counter(kinds.values())
    endpoints = []
    for port, es in by_port.items():
        kind = kinds[port]
        url = next((e.url for e in es if e.kind is kind), es[0].url)
        name = kind.value if per_kind[kind] == 1 else f"{kind.value}-{port}"
        endpoints.append({"name": name, "kind": kind.value, "url": url, "models": [_model(e, kind) for e in es]})
    return endpoints


def _model(entry: Entry, kind: EndpointKind) -> dict[str, Any]:
    """A served model: the backend's name, the alias, and what the entry adds at the gateway."""
    model: dict[str, Any] = {"name": entry.backend, "alias": entry.alias}
    embeds = entry.info.get("mode") == EMBEDDING
    if embeds:
        model["capabilities"] = [EMBEDDING]
    # what `homelab gateway config` would write for it (`litellm_params`): kept when the entry chose otherwise
    provider = entry.model.partition("/")[0]
    derived = "openai" if kind is not EndpointKind.OLLAMA else "ollama" if embeds else "ollama_chat"
    gateway = {
        "model_name": entry.model_name if entry.keep_name else None,
        "provider": provider if provider != derived else None,
        "params": entry.params,
        "info": entry.info,
    }
    gateway = {k: v for k, v in gateway.items() if v}
    if gateway:
        model["gateway"] = gateway
    return model
