"""The auto-routing decision without LiteLLM: category, health, chain, headers.

Requests here are decided by the classifier's rules (an image is vision, an embeddings path
is embed, an unreadable body is chat), not its text model, so these cases do not move when
the router's weights are retrained. Health comes from real loopback servers: the Ollama
stand-in serves, a closed port refuses, a fault server counts how often it is probed.
The text model's part is covered end to end in `test_gateway_proxy.py`.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from homelab.gateway.autoroute import DEFAULT_ROUTE_POLICY, AutoRouter, RouteDecision, RoutePolicy, route_headers
from homelab.health import open_probe_client
from homelab.inventory import Category, Inventory
from tests.fixtures.fault_servers import FaultServer, Handler, canned, json_route
from tests.fixtures.net import LOOPBACK, free_port
from tests.fixtures.ollama import StandInServer

IMAGE_BODY = {
    "messages": [
        {"role": "user", "content": [{"type": "text", "text": "what is this?"},
                                     {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]}
    ]
}  # fmt: skip
Route = Callable[..., Awaitable[RouteDecision]]
OLLAMA_ROUTES = {"/api/tags": json_route({"models": []}), "/api/ps": json_route({"models": []})}


def _inventory(urls: dict[str, str], experts: dict[str, list[str]]) -> Inventory:
    """One node per alias, each an Ollama endpoint at the given URL."""
    nodes = [
        {"name": alias, "tier": "t", "host": LOOPBACK, "endpoints": [
            {"name": "ollama", "kind": "ollama", "url": url, "models": [{"name": alias, "alias": alias}]}]}
        for alias, url in urls.items()
    ]  # fmt: skip
    return Inventory.model_validate({"nodes": nodes, "experts": experts})


@pytest.fixture
async def route() -> AsyncIterator[Route]:
    """`await route(urls, experts, path, body, policy=...)` with a fresh router over a shared client."""
    async with open_probe_client() as client:

        async def decide(
            urls: dict[str, str], experts: dict[str, list[str]], path: str, body: Any,
            policy: RoutePolicy = DEFAULT_ROUTE_POLICY,
        ) -> RouteDecision:
            return await AutoRouter(_inventory(urls, experts), client, policy).route(path, body)

        yield decide


def _refused() -> str:
    return f"http://{LOOPBACK}:{free_port()}"


async def test_a_category_goes_to_its_first_serving_expert(route: Route, ollama_standin: StandInServer) -> None:
    urls = {"eyes": _refused(), "eyes2": ollama_standin.url}

    decision = await route(urls, {"vision": ["eyes", "eyes2"]}, "/v1/chat/completions", IMAGE_BODY)

    assert (decision.category, decision.model) == (Category.VISION, "t/eyes2")
    assert decision.skipped == ["t/eyes (DOWN)"]
    assert decision.basis == "a user message carries an image"


async def test_a_category_without_experts_borrows_chats(route: Route, ollama_standin: StandInServer) -> None:
    decision = await route({"talk": ollama_standin.url}, {"chat": ["talk"]}, "/v1/embeddings", {"input": "x"})

    assert (decision.category, decision.model) == (Category.CHAT, "t/talk")
    assert decision.basis == "embeddings endpoint; no embed experts: chat"


async def test_an_unreadable_body_is_routed_as_chat(route: Route, ollama_standin: StandInServer) -> None:
    decision = await route({"talk": ollama_standin.url}, {"chat": ["talk"]}, "/v1/chat/completions", {"messages": []})

    assert (decision.category, decision.model) == (Category.CHAT, "t/talk")
    assert decision.basis.startswith("unreadable request (body.messages is empty")


async def test_when_no_expert_serves_the_head_is_kept_for_litellms_fallbacks(route: Route) -> None:
    urls = {"a": _refused(), "b": _refused()}

    decision = await route(urls, {"embed": ["a", "b"]}, "/v1/embeddings", {"input": "x"})

    assert decision.model == "t/a"
    assert decision.skipped == ["t/a (DOWN)", "t/b (DOWN)"]


async def test_health_is_probed_once_per_ttl() -> None:
    handler: Handler = canned(OLLAMA_ROUTES)
    server = FaultServer(handler)
    try:
        async with open_probe_client() as client:
            router = AutoRouter(_inventory({"e": server.url}, {"embed": ["e"]}), client, RoutePolicy(health_ttl_s=60))
            for _ in range(3):
                assert (await router.route("/v1/embeddings", {})).model == "t/e"
            router.policy = RoutePolicy(health_ttl_s=0)
            await router.route("/v1/embeddings", {})
    finally:
        server.stop()

    assert server.paths == ["/api/tags", "/api/ps"] * 2  # three routes on one probe, then a fresh one


def test_the_decision_comes_back_as_ascii_headers() -> None:
    basis = "text model: code 0.91,\nthen chat"
    decision = RouteDecision(category=Category.CODE, model="t/coder", basis=basis, skipped=["t/x (DOWN)"])

    headers = route_headers({"metadata": {"homelab_route": decision.model_dump(mode="json")}})

    assert headers == {
        "x-homelab-route-category": "code",
        "x-homelab-route-model": "t/coder",
        "x-homelab-route-basis": "text model: code 0.91, then chat",
        "x-homelab-route-skipped": "t/x (DOWN)",
    }
    assert route_headers({"metadata": {}}) is None


def test_importing_the_hook_module_does_not_import_litellm() -> None:
    code = "import sys, homelab.gateway.autoroute; print('litellm' in sys.modules)"

    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)

    assert result.stdout.strip() == "False"
