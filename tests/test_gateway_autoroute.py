"""The auto-routing decision without LiteLLM: category, health, choice, headers.

Requests here are decided by the classifier's rules (an image is vision, an embeddings path
is embed, an unreadable body is chat), not its text model, so these cases do not move when
the router's weights are retrained. Health comes from real loopback servers: the Ollama
stand-in serves, a closed port refuses, a fault server answers like Ollama until stopped.
The text model's part is covered end to end in `test_gateway_proxy.py`.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from homelab.gateway.autoroute import AutoRouter, RouteDecision, route_headers
from homelab.health.http import open_probe_client
from homelab.inventory import Category, Inventory
from homelab.router import HealthSettings
from tests.fixtures.fault_servers import FaultServer, canned, json_route
from tests.fixtures.net import LOOPBACK, free_port
from tests.fixtures.ollama import StandInServer

Route = Callable[..., Awaitable[RouteDecision]]
IMAGE_BODY = {
    "messages": [
        {"role": "user", "content": [{"type": "text", "text": "what is this?"},
                                     {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]}
    ]
}  # fmt: skip
OLLAMA_ROUTES = {"/api/tags": json_route({"models": []}), "/api/ps": json_route({"models": []})}


def _inventory(urls: dict[str, str], experts: dict[str, list[str]]) -> Inventory:
    """One node per alias, each an Ollama endpoint at the given URL."""
    nodes = [
        {"name": alias, "tier": "t", "host": LOOPBACK, "endpoints": [
            {"name": "ollama", "kind": "ollama", "url": url, "models": [{"name": alias, "alias": alias}]}]}
        for alias, url in urls.items()
    ]  # fmt: skip
    return Inventory.model_validate({"nodes": nodes, "experts": experts})


def _refused() -> str:
    return f"http://{LOOPBACK}:{free_port()}"


@pytest.fixture
async def route() -> AsyncIterator[Route]:
    """`await route(urls, experts, path, body)` with a fresh router (so a fresh health view)."""
    async with open_probe_client() as client:

        async def decide(urls: dict[str, str], experts: dict[str, list[str]], path: str, body: Any) -> RouteDecision:
            return await AutoRouter(_inventory(urls, experts), client).route(path, body)

        yield decide


async def test_a_category_goes_to_its_first_serving_expert(route: Route, ollama_standin: StandInServer) -> None:
    urls = {"eyes": _refused(), "eyes2": ollama_standin.url}

    decision = await route(urls, {"vision": ["eyes", "eyes2"]}, "/v1/chat/completions", IMAGE_BODY)

    assert (decision.category, decision.model) == (Category.VISION, "t/eyes2")
    assert decision.skipped == ["t/eyes (DOWN)"]
    assert decision.basis == "a user message carries an image"
    assert decision.reason.startswith("eyes2 is the first vision expert that serves; skipped eyes: eyes/ollama is DOWN")


async def test_embeddings_never_fall_back_to_a_chat_model(route: Route, ollama_standin: StandInServer) -> None:
    decision = await route({"talk": ollama_standin.url}, {"chat": ["talk"]}, "/v1/embeddings", {"input": "x"})

    assert (decision.category, decision.model) == (Category.EMBED, None)
    assert decision.reason.startswith("no embed experts are configured; embeddings go only to the embed experts")


async def test_an_unreadable_body_is_routed_as_chat(route: Route, ollama_standin: StandInServer) -> None:
    decision = await route({"talk": ollama_standin.url}, {"chat": ["talk"]}, "/v1/chat/completions", {"messages": []})

    assert (decision.category, decision.model) == (Category.CHAT, "t/talk")
    assert decision.basis.startswith("unreadable request (body.messages is empty")


async def test_when_nothing_serves_there_is_no_model_and_the_reason(route: Route) -> None:
    decision = await route({"a": _refused(), "b": _refused()}, {"embed": ["a", "b"]}, "/v1/embeddings", {})

    assert decision.model is None
    assert decision.skipped == ["t/a (DOWN)", "t/b (DOWN)"]
    assert decision.reason.startswith("no serving expert for embed: none of a, b serves; embeddings go only to")
    assert decision.headers()["x-homelab-route-model"] == "none"


async def test_a_stale_view_is_refreshed_in_the_background_not_on_the_request() -> None:
    first = FaultServer(canned(OLLAMA_ROUTES))
    second = FaultServer(canned(OLLAMA_ROUTES))
    try:
        async with open_probe_client() as client:
            inv = _inventory({"a": first.url, "b": second.url}, {"embed": ["a", "b"]})
            router = AutoRouter(inv, client, HealthSettings(ttl_s=3600))
            assert (await router.route("/v1/embeddings", {})).model == "t/a"  # the first request waits for a look
            first.stop()
            assert (await router.route("/v1/embeddings", {})).model == "t/a"  # fresh view: no probe, no change
            assert first.paths == ["/api/tags", "/api/ps"]

            router.settings = HealthSettings(ttl_s=0)
            assert (await router.route("/v1/embeddings", {})).model == "t/a"  # stale: answered now, refreshed after
            for _ in range(100):
                decision = await router.route("/v1/embeddings", {})
                if decision.model == "t/b":
                    break
                await asyncio.sleep(0.05)
    finally:
        first.stop()
        second.stop()

    assert (decision.model, decision.skipped) == ("t/b", ["t/a (DOWN)"])


def test_the_decision_comes_back_as_ascii_headers() -> None:
    decision = RouteDecision(
        category=Category.CODE, model="t/coder", basis="text model: code 0.91,\nthen chat",
        reason="coder is the first code expert that serves (…)", skipped=["t/x (DOWN)"],
    )  # fmt: skip

    headers = route_headers({"metadata": {"homelab_route": decision.model_dump(mode="json")}})

    assert headers == {
        "x-homelab-route-category": "code",
        "x-homelab-route-model": "t/coder",
        "x-homelab-route-basis": "text model: code 0.91, then chat",
        "x-homelab-route-reason": "coder is the first code expert that serves (?)",
        "x-homelab-route-skipped": "t/x (DOWN)",
    }
    assert route_headers({"metadata": {}}) is None


def test_importing_the_hook_module_does_not_import_litellm() -> None:
    code = "import sys, homelab.gateway.autoroute; print('litellm' in sys.modules)"

    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)

    assert result.stdout.strip() == "False"
