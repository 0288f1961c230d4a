"""Auto-routing inside the LiteLLM proxy: a request for model `auto` goes to the best healthy expert.

The generated config names `homelab.gateway.autoroute.proxy_handler_instance` under
`litellm_settings.callbacks`; LiteLLM resolves that dotted name with `getattr` at startup and
calls the handler's `async_pre_call_hook` before it routes each request. For `model: auto` the
hook classifies the request and chooses the first expert of its category that serves and can
take it (`homelab.router`: rules, the text model, the cluster's health, the models'
capabilities), and rewrites the model to that expert's gateway name. The rest of the chain
stays in LiteLLM's own fallbacks, for a backend that dies after the last look at it. The
decision travels in the request's metadata and comes back to the client as
`x-homelab-route-*` headers. When no model that can take the request serves (an image with
only text models up, embeddings with the embedding model down), the hook answers 503 with the
router's reason: an answer from a model that cannot serve the request (vectors from another
model's space, a reply that never saw the image) would be worse than none.

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
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field

from homelab.errors import RequestError
from homelab.gateway.config import AUTO_MODEL, AUTOROUTE_SETTINGS_KEY, gateway_model_names
from homelab.health.http import open_probe_client
from homelab.inventory import Category, Inventory
from homelab.router import (
    Classification,
    Classifier,
    HealthSettings,
    HealthView,
    choose_expert,
    default_classifier,
    refresh_health_view,
)

__all__ = [
    "CALL_PATHS",
    "NO_MODEL_STATUS",
    "PROXY_HEALTH",
    "ROUTE_HEADER_PREFIX",
    "AutoRouter",
    "RouteDecision",
    "handler",
    "route_headers",
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
# How old the hook's view of the cluster may get before a background refresh (the router's
# own default, 60 s, suits the CLI; the proxy sees traffic and can afford to look more often).
PROXY_HEALTH = HealthSettings(ttl_s=5.0)
NO_MODEL_STATUS = 503  # Service Unavailable: nothing that can serve the request is up now


class RouteDecision(BaseModel):
    """Where an `auto` request went and why, in gateway model names."""

    model_config = ConfigDict(frozen=True)

    category: Category | None
    model: str | None = Field(description="the gateway model the request was sent to; None: no model can take it")
    basis: str = Field(description="why this category: the classifier's rule or scores")
    reason: str = Field(description="why this expert (the router's words)")
    skipped: list[str] = Field(default_factory=list, description="experts passed over, with their state")

    def headers(self) -> dict[str, str]:
        """The decision as response headers (ASCII, one line each)."""
        values = {"category": self.category or "", "model": self.model or "none", "basis": self.basis,
                  "reason": self.reason}  # fmt: skip
        if self.skipped:
            values["skipped"] = ", ".join(self.skipped)
        return {ROUTE_HEADER_PREFIX + k: _header_value(v) for k, v in values.items()}


def _header_value(text: str) -> str:
    """HTTP header values are one line of latin-1; a reason quoting a server's answer may be neither."""
    return text.encode("ascii", "replace").decode().replace("\r", " ").replace("\n", " ")


class AutoRouter:
    """Classify, look at the cluster's health, choose (`homelab.router`): the decision without LiteLLM.

    The health view is refreshed in the background once it is older than `settings.ttl_s`:
    a refresh probes every endpoint (a hung one for its whole `total_s`), and no request
    should wait for that. Only the first request, with nothing known yet, waits. A decision
    made on a view a few seconds old that names a backend which has just died is still
    served: LiteLLM's fallbacks take the request to the next expert.

    Args:
        inv: the served part of the cluster (endpoints, models, experts, probe defaults).
        client: the client probes go through; the caller owns it.
        settings: how old the view may get before it is refreshed.
        classifier: defaults to the shipped model.
    """

    def __init__(
        self,
        inv: Inventory,
        client: httpx.AsyncClient,
        settings: HealthSettings = PROXY_HEALTH,
        classifier: Classifier | None = None,
    ) -> None:
        self.inv = inv
        self.client = client
        self.settings = settings
        self.classifier = classifier or default_classifier()
        self.view = HealthView()
        self._names = gateway_model_names(inv)  # alias -> its name at the gateway, once: the cluster is fixed
        self._refreshing: asyncio.Task[None] | None = None

    async def route(self, path: str, body: Any) -> RouteDecision:
        """The expert for one request (see `homelab.router.choose_expert` for the order).

        An unreadable body is routed as chat: the backend, not the router, should tell the
        client what is wrong with it. When no model that can take the request serves, the
        decision has no model and the router's reason.
        """
        try:
            found = self.classifier.classify(path, body)
        except RequestError as exc:
            found = Classification(category=Category.CHAT, confidence=0.0, basis=f"unreadable request ({exc}): chat")
        await self._keep_fresh()
        decision = choose_expert(self.inv, found, self.view)
        aliases = [c.alias for c in decision.candidates]
        passed = decision.candidates[: aliases.index(decision.model)] if decision.model else decision.candidates
        return RouteDecision(
            category=decision.category,
            model=self._name(decision.model) if decision.model else None,
            basis=decision.basis,
            reason=decision.reason,
            skipped=[f"{self._name(c.alias)} ({c.state or 'unknown'})" for c in passed],
        )

    def _name(self, alias: str) -> str:
        return self._names.get(alias, alias)

    async def _keep_fresh(self) -> None:
        if not len(self.view):
            await self._refresh()
        elif self.view.stale(self.inv, self.settings.ttl_s, datetime.now(UTC)) and not self._busy():
            self._refreshing = asyncio.create_task(self._refresh())

    def _busy(self) -> bool:
        return self._refreshing is not None and not self._refreshing.done()

    async def _refresh(self) -> None:
        refreshed = await refresh_health_view(self.inv, self.view, self.client, self.settings)
        self.view = refreshed.view


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
            health = HealthSettings.model_validate(PROXY_HEALTH.model_dump() | settings.get("health", {}))
            inv = Inventory.model_validate(settings["inventory"])
            self._router = AutoRouter(inv, open_probe_client(), health)
        return self._router

    async def pre_call(self, data: dict[str, Any], call_type: str) -> dict[str, Any]:
        if data.get("model") != AUTO_MODEL or call_type not in CALL_PATHS:
            return data
        decision = await self._get_router().route(CALL_PATHS[call_type], data)
        logger.info("auto -> %s (%s; %s)", decision.model, decision.category, decision.basis)
        if decision.model is None:
            from fastapi import HTTPException  # the proxy's own web framework, loaded with it

            raise HTTPException(NO_MODEL_STATUS, detail={"error": f"homelab auto-routing: {decision.reason}"})
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
