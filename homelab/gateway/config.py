"""The LiteLLM proxy config, generated from the cluster file: one model per served alias.

The proxy is the cluster's single OpenAI-compatible API, so its config must follow the
inventory exactly; writing it by hand drifts. The output is deterministic (same inventory,
same bytes: lists sorted, keys in a fixed order, a header saying it is generated) so it can be
diffed, committed, and checked against the file a running proxy uses (`check_config`).

Naming: each model is `<tier>/<alias>` (`primary/chat`, `nas/nas-coder`): unique because
aliases are, and it tells a client which tier answers. The plain alias (`chat`) is mapped to
the same model as a hidden `model_group_alias`, so a client that names the alias keeps working
when a rollout moves the model to another tier; it is hidden so `/v1/models` lists each model
once. `auto` is listed too: the auto-routing hook (`homelab.gateway.autoroute`) picks the expert
(so, with auto-routing on, a model whose alias is `auto` is reached only as `<tier>/auto`).
A model's `gateway.model_name` in the cluster file replaces the derived name.

Replicas (one alias on several endpoints) are one entry each under one `model_name`: LiteLLM
groups deployments by model_name and balances over the healthy ones (`Router.set_model_list`
indexes them in `model_name_to_deployment_indices`, litellm/router.py:10313-10720 in 1.108.7;
the `routing_strategy` picks among them). Their name is `<tier>/<alias>` when they share a tier,
else the plain alias.

What the cluster file keeps that homelab does not manage (`gateway.external` entries, the
owner's `gateway.settings`, a model's own `gateway.params`) is passed in unchanged
(`homelab.gateway.passthrough` says how settings are merged).
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field
from pydantic.main import IncEx

from homelab.files import read_regular, write_atomic
from homelab.gateway.passthrough import merge_settings, timeout_keys_set
from homelab.inventory import Capability, Category, Endpoint, EndpointKind, Inventory, Node, ServedModel
from homelab.inventory.gateway import GatewaySettings, env_name

__all__ = [
    "AUTOROUTE_CALLBACK",
    "AUTOROUTE_SETTINGS_KEY",
    "AUTO_MODEL",
    "CONFIG_LIMIT_BYTES",
    "DEFAULT_GATEWAY_TIMEOUTS",
    "MASTER_KEY_ENV",
    "PLACEHOLDER_API_KEY",
    "GatewayTimeouts",
    "build_config",
    "check_config",
    "gateway_model_name",
    "gateway_model_names",
    "litellm_params",
    "regenerate_config",
    "render_config",
    "write_config",
]

AUTO_MODEL = "auto"
AUTOROUTE_CALLBACK = "homelab.gateway.autoroute.proxy_handler_instance"
AUTOROUTE_SETTINGS_KEY = "homelab_autoroute"  # under the config's `callback_settings`
MASTER_KEY_ENV = "LITELLM_MASTER_KEY"
# LiteLLM's openai provider refuses to call without an api_key, even for a server that asks
# for none. llama-server ignores the header unless started with --api-key, so a fixed,
# obviously-fake value is safe to write into a generated (committed, diffed) file.
PLACEHOLDER_API_KEY = "sk-no-key-required"
# A proxy config is a few KB per model; a file far past that is not one (or is /dev/zero).
CONFIG_LIMIT_BYTES = 10 << 20
# An embedding expert is health-checked by LiteLLM with an embedding call, not a chat call.
_EMBEDDING_MODE = "embedding"


class GatewayTimeouts(BaseModel):
    """How long the proxy waits on a backend, in seconds.

    `request_s` bounds a whole non-streaming answer (a 14B model on a CPU tier may take
    minutes); `stream_s` bounds the wait between chunks of a streamed one, so a hung server
    is given up on long before `request_s`. The proxy's own health check of a model uses the
    endpoint's probe `total_s` from the cluster file, the budget homelab's probes give it.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    request_s: float = Field(600.0, gt=0)
    stream_s: float = Field(120.0, gt=0)


DEFAULT_GATEWAY_TIMEOUTS = GatewayTimeouts()


def gateway_model_name(node: Node, model: ServedModel) -> str:
    """The name clients use at the gateway for a model served once: `<tier>/<alias>`, or its own."""
    return model.gateway.model_name if model.gateway and model.gateway.model_name else f"{node.tier}/{model.alias}"


def gateway_model_names(inv: Inventory) -> dict[str, str]:
    """Every alias the gateway serves -> the one model_name of its replicas (see the module docstring)."""
    replicas: dict[str, list[tuple[Node, ServedModel]]] = {}
    for node, endpoint in inv.endpoints():
        if endpoint.kind is not EndpointKind.LITELLM:
            for model in endpoint.models:
                replicas.setdefault(model.alias, []).append((node, model))
    names = {}
    for alias, served in replicas.items():
        own = next((m.gateway.model_name for _, m in served if m.gateway and m.gateway.model_name), None)
        tiers = {node.tier for node, _ in served}
        names[alias] = own or (gateway_model_name(*served[0]) if len(tiers) == 1 else alias)
    return names


def litellm_params(endpoint: Endpoint, model: ServedModel, *, embedding: bool = False) -> dict[str, str] | None:
    """The provider model and api_base for one served model; None for a LiteLLM endpoint.

    Ollama goes through `ollama_chat/`, LiteLLM's provider for Ollama's own `/api/chat`
    (tools, images and system prompts pass through as Ollama expects), with the bare server
    URL; an embedding model through `ollama/`, the only Ollama provider LiteLLM embeds with
    (`/api/embed`). llama.cpp and other OpenAI-compatible servers go through `openai/`, whose client
    appends `/chat/completions` to api_base, so api_base must end in `/v1` (the inventory keeps
    the server root, which is what the health probes need). A `litellm` endpoint is the
    gateway itself: listing it in its own config would loop. A model's own `gateway.provider`
    (an import keeps the one its entry had: `openai/` to Ollama's `/v1`, say) wins.
    """
    if endpoint.kind is EndpointKind.LITELLM:
        return None
    own = model.gateway.provider if model.gateway else None
    if own == "openai" or (own is None and endpoint.kind is not EndpointKind.OLLAMA):
        return {"model": f"openai/{model.name}", "api_base": f"{endpoint.url}/v1", "api_key": PLACEHOLDER_API_KEY}
    provider = own or ("ollama" if embedding else "ollama_chat")
    return {"model": f"{provider}/{model.name}", "api_base": endpoint.url}


def _served(inv: Inventory) -> list[tuple[str, Node, Endpoint, ServedModel]]:
    """Every model the gateway serves, replicas each, as (gateway name, node, endpoint, model), by name."""
    names = gateway_model_names(inv)
    rows = [
        (names[model.alias], node, endpoint, model)
        for node, endpoint in inv.endpoints()
        if endpoint.kind is not EndpointKind.LITELLM
        for model in endpoint.models
    ]
    return sorted(rows, key=lambda row: (row[0], row[1].name, row[2].name))


def _chains(inv: Inventory, names: dict[str, str]) -> dict[Category, list[str]]:
    """The experts map in gateway names, in Category order, without aliases the gateway lacks."""
    chains = {c: [names[a] for a in inv.experts.get(c, []) if a in names] for c in Category}
    return {c: chain for c, chain in chains.items() if chain}


def _fallbacks(chains: dict[Category, list[str]]) -> dict[str, list[str]]:
    """Each chain as `first -> [rest]`.

    LiteLLM keys fallbacks by model, so two chains with the same first model (`code: [coder,
    general]`, `fast: [coder, quick]`) share one list: their tails are merged in Category
    order without repeats (`coder -> [general, quick]`).
    """
    merged: dict[str, list[str]] = {}
    for chain in chains.values():
        head, rest = chain[0], chain[1:]
        tail = merged.setdefault(head, [])
        tail += [name for name in rest if name not in tail and name != head]
    return {head: tail for head, tail in sorted(merged.items()) if tail}


def _embeds(model: ServedModel, embedders: set[str]) -> bool:
    """An embed expert, a model whose capabilities are only `embedding`, or one its gateway entry says embeds."""
    declared = model.capabilities == [Capability.EMBEDDING]
    said = model.gateway is not None and model.gateway.info.get("mode") == _EMBEDDING_MODE
    return model.alias in embedders or declared or said


def _model_entry(
    name: str, inv: Inventory, endpoint: Endpoint, model: ServedModel, embedding: bool, timeouts: GatewayTimeouts
) -> dict[str, Any]:
    params: dict[str, Any] = dict(litellm_params(endpoint, model, embedding=embedding) or {})
    global_request, global_stream = timeout_keys_set(inv.gateway.settings) if inv.gateway else (False, False)
    params |= {} if global_request else {"timeout": timeouts.request_s}
    params |= {} if global_stream else {"stream_timeout": timeouts.stream_s}
    info: dict[str, Any] = {"health_check_timeout": inv.probe_settings(endpoint).total_s}
    if embedding:
        info["mode"] = _EMBEDDING_MODE
    if model.gateway is not None:  # the owner's own values win
        params |= model.gateway.params
        info |= model.gateway.info
    return {"model_name": name, "litellm_params": params, "model_info": info}


def _autoroute_inventory(inv: Inventory, served: set[str]) -> dict[str, Any]:
    """What the auto-routing hook needs, in the cluster file's own schema (so the hook reuses
    its loader and the probes): serving nodes and endpoints, probe defaults, and the experts
    the gateway serves (`served` aliases).

    SSH, wake, containers, models' deploy sections, GPUs, secrets and history are left out: the
    proxy needs none of them, and the fewer references to the rest of the cluster it carries, the better.
    """
    keep: dict[str, IncEx | bool] = {
        "name": True,
        "kind": True,
        "url": True,
        "probe": True,
        # declared capabilities decide routing; a model_name of its own names the hook's choice
        "models": {"__all__": {"name": True, "alias": True, "capabilities": True, "gateway": {"model_name": True}}},
    }
    nodes = []
    for node in inv.nodes:
        endpoints = [
            e.model_dump(mode="json", include=keep, exclude_none=True)
            for e in node.endpoints
            if e.kind is not EndpointKind.LITELLM and e.models
        ]
        if endpoints:
            nodes.append({"name": node.name, "tier": node.tier, "host": node.host, "endpoints": endpoints})
    return {
        "name": inv.name,
        "defaults": inv.defaults.model_dump(mode="json"),
        "nodes": nodes,
        "experts": {
            c.value: [a for a in inv.experts[c] if a in served]
            for c in Category
            if any(a in served for a in inv.experts.get(c, []))
        },
    }


def build_config(
    inv: Inventory, *, autoroute: bool = True, timeouts: GatewayTimeouts = DEFAULT_GATEWAY_TIMEOUTS
) -> dict[str, Any]:
    """The LiteLLM proxy config for `inv`, as plain data in a fixed order.

    Args:
        inv: the validated cluster.
        autoroute: add `auto` and the homelab hook; turn off for a proxy whose Python
            environment lacks homelab (LiteLLM's own Docker image), which would fail to start.
        timeouts: per-model request and stream timeouts.

    Returns:
        `model_list`, `router_settings` (fallbacks from the experts, the plain-alias and
        `auto` aliases), `litellm_settings`, `general_settings`, and for auto-routing the
        hook's `callback_settings`.
    """
    served = _served(inv)
    names = {model.alias: name for name, _, _, model in served}
    embedders = set(inv.experts.get(Category.EMBED, []))
    chains = _chains(inv, names)
    model_list = [_model_entry(n, inv, e, m, _embeds(m, embedders), timeouts) for n, _, e, m in served]
    external = [m.model_dump(mode="json", exclude_none=True) for m in inv.gateway.external] if inv.gateway else []
    listed = {entry["model_name"] for entry in model_list + external}
    # A plain alias that is a model_name itself needs no alias (and one would shadow that model).
    aliases: dict[str, Any] = {a: {"model": names[a], "hidden": True} for a in sorted(names) if a not in listed}
    autoroute = autoroute and bool(chains)
    if autoroute:
        default = chains.get(Category.CHAT) or next(iter(chains.values()))
        aliases[AUTO_MODEL] = {"model": default[0], "hidden": False}
    fallbacks = _fallbacks(chains)
    # A client that names the plain alias gets the same fallbacks: LiteLLM looks them up by
    # the name asked for, before it resolves the alias.
    fallbacks |= {
        alias: fallbacks[name] for alias, name in sorted(names.items()) if name in fallbacks and alias in aliases
    }
    # A dead backend refuses at once; the next expert beats retrying the dead one.
    router: dict[str, Any] = {"num_retries": 0, "fallbacks": [], "model_group_alias": dict(sorted(aliases.items()))}
    # drop_params: an OpenAI client's parameter that Ollama lacks (`parallel_tool_calls`)
    # is dropped, not answered with a 400 the user cannot fix.
    settings: dict[str, Any] = {"telemetry": False, "drop_params": True}
    if autoroute:
        settings["callbacks"] = [AUTOROUTE_CALLBACK]
    general = {"master_key": f"os.environ/{MASTER_KEY_ENV}"}
    owners = inv.gateway.settings if inv.gateway else GatewaySettings()
    router, settings, general = merge_settings(owners, router, settings, general, fallbacks)
    config: dict[str, Any] = {
        "model_list": model_list + external,
        "router_settings": router,
        "litellm_settings": settings,
        "general_settings": general,
    }
    if autoroute:
        config["callback_settings"] = {AUTOROUTE_SETTINGS_KEY: {"inventory": _autoroute_inventory(inv, set(names))}}
    return config


def _header(inv: Inventory) -> str:
    owners = inv.gateway.settings.general_settings.get("master_key") if inv.gateway else None
    master_key = env_name(owners) or MASTER_KEY_ENV  # the owner's reference, when the cluster file keeps one
    return (
        f"# LiteLLM proxy config for the cluster {inv.name!r}, generated by `homelab gateway config`.\n"
        "# Do not edit: change the cluster file and generate it again; `homelab gateway config --check\n"
        "# FILE` says whether this file is out of date. Secrets are environment references\n"
        f"# (os.environ/...), never values: start the proxy with {master_key} set.\n"
    )


class _Dumper(yaml.SafeDumper):
    """Writes a list as often as it appears: anchors (`&id001`) would make the file hard to read."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def render_config(
    inv: Inventory, *, autoroute: bool = True, timeouts: GatewayTimeouts = DEFAULT_GATEWAY_TIMEOUTS
) -> str:
    """`build_config` as YAML text with its header: the same inventory always gives the same bytes."""
    body = yaml.dump(
        build_config(inv, autoroute=autoroute, timeouts=timeouts),
        Dumper=_Dumper,
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
        width=4096,
    )
    return _header(inv) + body


def check_config(expected: str, actual: str, actual_name: str) -> list[str]:
    """The unified diff from `actual` (the file a proxy runs with) to `expected`; empty when equal."""
    return list(
        difflib.unified_diff(
            actual.splitlines(keepends=True),
            expected.splitlines(keepends=True),
            fromfile=actual_name,
            tofile="generated from the cluster file",
        )
    )


def write_config(inv: Inventory, path: Path, *, autoroute: bool = True) -> bool:
    """Write the config to `path` when it differs from what is there; True when it changed.

    The new text is written atomically (`homelab.files.write_atomic`), so a proxy (re)starting
    meanwhile reads the old file or the new one, never half of one. A new file gets mode 0644:
    it holds no secrets (environment references only) and the proxy's user reads it.

    Raises:
        FileAccessError: what is at `path` is not a regular file (a FIFO would block the
            comparison forever), is a symlink, or cannot be replaced (the message says why).
    """
    data = render_config(inv, autoroute=autoroute).encode("utf-8")
    if (path.exists() or path.is_symlink()) and read_regular(path, limit_bytes=CONFIG_LIMIT_BYTES) == data:
        return False
    write_atomic(path, data)
    return True


def regenerate_config(inv: Inventory, path: Path) -> str:
    """`write_config` after a rollout, said in a sentence for its report."""
    if write_config(inv, path):
        return f"{path} regenerated; restart the proxy to load it"
    return f"{path} up to date"
