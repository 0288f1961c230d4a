"""The owner's LiteLLM settings laid over homelab's own, for the generated proxy config.

`homelab gateway config` derives some settings from the cluster file (fallbacks from the
experts, hidden aliases, `drop_params`, the master key's reference) and the cluster file may
keep the owner's own (`gateway.settings`, usually imported from the config they ran before).
The owner's value wins for every key; lists of fallbacks are merged by model, the owner's
entries first and as written; `callbacks` keep the owner's and add homelab's hook.

Where fallbacks live matters: LiteLLM's router takes `router_settings.fallbacks` and only when
that is empty falls back to `litellm_settings.fallbacks` (litellm/router.py:1442 in 1.108.7,
`fallbacks or litellm.fallbacks`), so homelab's are merged into whichever section the owner
used, never written beside them where they would hide the owner's.
"""

from __future__ import annotations

from typing import Any

from homelab.inventory.gateway import GatewaySettings

__all__ = ["merge_fallbacks", "merge_settings", "timeout_keys_set"]

_CALLBACKS = "callbacks"


def merge_fallbacks(owners: Any, derived: dict[str, list[str]]) -> list[Any]:
    """The owner's fallback entries as written, then homelab's for models the owner's do not name."""
    entries = list(owners) if isinstance(owners, list) else []
    named = {head for entry in entries if isinstance(entry, dict) for head in entry}
    return entries + [{head: tail} for head, tail in sorted(derived.items()) if head not in named]


def merge_settings(
    settings: GatewaySettings,
    router: dict[str, Any],
    litellm: dict[str, Any],
    general: dict[str, Any],
    derived_fallbacks: dict[str, list[str]],
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """homelab's router, litellm and general settings with the owner's laid over them.

    Args:
        settings: the owner's, from the cluster file.
        router, litellm, general: homelab's own, without fallbacks.
        derived_fallbacks: homelab's fallbacks (from the experts), `first -> [rest]`.
    """
    router = _overlay(router, settings.router_settings)
    litellm = _overlay(litellm, settings.litellm_settings)
    # homelab's fallbacks go where the owner's are (router_settings, the usual place, else litellm_settings)
    where = litellm if litellm.get("fallbacks") and not router.get("fallbacks") else router
    where["fallbacks"] = merge_fallbacks(where.get("fallbacks"), derived_fallbacks)
    return router, litellm, _overlay(general, settings.general_settings)


def _overlay(ours: dict[str, Any], owners: dict[str, Any]) -> dict[str, Any]:
    """`ours | owners`, except that a mapping present in both is merged one level (owner's keys
    win) and the callbacks lists are joined (owner's first, then ours not already there)."""
    merged = dict(ours)
    for key, value in owners.items():
        mine = merged.get(key)
        if key == _CALLBACKS and isinstance(mine, list) and isinstance(value, list):
            merged[key] = [*value, *(c for c in mine if c not in value)]
        elif isinstance(mine, dict) and isinstance(value, dict):
            merged[key] = mine | value
        else:
            merged[key] = value
    return merged


def timeout_keys_set(settings: GatewaySettings) -> tuple[bool, bool]:
    """Whether the owner set a proxy-wide request timeout, and a stream timeout.

    Then homelab writes no per-model default: a per-model `timeout` beats the global one, and
    would quietly replace the owner's.
    """
    router, litellm = settings.router_settings, settings.litellm_settings
    return ("timeout" in router or "request_timeout" in litellm), "stream_timeout" in router
