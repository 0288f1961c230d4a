"""A cluster file from a LiteLLM proxy config the user already has, losing nothing of it.

Most homelabs that want this tool already run LiteLLM, and its `model_list` names every
backend: where it answers and what it serves. Reading that saves typing the inventory by hand;
what homelab does not manage is kept so `homelab gateway config` gives it back unchanged.

The rules, in the order they apply to each `model_list` entry:

- an entry is *managed* when its provider is one homelab runs (`ollama/`, `ollama_chat/`,
  `openai/`) at an api_base it can reach. Every other entry (a cloud model such as `gpt-4o`,
  `anthropic/...`, `gemini/...`, `openai/...` with no api_base, a wildcard, an api_base that
  is an `os.environ/` reference) is *external*: kept as written under `gateway.external`.
  With `resolve_env`, an `os.environ/NAME` api_base is read from the environment first (an
  unset NAME is an error naming the entry);
- the provider prefix gives the kind: `ollama/` and `ollama_chat/` are `ollama`; `openai/` is
  `llamacpp` when its port is one of `llamacpp_ports` (8080, llama-server's default), else
  `openai`. A `/v1` at the end of api_base is dropped: the cluster file keeps the server root;
- entries are grouped into nodes by api_base host, and into endpoints by port; an Ollama
  entry makes its port an `ollama` endpoint (Ollama also answers `openai/` at `/v1`);
- entries with the same `model_name` are one LiteLLM model group: replicas of one alias, one
  per endpoint (an exact repeat of an entry is merged; a second model under that name on one
  endpoint is kept as external, since an endpoint serves an alias once);
- `model_name` `tier/alias` gives the alias and votes for its node's tier (most votes wins,
  the first seen on a tie; a node without votes is its own tier). An alias already taken gets
  its tier as a prefix (`nas-chat`). When the name homelab would derive differs from the
  entry's, the model keeps it as `gateway.model_name`;
- the rest of an entry (`rpm`, `weight`, `timeout`, `model_info`) goes to the model's
  `gateway.params` and `gateway.info`; `model_info.mode: embedding` also declares the
  `embedding` capability, and a config's only embedding model is the `embed` expert.

`router_settings`, `litellm_settings` and `general_settings` are kept under `gateway.settings`.
Secrets are never copied as values: a secret key (LiteLLM's own test, `homelab.inventory.gateway`)
that holds a literal is left out and reported in a note; an `os.environ/` reference is kept.
Experts (other than embed), SSH, GPUs and the gateway's own endpoint are not in a LiteLLM
config: add them afterwards.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import yaml
from pydantic import ValidationError

from homelab.errors import GatewayConfigError, InventoryError, Problem
from homelab.gateway.config import gateway_model_names
from homelab.gateway.import_extras import External, entry_label, gateway_section, read_external
from homelab.gateway.import_nodes import EMBEDDING, NAME_MAX, Entry, assign_aliases, group_nodes, tier_name
from homelab.inventory import Endpoint, EndpointKind, Inventory
from homelab.inventory.gateway import HOMELAB_PARAMS, env_name
from homelab.yaml_source import SourceMap, load_yaml

__all__ = [
    "DEFAULT_LLAMACPP_PORTS",
    "PROVIDER_KINDS",
    "import_litellm",
    "import_litellm_with_notes",
    "load_litellm_config",
    "render_inventory",
]

DEFAULT_LLAMACPP_PORTS = frozenset({8080})
PROVIDER_KINDS: dict[str, EndpointKind] = {
    "ollama": EndpointKind.OLLAMA,
    "ollama_chat": EndpointKind.OLLAMA,
    "openai": EndpointKind.OPENAI,  # or llamacpp, by port
}
_LISTS = {"nodes", "endpoints", "models"}  # the lists an imported cluster's values sit in


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
    data: Any,
    source: SourceMap,
    *,
    name: str = "homelab",
    llamacpp_ports: Iterable[int] = DEFAULT_LLAMACPP_PORTS,
    resolve_env: bool = False,
    environ: Mapping[str, str] | None = None,
) -> Inventory:
    """`import_litellm_with_notes` without its notes."""
    return import_litellm_with_notes(
        data, source, name=name, llamacpp_ports=llamacpp_ports, resolve_env=resolve_env, environ=environ
    )[0]


def import_litellm_with_notes(
    data: Any,
    source: SourceMap,
    *,
    name: str = "homelab",
    llamacpp_ports: Iterable[int] = DEFAULT_LLAMACPP_PORTS,
    resolve_env: bool = False,
    environ: Mapping[str, str] | None = None,
) -> tuple[Inventory, list[str]]:
    """Build a cluster from a parsed LiteLLM config (see the module docstring for the rules).

    Args:
        data, source: the config and its lines (`load_litellm_config`).
        name: the cluster's name.
        llamacpp_ports: `openai/` ports that are llama-servers.
        resolve_env: read `os.environ/NAME` api_bases from `environ` (default: this process's).

    Returns:
        The cluster, and notes for its owner: secrets left out, entries merged or kept external.

    Raises:
        GatewayConfigError: every entry or section that cannot be imported, each as
            `FILE:LINE: model_list[i] (model_name): what is wrong`.
    """
    model_list = data.get("model_list") if isinstance(data, dict) else None
    if not isinstance(model_list, list) or not model_list:
        raise GatewayConfigError([source.problem(("model_list",), "expected a non-empty model_list")])
    env = (os.environ if environ is None else environ) if resolve_env else None
    entries, external, notes, problems = _read_entries(model_list, source, frozenset(llamacpp_ports), env)
    problems += _port_conflicts(entries, source)
    entries, moved, merged = _one_per_endpoint(entries)
    external = sorted(external + [read_external(e.index, model_list[e.index], env)[0] for e in moved], key=_at)
    notes += merged + [f"{e.label}: another model named {e.model_name!r} on its endpoint: kept external" for e in moved]
    if not entries and not problems:
        why = "no entry is a server homelab runs (ollama/, ollama_chat/ or openai/ at an api_base URL)"
        problems.append(source.problem(("model_list",), f"{why}: nothing to start a cluster file from"))
    gateway, gateway_notes, gateway_problems = gateway_section(data, external, source)
    problems += gateway_problems
    if problems:
        raise GatewayConfigError(problems)
    inv = _inventory(name, entries, gateway, source)
    embedders = list(dict.fromkeys(m.alias for _, e in inv.endpoints() for m in e.models if m.capabilities))
    if len(embedders) > 1:
        notes.append(
            f"embedding models {', '.join(sorted(embedders))}: list those that share a vector space under experts.embed"
        )
    return inv, notes + gateway_notes


def _read_entries(
    model_list: list[Any], source: SourceMap, ports: frozenset[int], env: Mapping[str, str] | None
) -> tuple[list[Entry], list[External], list[str], list[Problem]]:
    """Each entry read: managed, external, or a problem; with the notes on what was left out."""
    entries: list[Entry] = []
    external: list[External] = []
    notes: list[str] = []
    problems: list[Problem] = []
    for index, item in enumerate(model_list):
        found = _entry(index, item, source, ports, env)
        if isinstance(found, Problem):
            problems.append(found)
            continue
        notes += found.notes
        if isinstance(found, External):
            external.append(found)
        else:
            entries.append(found)
    return entries, external, notes, problems


def _at(external: External) -> int:
    return external.index


def _inventory(name: str, entries: list[Entry], gateway: dict[str, Any] | None, source: SourceMap) -> Inventory:
    """The cluster from managed entries, with each model's gateway model_name where homelab's would differ."""
    entries = assign_aliases(entries)
    embedders = list(dict.fromkeys(e.alias for e in entries if e.info.get("mode") == EMBEDDING))
    cluster: dict[str, Any] = {"version": 1, "name": name}
    if (
        len(embedders) == 1
    ):  # with several, which share a vector space (and may stand in for each other) is the owner's word
        cluster["experts"] = {"embed": embedders}
    if gateway:
        cluster["gateway"] = gateway
    for named in (False, True):  # first without model_names, to learn the names homelab derives
        nodes, origins = group_nodes(entries)
        try:
            inv = Inventory.model_validate(cluster | {"nodes": nodes})
        except ValidationError as exc:
            # The cluster file's rules not repeated above (a host name's labels, say) are reported
            # by the entry the refused value came from, never as a traceback.
            raise GatewayConfigError([_refused(error, origins, source) for error in exc.errors()]) from None
        if named:
            break
        derived = gateway_model_names(inv)
        entries = [replace(e, keep_name=derived.get(e.alias) != e.model_name) for e in entries]
    return inv


def _refused(error: Any, origins: list[list[list[Entry]]], source: SourceMap) -> Problem:
    """A cluster-file rule the imported cluster breaks, as a problem of the entry behind it."""
    loc = tuple(error["loc"])
    why = str(error["msg"]).removeprefix("Value error, ")
    if not loc or loc[0] != "nodes" or not origins:
        return Problem(source.file, None, ".".join(map(str, loc)), f"as a cluster file, refused: {why}")
    entry = _origin(loc, origins)
    fields = ".".join(part for part in loc if isinstance(part, str) and part not in _LISTS)
    line = source.line_of(("model_list", entry.index))
    return Problem(source.file, line, entry.label, f"as a cluster file, its {fields or 'entry'} is refused: {why}")


_T = TypeVar("_T")


def _origin(loc: tuple[Any, ...], origins: list[list[list[Entry]]]) -> Entry:
    """The entry behind `nodes[n].endpoints[e].models[m]...` (the first of its node or endpoint if shorter)."""

    def pick(items: list[_T], at: int) -> _T:
        index = loc[at] if len(loc) > at and isinstance(loc[at], int) and loc[at] < len(items) else 0
        return items[index]

    endpoints = pick(origins, 1)
    models = pick(endpoints, 3) if loc[2:3] == ("endpoints",) else endpoints[0]
    return pick(models, 5) if loc[4:5] == ("models",) else models[0]


def _entry(
    index: int, item: Any, source: SourceMap, llamacpp_ports: frozenset[int], environ: Mapping[str, str] | None
) -> Entry | External | Problem:
    """One entry checked and read: managed, external, or the first thing wrong with it."""
    at = ("model_list", index)

    def problem(path: tuple[str, ...], message: str) -> Problem:
        return Problem(source.file, source.line_of((*at, *path)), entry_label(index, item), message)

    if not isinstance(item, dict):
        return problem((), "must be a mapping with model_name and litellm_params")
    model_name, params = item.get("model_name"), item.get("litellm_params")
    if not isinstance(model_name, str) or not model_name.strip():
        return problem(("model_name",), "model_name is missing")
    if not isinstance(params, dict) or not isinstance(params.get("model"), str) or not params["model"]:
        return problem(("litellm_params",), "litellm_params.model is missing")
    if not isinstance(item.get("model_info", {}), dict):
        return problem(("model_info",), "model_info must be a mapping")
    external, why = read_external(index, item, environ)
    if why is not None:
        return problem(("litellm_params", "api_base"), why)
    provider, slash, backend = params["model"].partition("/")
    # resolved when asked; a URL with a password is out of `external`, and refused below as an endpoint's
    api_base = external.litellm_params.get("api_base", params.get("api_base"))
    if not slash or provider not in PROVIDER_KINDS or "*" in model_name + backend or api_base is None:
        return external  # not homelab's to run: a cloud API, a wildcard, the provider's default address
    if not isinstance(api_base, str) or not api_base.strip() or env_name(api_base) is not None:
        return external if env_name(api_base) else problem(("litellm_params", "api_base"), "api_base must be a URL")
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
    if len(tier_name(tier)) > NAME_MAX:
        return problem(
            ("model_name",), f"the tier before '/' is {len(tier)} characters; a tier name has at most {NAME_MAX}"
        )
    host = (urlsplit(endpoint.url).hostname or "").lower()
    extra = {k: v for k, v in external.litellm_params.items() if k not in HOMELAB_PARAMS}
    info = external.model_info or {}
    label = entry_label(index, item)
    args = (index, label, model_name, tier or None, alias, backend, kind, endpoint.url, host, endpoint.port)
    return Entry(*args, params=extra, info=info, model=params["model"], notes=external.notes)


def _port_conflicts(entries: list[Entry], source: SourceMap) -> list[Problem]:
    """Two OpenAI-compatible api_bases on one host and port but different paths cannot be one endpoint."""
    first: dict[tuple[str, int], Entry] = {}
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


def _one_per_endpoint(entries: list[Entry]) -> tuple[list[Entry], list[Entry], list[str]]:
    """A model_name once per endpoint: exact repeats merged (with a note), other second models moved out."""
    first: dict[tuple[str, str, int], Entry] = {}
    kept: list[Entry] = []
    moved: list[Entry] = []
    notes: list[str] = []
    for entry in entries:
        seen = first.setdefault((entry.model_name, entry.host, entry.port), entry)
        if seen is entry:
            kept.append(entry)
        elif (seen.model, seen.url, seen.params, seen.info) == (entry.model, entry.url, entry.params, entry.info):
            notes.append(f"{entry.label}: the same deployment as {seen.label}: merged")
        else:
            moved.append(entry)
    return kept, moved, notes


def render_inventory(inv: Inventory, source_name: str, notes: Iterable[str] = ()) -> str:
    """The imported cluster as YAML, with a header saying where it came from, what to add, and the notes."""
    shown = source_name if source_name.isprintable() else repr(source_name)  # a newline would end the comment
    header = (
        f"# Imported from {shown} by `homelab gateway import`: a starting point.\n"
        "# Check each endpoint's kind (openai/ at a llama-server port is llamacpp), then add\n"
        "# experts, ssh, gpus and the gateway endpoint; `homelab validate` checks the result.\n"
    )
    header += "".join(f"# note: {_comment(note)}\n" for note in _capped(list(notes)))
    data = {"version": 1, "name": inv.name} | inv.model_dump(mode="json", exclude_defaults=True)
    return header + yaml.safe_dump(data, sort_keys=False, default_flow_style=False, allow_unicode=True, width=4096)


_NOTES_SHOWN = 50  # a config of ten thousand entries with literal keys gets a header, not a book


def _capped(notes: list[str]) -> list[str]:
    more = len(notes) - _NOTES_SHOWN
    return notes if more <= 0 else [*notes[:_NOTES_SHOWN], f"... and {more} more"]


def _comment(note: str) -> str:
    return note if note.isprintable() else repr(note)
