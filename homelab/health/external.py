"""External models in a sweep: listed as "external", probed only when the owner asks.

An external model (`gateway.external` in the cluster file: a cloud API, a wildcard, a server
behind an environment reference) is not homelab's to run, so by default the sweep only lists it:
probing a cloud API costs a request against someone's quota, and its answer says nothing about
the cluster. With `gateway.probe_external: true` (or `homelab sweep --probe-external`) an
external model with an `api_base` is probed as an OpenAI-compatible server; its result is
shown beside the cluster's, and never counts in a tier's or the cluster's verdict.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Mapping

import httpx
from pydantic import Field

from homelab.frozen import Frozen
from homelab.health.probe import DEFAULT_PROBE_LIMITS, ProbeLimits, ProbeResult, probe_endpoint
from homelab.inventory import Endpoint, EndpointKind, Inventory, Node
from homelab.inventory.gateway import ExternalModel, env_name
from homelab.redact import redact_url

__all__ = ["EXTERNAL_STATE", "ExternalResult", "sweep_external"]

EXTERNAL_STATE = "external"  # the state shown for an external model that is not probed
_NAME_BAD = re.compile(r"[^a-z0-9_-]+")
_NAME_MAX = 63


class ExternalResult(Frozen):
    """One external model as the sweep shows it."""

    model_name: str
    provider: str
    api_base: str | None = Field(None, description="as written (an os.environ/ reference stays one), user-info removed")
    probe: ProbeResult | None = Field(None, description="set only when external models are probed")
    note: str = Field(description="why it was not probed, or what probing it found")

    @property
    def state(self) -> str:
        """`external` when not probed, else the probe's UP/SLOW/DOWN."""
        return EXTERNAL_STATE if self.probe is None else self.probe.state.value


def _shown(api_base: str | None) -> str | None:
    return api_base if api_base is None or env_name(api_base) else redact_url(api_base)


def _target(model: ExternalModel, environ: Mapping[str, str]) -> str:
    """The URL to probe, or why there is none (prefixed `!`)."""
    api_base = model.api_base
    if api_base is None:
        return f"!no api_base: the {model.provider} provider's own API is not probed"
    name = env_name(api_base)
    if name is not None:
        if not environ.get(name):
            return f"!api_base {api_base}: {name} is not set here"
        api_base = environ[name]
    return api_base


async def _probe(
    inv: Inventory, model: ExternalModel, client: httpx.AsyncClient, environ: Mapping[str, str], limits: ProbeLimits
) -> ExternalResult:
    shown = {"model_name": model.model_name, "provider": model.provider, "api_base": _shown(model.api_base)}
    target = _target(model, environ)
    if target.startswith("!"):
        return ExternalResult(**shown, note=target[1:])
    label = _NAME_BAD.sub("-", model.model_name.lower()).strip("-_")[:_NAME_MAX] or "external"
    try:  # probed as an OpenAI-compatible server at its root: the endpoint drops a trailing /v1
        node = Node(name="external", tier="external", host=httpx.URL(target).host or "external")
        endpoint = Endpoint(name=label, kind=EndpointKind.OPENAI, url=target)
    except (ValueError, httpx.InvalidURL) as exc:
        return ExternalResult(**shown, note=f"api_base cannot be probed: {str(exc).splitlines()[-1]}")
    result = await probe_endpoint(client, node, endpoint, inv.defaults.probe, limits)
    return ExternalResult(**shown, probe=result, note=result.detail or result.reason.value)


async def sweep_external(
    inv: Inventory,
    client: httpx.AsyncClient,
    *,
    probe: bool | None = None,
    environ: Mapping[str, str] | None = None,
    limits: ProbeLimits = DEFAULT_PROBE_LIMITS,
) -> list[ExternalResult]:
    """Every external model of the cluster file, probed concurrently when asked.

    Args:
        inv: the cluster; its `gateway.external` list.
        client: the probe client.
        probe: probe them; None follows the file's `gateway.probe_external`.
        environ: where `os.environ/NAME` api_bases are read (default: this process's environment).
        limits: the probes' limits.
    """
    if inv.gateway is None or not inv.gateway.external:
        return []
    if not (inv.gateway.probe_external if probe is None else probe):
        note = "not probed (gateway.probe_external is off)"
        return [
            ExternalResult(model_name=m.model_name, provider=m.provider, api_base=_shown(m.api_base), note=note)
            for m in inv.gateway.external
        ]
    env = os.environ if environ is None else environ
    return list(await asyncio.gather(*(_probe(inv, m, client, env, limits) for m in inv.gateway.external)))
