"""Auto-routing inside the LiteLLM proxy: a request for model `auto` goes to the best healthy expert.

The generated config names `homelab.gateway.autoroute.proxy_handler_instance` under
`litellm_settings.callbacks`; LiteLLM resolves that dotted name with `getattr` at startup and
calls the handler's `async_pre_call_hook` before it routes each request. For `model: auto` the
hook classifies the request (`homelab.router`), probes the category's experts (each endpoint
at most every `health_ttl_s`, each probe cut off at `probe_cap_s`: a request is waiting) and
rewrites the model to the first expert that serves. The rest of the chain stays in LiteLLM's
own fallbacks, for a backend that dies between the probe and the call. The decision travels
in the request's metadata and comes back to the client as `x-homelab-route-*` headers.

What the hook knows of the cluster comes from the config itself (`callback_settings.
homelab_autoroute.inventory`, the cluster file's own schema), so the proxy needs no other file.

Importing this module does not import LiteLLM (the `gateway` extra is optional, and
importing LiteLLM reads its model cost map): the handler class is built the first time LiteLLM
asks for `proxy_handler_instance`, through the module's `__getattr__`.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Mapping
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field

from homelab.gateway.config import AUTO_MODEL, AUTOROUTE_SETTINGS_KEY, gateway_model_name
from homelab.health import open_probe_client
from homelab.inventory import Category, Inventory, ProbeSettings
from homelab.probe import ProbeResult, probe_endpoint
from homelab.router.classify import Classification, Classifier, default_classifier
from homelab.router.request import RequestError

__all__ = [
    "ROUTE_HEADER_PREFIX",
    "CALL_PATHS",
    "RoutePolicy",
    "DEFAULT_ROUTE_POLICY",
    "RouteDecision",
    "AutoRouter",
    "route_headers",
    "handler",
]

logger = logging.getLogger(__name__)

ROUTE_HEADER_PREFIX = "x-homelab-route-"
_METADATA_KEY = "homelab_route"
# LiteLLM's call types for the requests a category can be read from, and the OpenAI path each
# stands for (the classifier reads the path: embeddings are decided by it alone).
CALL_PATHS: dict[str, str] = {
    "acompletion": "/v1/chat/completions",
    "completion": "/v1/chat/completions",
    "atext_completion": "/v1/completions",
    "text_completion": "/v1/completions",
    "aembedding": "/v1/embeddings",
    "embeddings": "/v1/embeddings",
}


class RoutePolicy(BaseModel):
    """How much health checking a routed request may cost, in seconds."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    health_ttl_s: float = Field(5.0, ge=0, description="a probe result is reused this long: a burst probes once")
    probe_cap_s: float = Field(2.0, gt=0, description="a routing probe never waits longer, whatever its total_s")


DEFAULT_ROUTE_POLICY = RoutePolicy()


class RouteDecision(BaseModel):
    """Where an `auto` request went and why."""

    model_config = ConfigDict(frozen=True)

    category: Category
    model: str = Field(description="the gateway model name the request was sent to")
    basis: str = Field(description="why this category: the classifier's rule or scores")
    skipped: list[str] = Field(default_factory=list, description="experts passed over, with their state")

    def headers(self) -> dict[str, str]:
        """The decision as response headers (ASCII, one line each)."""
        values = {"category": self.category.value, "model": self.model, "basis": self.basis}
        if self.skipped:
            values["skipped"] = ", ".join(self.skipped)
        return {ROUTE_HEADER_PREFIX + k: _header_value(v) for k, v in values.items()}


def _header_value(text: str) -> str:
    """HTTP header values are one line of latin-1; a basis quoting the user's text may be neither."""
    return text.encode("ascii", "replace").decode().replace("\r", " ").replace("\n", " ")


class AutoRouter:
    """Classify, check the experts' health, pick: the decision without LiteLLM.

    Args:
        inv: the served part of the cluster (endpoints, models, experts, probe defaults).
        client: the client probes go through; the caller owns it.
        policy: health caching and the probe cap.
        classifier: defaults to the shipped model.
    """

    def __init__(
        self,
        inv: Inventory,
        client: httpx.AsyncClient,
        policy: RoutePolicy = DEFAULT_ROUTE_POLICY,
        classifier: Classifier | None = None,
    ) -> None:
        self.inv = inv
        self.client = client
        self.policy = policy
        self.classifier = classifier or default_classifier()
        self._health: dict[str, tuple[float, ProbeResult]] = {}

    async def route(self, path: str, body: Any) -> RouteDecision:
        """The expert for one request: the first of its category's chain whose endpoint serves.

        When none serves, the chain's head: LiteLLM's fallbacks then try the rest and report
        the failure as they would for any model. An unreadable body is routed as chat, since
        the backend, not the router, should tell the client what is wrong with it.
        """
        try:
            found = self.classifier.classify(path, body)
        except RequestError as exc:
            found = Classification(category=Category.CHAT, confidence=0.0, basis=f"unreadable request ({exc}): chat")
        category, chain = self._chain(found.category)
        basis = found.basis if category is found.category else f"{found.basis}; no {found.category} experts: {category}"
        results = await asyncio.gather(*(self._probe(alias) for alias in chain))
        skipped: list[str] = []
        for alias, result in zip(chain, results, strict=True):
            if result is not None and result.serving:
                return RouteDecision(category=category, model=self._name(alias), basis=basis, skipped=skipped)
            skipped.append(f"{self._name(alias)} ({result.state if result else 'unknown'})")
        return RouteDecision(category=category, model=self._name(chain[0]), basis=basis, skipped=skipped)

    def _chain(self, category: Category) -> tuple[Category, list[str]]:
        """The category's experts; a category without any borrows chat's, else the first chain."""
        for candidate in (category, Category.CHAT, *self.inv.experts):
            if candidate in self.inv.experts:
                return candidate, list(self.inv.experts[candidate])
        raise ValueError("the inventory has no experts to route to")

    def _name(self, alias: str) -> str:
        found = self.inv.serving(alias)
        return gateway_model_name(found[0], found[2]) if found else alias

    async def _probe(self, alias: str) -> ProbeResult | None:
        """The alias's endpoint health, probed at most every `health_ttl_s`."""
        found = self.inv.serving(alias)
        if found is None:
            return None
        node, endpoint, _ = found
        key = f"{node.name}/{endpoint.name}"
        cached = self._health.get(key)
        if cached is not None and time.monotonic() - cached[0] < self.policy.health_ttl_s:
            return cached[1]
        full = self.inv.probe_settings(endpoint)
        cap = self.policy.probe_cap_s
        capped = ProbeSettings(connect_s=min(full.connect_s, cap), total_s=min(full.total_s, cap), slow_ms=full.slow_ms)
        result = await probe_endpoint(self.client, node, endpoint, capped)
        self._health[key] = (time.monotonic(), result)
        return result


def route_headers(data: Mapping[str, Any]) -> dict[str, str] | None:
    """The `x-homelab-route-*` headers for a request the hook routed, None for any other."""
    metadata = data.get("metadata")
    decision = metadata.get(_METADATA_KEY) if isinstance(metadata, Mapping) else None
    return RouteDecision.model_validate(decision).headers() if decision else None


class _Hooks:
    """The hook bodies; the LiteLLM class in `handler()` only forwards to them."""

    def __init__(self) -> None:
        self._router: AutoRouter | None = None

    def _get_router(self) -> AutoRouter:
        if self._router is None:
            import litellm  # the proxy has imported it already; this only reads its settings

            settings = (litellm.callback_settings or {}).get(AUTOROUTE_SETTINGS_KEY) or {}
            if "inventory" not in settings:
                raise ValueError(f"callback_settings.{AUTOROUTE_SETTINGS_KEY}.inventory is missing: "
                                 "generate the config with `homelab gateway config`")  # fmt: skip
            policy = RoutePolicy.model_validate(settings.get("policy", {}))
            inv = Inventory.model_validate(settings["inventory"])
            self._router = AutoRouter(inv, open_probe_client(), policy)
        return self._router

    async def pre_call(self, data: dict[str, Any], call_type: str) -> dict[str, Any]:
        if data.get("model") != AUTO_MODEL or call_type not in CALL_PATHS:
            return data
        decision = await self._get_router().route(CALL_PATHS[call_type], data)
        logger.info("auto -> %s (%s; %s)", decision.model, decision.category, decision.basis)
        data["model"] = decision.model
        metadata = data.get("metadata")
        if not isinstance(metadata, dict):
            metadata = data["metadata"] = {}
        metadata[_METADATA_KEY] = decision.model_dump(mode="json")
        return data


@functools.cache
def handler() -> Any:
    """The LiteLLM callback, built (and LiteLLM imported) on first use, once per process."""
    from litellm.integrations.custom_logger import CustomLogger

    hooks = _Hooks()

    class AutoRouteHandler(CustomLogger):
        # LiteLLM runs a callback's pre-call hook only when its class itself defines one.
        async def async_pre_call_hook(
            self, user_api_key_dict: Any, cache: Any, data: dict[str, Any], call_type: str
        ) -> dict[str, Any]:
            return await hooks.pre_call(data, call_type)

        async def async_post_call_response_headers_hook(
            self,
            data: dict[str, Any],
            user_api_key_dict: Any,
            response: Any,
            request_headers: dict[str, str] | None = None,
            litellm_call_info: dict[str, Any] | None = None,
        ) -> dict[str, str] | None:
            return route_headers(data)

    return AutoRouteHandler()


def __getattr__(name: str) -> Any:
    """`proxy_handler_instance`, the name the generated config gives LiteLLM, built on first access."""
    if name == "proxy_handler_instance":
        return handler()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
