"""A starting cluster file from a LiteLLM proxy config the user already has.

Most homelabs that want this tool already run LiteLLM, and its `model_list` names every
backend: where it answers and what it serves. Reading that saves typing the inventory by hand.

The rules, in the order they apply to each `model_list` entry:

- the provider prefix of `litellm_params.model` gives the kind: `ollama/` and `ollama_chat/`
  are `ollama`; `openai/` is an OpenAI-compatible server, `llamacpp` when its port is one of
  `llamacpp_ports` (8080, llama-server's default, unless told otherwise), else `openai`. A
  `/v1` at the end of api_base is dropped: the cluster file keeps the server root. Other
  providers (cloud APIs, wildcards) are not homelab backends and are reported;
- entries are grouped into nodes by api_base host, and into endpoints by port; an Ollama
  entry makes its port an `ollama` endpoint (Ollama also answers `openai/` at `/v1`);
- `model_name` `tier/alias` gives the alias and votes for its node's tier (most votes wins,
  the first seen on a tie; a node without votes is its own tier). An alias already taken gets
  its tier as a prefix (`nas-chat`). The backend's own name is what follows the provider.

Experts, SSH, GPUs and the gateway itself are not in a LiteLLM config: add them afterwards.
Secrets (api_key, master_key) are never copied.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import yaml
from pydantic import ValidationError

from homelab.errors import GatewayConfigError, InventoryError, Problem
from homelab.inventory import Endpoint, EndpointKind, Inventory
from homelab.yaml_source import SourceMap, load_yaml

__all__ = ["DEFAULT_LLAMACPP_PORTS", "PROVIDER_KINDS", "import_litellm", "load_litellm_config", "render_inventory"]

DEFAULT_LLAMACPP_PORTS = frozenset({8080})
PROVIDER_KINDS: dict[str, EndpointKind] = {
    "ollama": EndpointKind.OLLAMA,
    "ollama_chat": EndpointKind.OLLAMA,
    "openai": EndpointKind.OPENAI,  # or llamacpp, by port
}
_ALIAS_BAD = re.compile(r"[^A-Za-z0-9._:-]+")
_NAME_BAD = re.compile(r"[^a-z0-9_-]+")
_NAME_MAX = 63  # the cluster file's limit on a tier or node name (a DNS label's)
_ALIAS_MAX = 128  # and on an alias
_LISTS = {"nodes", "endpoints", "models"}  # the lists an imported cluster's values sit in
_LABEL_MAX = 200  # a tier, "/" and an alias fit; a longer model_name is cut in messages, which stay short


@dataclass(frozen=True)
class _Entry:
    """One usable `model_list` entry."""

    index: int
    label: str
    tier: str | None
    alias: str
    backend: str
    kind: EndpointKind
    url: str
    host: str
    port: int


def load_litellm_config(path: str | Path) -> tuple[Any, SourceMap]:
    """Read a LiteLLM config as data with its lines.

    Raises:
        GatewayConfigError: the file is missing or not YAML (with the line).
    """
    try:
        return load_yaml(Path(path))
    except InventoryError as exc:
        raise GatewayConfigError(exc.problems) from None


def import_litellm(
    data: Any, source: SourceMap, *, name: str = "homelab", llamacpp_ports: Iterable[int] = DEFAULT_LLAMACPP_PORTS
) -> Inventory:
    """Build a cluster from a parsed LiteLLM config (see the module docstring for the rules).

    Raises:
        GatewayConfigError: every entry that cannot be imported, each as
            `FILE:LINE: model_list[i] (model_name): what is wrong`.
    """
    model_list = data.get("model_list") if isinstance(data, dict) else None
    if not isinstance(model_list, list) or not model_list:
        raise GatewayConfigError([source.problem(("model_list",), "expected a non-empty model_list")])
    problems: list[Problem] = []
    entries: list[_Entry] = []
    ports = frozenset(llamacpp_ports)
    for index, item in enumerate(model_list):
        found = _entry(index, item, source, ports)
        if isinstance(found, Problem):
            problems.append(found)
        else:
            entries.append(found)
    problems += _port_conflicts(entries, source)
    if problems:
        raise GatewayConfigError(problems)
    nodes, origins = _nodes(entries)
    try:
        return Inventory.model_validate({"version": 1, "name": name, "nodes": nodes})
    except ValidationError as exc:
        # The cluster file's rules not repeated above (a host name's labels, say) are reported
        # by the entry the refused value came from, never as a traceback.
        raise GatewayConfigError([_refused(error, origins, source) for error in exc.errors()]) from None


def _refused(error: Any, origins: list[list[list[_Entry]]], source: SourceMap) -> Problem:
    """A cluster-file rule the imported cluster breaks, as a problem of the entry behind it."""
    loc = tuple(error["loc"])
    entry = _origin(loc, origins)
    field = ".".join(part for part in loc if isinstance(part, str) and part not in _LISTS)
    why = str(error["msg"]).removeprefix("Value error, ")
    line = source.line_of(("model_list", entry.index))
    return Problem(source.file, line, entry.label, f"as a cluster file, its {field or 'entry'} is refused: {why}")


_T = TypeVar("_T")


def _origin(loc: tuple[Any, ...], origins: list[list[list[_Entry]]]) -> _Entry:
    """The entry behind `nodes[n].endpoints[e].models[m]...` (the first of its node or endpoint if shorter)."""

    def pick(items: list[_T], at: int) -> _T:
        index = loc[at] if len(loc) > at and isinstance(loc[at], int) and loc[at] < len(items) else 0
        return items[index]

    endpoints = pick(origins, 1)
    models = pick(endpoints, 3) if loc[2:3] == ("endpoints",) else endpoints[0]
    return pick(models, 5) if loc[4:5] == ("models",) else models[0]


def _label(index: int, item: Any) -> str:
    model_name = item.get("model_name") if isinstance(item, dict) else None
    if not isinstance(model_name, str) or not model_name:
        return f"model_list[{index}]"
    shown = model_name if len(model_name) <= _LABEL_MAX else f"{model_name[:_LABEL_MAX]}..."
    return f"model_list[{index}] ({shown!r})" if not shown.isprintable() else f"model_list[{index}] ({shown})"


def _entry(index: int, item: Any, source: SourceMap, llamacpp_ports: frozenset[int]) -> _Entry | Problem:
    """One entry checked and read, or the first thing wrong with it."""
    at = ("model_list", index)

    def problem(path: tuple[str, ...], message: str) -> Problem:
        return Problem(source.file, source.line_of((*at, *path)), _label(index, item), message)

    if not isinstance(item, dict):
        return problem((), "must be a mapping with model_name and litellm_params")
    model_name, params = item.get("model_name"), item.get("litellm_params")
    if not isinstance(model_name, str) or not model_name.strip():
        return problem(("model_name",), "model_name is missing")
    if "*" in model_name:
        return problem(("model_name",), "a wildcard route names no model to import: list each model")
    if not isinstance(params, dict) or not isinstance(params.get("model"), str):
        return problem(("litellm_params",), "litellm_params.model is missing")
    provider, slash, backend = params["model"].partition("/")
    if not slash or not backend:
        return problem(("litellm_params", "model"), f"no provider prefix in {params['model']!r}: expected {_known()}")
    if provider not in PROVIDER_KINDS:
        return problem(("litellm_params", "model"), f"unknown provider '{provider}/...': expected {_known()}")
    api_base = params.get("api_base")
    if not isinstance(api_base, str) or not api_base.strip():
        return problem(("litellm_params",), "no api_base: a homelab backend needs its address (http://host:port)")
    if api_base.startswith("os.environ/"):
        where = ("litellm_params", "api_base")
        return problem(where, f"api_base is an environment reference ({api_base}): give the URL")
    kind = PROVIDER_KINDS[provider]
    try:  # the endpoint drops the `/v1` of an OpenAI api_base: the cluster file keeps the server root
        endpoint = Endpoint(name="imported", kind=kind, url=api_base.strip())
    except ValidationError as exc:
        why = exc.errors()[0]["msg"].removeprefix("Value error, ")
        return problem(("litellm_params", "api_base"), f"api_base {why}")
    if kind is EndpointKind.OPENAI and endpoint.port in llamacpp_ports:
        kind = EndpointKind.LLAMACPP
    tier, slash, alias = model_name.strip().partition("/")
    if not slash:
        tier, alias = "", tier
    if len(_tier_name(tier)) > _NAME_MAX:
        return problem(
            ("model_name",), f"the tier before '/' is {len(tier)} characters; a tier name has at most {_NAME_MAX}"
        )
    host = (urlsplit(endpoint.url).hostname or "").lower()
    return _Entry(index, _label(index, item), tier or None, alias, backend, kind, endpoint.url, host, endpoint.port)


def _known() -> str:
    return ", ".join(f"{p}/" for p in PROVIDER_KINDS)


def _port_conflicts(entries: list[_Entry], source: SourceMap) -> list[Problem]:
    """Two OpenAI-compatible api_bases on one host and port but different paths cannot be one endpoint."""
    first: dict[tuple[str, int], _Entry] = {}
    problems: list[Problem] = []
    for entry in entries:
        seen = first.setdefault((entry.host, entry.port), entry)
        ollama = EndpointKind.OLLAMA in (seen.kind, entry.kind)
        if seen.url != entry.url and not ollama:
            line = source.line_of(("model_list", entry.index, "litellm_params", "api_base"))
            problems.append(
                Problem(
                    source.file,
                    line,
                    entry.label,
                    f"api_base {entry.url} shares its port with {seen.label} "
                    f"({seen.url}) but not its path: one port is one server",
                )
            )
    return problems


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


def _node_name(host: str) -> str:
    """A node name from a host: a DNS name's first label (`mark-i.home.arpa` -> `mark-i`), an IP's digits."""
    is_ip = bool(re.fullmatch(r"[\d.]+|.*:.*", host))
    label = host if is_ip else host.split(".")[0]
    return _NAME_BAD.sub("-", label.lower()).strip("-_") or "node"


def _tier_name(tier: str) -> str:
    return _NAME_BAD.sub("-", tier.lower()).strip("-_")


def _nodes(entries: list[_Entry]) -> tuple[list[dict[str, Any]], list[list[list[_Entry]]]]:
    """Entries grouped into nodes (by host) and endpoints (by port), in first-seen order.

    Returns:
        The nodes as cluster-file data, and beside them the entries behind each endpoint's
        models (`origins[node][endpoint][model]`), to name the entry a refusal comes from.
    """
    by_host: dict[str, list[_Entry]] = {}
    for entry in entries:
        by_host.setdefault(entry.host, []).append(entry)
    node_names: _Taken = {}
    aliases: _Taken = {}
    nodes, origins = [], []
    for host, group in by_host.items():
        name = _unique(_node_name(host), node_names, _NAME_MAX)
        votes = Counter(e.tier for e in group if e.tier)
        tier = _tier_name(votes.most_common(1)[0][0]) if votes else ""
        by_port = _by_port(group)
        endpoints = _endpoints(by_port, aliases)
        nodes.append({"name": name, "tier": tier or name, "host": host, "endpoints": endpoints})
        origins.append(list(by_port.values()))
    return nodes, origins


def _by_port(group: list[_Entry]) -> dict[int, list[_Entry]]:
    by_port: dict[int, list[_Entry]] = {}
    for entry in group:
        by_port.setdefault(entry.port, []).append(entry)
    return by_port


def _endpoints(by_port: dict[int, list[_Entry]], aliases: _Taken) -> list[dict[str, Any]]:
    kinds = {
        port: EndpointKind.OLLAMA if any(e.kind is EndpointKind.OLLAMA for e in es) else es[0].kind
        for port, es in by_port.items()
    }
    per_kind = Counter(kinds.values())
    endpoints = []
    for port, es in by_port.items():
        kind = kinds[port]
        url = next((e.url for e in es if e.kind is kind), es[0].url)
        models = [{"name": e.backend, "alias": _alias(e, aliases)} for e in es]
        name = kind.value if per_kind[kind] == 1 else f"{kind.value}-{port}"
        endpoints.append({"name": name, "kind": kind.value, "url": url, "models": models})
    return endpoints


def _alias(entry: _Entry, taken: _Taken) -> str:
    alias = _ALIAS_BAD.sub("-", entry.alias).lstrip("._:-") or f"model-{entry.index}"
    if alias in taken and entry.tier:
        alias = _ALIAS_BAD.sub("-", f"{entry.tier}-{alias}")
    return _unique(alias, taken, _ALIAS_MAX)


def render_inventory(inv: Inventory, source_name: str) -> str:
    """The imported cluster as YAML, with a header saying where it came from and what to add."""
    shown = source_name if source_name.isprintable() else repr(source_name)  # a newline would end the comment
    header = (
        f"# Imported from {shown} by `homelab gateway import`: a starting point.\n"
        "# Check each endpoint's kind (openai/ at a llama-server port is llamacpp), then add\n"
        "# experts, ssh, gpus and the gateway endpoint; `homelab validate` checks the result.\n"
    )
    data = {"version": 1, "name": inv.name} | inv.model_dump(mode="json", exclude_defaults=True)
    return header + yaml.safe_dump(data, sort_keys=False, default_flow_style=False, allow_unicode=True, width=4096)
