"""The health-aware choice against real loopback servers and a real SQLite history.

Endpoints are fault servers answering like OpenAI-compatible servers (UP), ports nothing
listens on (DOWN, refused), and the Ollama stand-in started on a port that was dead a moment
before (an endpoint that comes back). Health comes from real sweeps: recorded in a temporary
history, or run live by the router when the history is older than its TTL.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from homelab.health.http import open_probe_client
from homelab.health.sweep import sweep
from homelab.history import open_history
from homelab.inventory import Category, Inventory, load_inventory
from homelab.router import (
    Classification,
    Decision,
    HealthSettings,
    HealthSource,
    HealthView,
    choose_expert,
    open_router,
)
from homelab.router.health_view import refresh_health_view
from homelab_app.ollama_standin import make_server
from tests.fixtures.fault_servers import FaultServer, Handler, canned, json_route
from tests.fixtures.net import LOOPBACK, free_port, wait_http

StartServer = Callable[[Handler], FaultServer]
PROBE = {"connect_s": 1.0, "total_s": 3.0, "slow_ms": 2500}


def _openai(*names: str) -> Handler:
    return canned({"/v1/models": json_route({"object": "list", "data": [{"id": n} for n in names]})})


def _endpoint(name: str, url: str, *aliases: str, kind: str = "openai") -> dict[str, Any]:
    return {"name": name, "kind": kind, "url": url, "models": [{"name": a, "alias": a} for a in aliases]}


def _cluster(big: str, small: str, tiny: str, extra: str) -> dict[str, Any]:
    """Four endpoints on three nodes; `misc` is in no expert list (the last resort)."""
    return {
        "name": "route-test",
        "defaults": {"probe": PROBE},
        "nodes": [
            {
                "name": "gpu",
                "tier": "gpu",
                "host": LOOPBACK,
                "endpoints": [_endpoint("big", big, "coder-big", "reasoner")],
            },
            {
                "name": "cpu",
                "tier": "cpu",
                "host": LOOPBACK,
                "endpoints": [_endpoint("small", small, "coder-small", "chatty")],
            },
            {
                "name": "nas",
                "tier": "nas",
                "host": LOOPBACK,
                "endpoints": [_endpoint("tiny", tiny, "quick"), _endpoint("extra", extra, "misc")],
            },
        ],
        "experts": {
            "code": ["coder-big", "coder-small"],
            "reason": ["reasoner"],
            "chat": ["chatty"],
            "fast": ["quick"],
        },
    }


def _load(tmp_path: Path, cluster: dict[str, Any]) -> Inventory:
    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump(cluster, sort_keys=False))
    return load_inventory(path)


def _as(category: Category) -> Classification:
    return Classification(category=category, confidence=0.9, basis="test")


async def _live_view(inv: Inventory) -> HealthView:
    async with open_probe_client() as client:
        return (await refresh_health_view(inv, HealthView(), client)).view


def _decide(inv: Inventory, category: Category) -> Decision:
    return choose_expert(inv, _as(category), asyncio.run(_live_view(inv)))


@pytest.fixture
def servers(fault_server: StartServer) -> dict[str, FaultServer]:
    return {
        "big": fault_server(_openai("coder-big", "reasoner")),
        "small": fault_server(_openai("coder-small", "chatty")),
        "extra": fault_server(_openai("misc")),
    }


def _dead() -> str:
    return f"http://{LOOPBACK}:{free_port()}"


def test_first_expert_that_serves_wins_and_the_rest_are_fallbacks(
    tmp_path: Path, servers: dict[str, FaultServer]
) -> None:
    inv = _load(tmp_path, _cluster(servers["big"].url, servers["small"].url, _dead(), servers["extra"].url))
    d = _decide(inv, Category.CODE)
    assert (d.model, d.node, d.endpoint, d.url) == ("coder-big", "gpu", "big", servers["big"].url)
    assert d.fallbacks == ["coder-small", "chatty", "reasoner", "misc"]
    assert d.reason.startswith("coder-big is the first code expert and it serves")
    assert d.health_source is HealthSource.LIVE and d.health_age_s is not None and 0 <= d.health_age_s < 30
    assert [c.alias for c in d.candidates] == ["coder-big", "coder-small", "chatty", "quick", "reasoner", "misc"]


def test_a_down_expert_is_skipped_for_the_next_in_its_chain(tmp_path: Path, servers: dict[str, FaultServer]) -> None:
    servers["big"].stop()
    inv = _load(tmp_path, _cluster(servers["big"].url, servers["small"].url, _dead(), servers["extra"].url))
    d = _decide(inv, Category.CODE)
    assert d.model == "coder-small"
    assert "coder-big: gpu/big is DOWN" in d.reason
    assert d.fallbacks == ["chatty", "misc"]


def test_a_category_without_a_serving_expert_falls_back_to_chat(
    tmp_path: Path, servers: dict[str, FaultServer]
) -> None:
    servers["big"].stop()
    inv = _load(tmp_path, _cluster(servers["big"].url, servers["small"].url, _dead(), servers["extra"].url))
    d = _decide(inv, Category.REASON)
    assert d.model == "chatty"
    assert d.reason.startswith("no reason expert serves (reasoner: gpu/big is DOWN")
    assert d.reason.endswith("falling back to the chat expert chatty")


def test_then_fast_then_any_model_that_serves(tmp_path: Path, fault_server: StartServer) -> None:
    quick, extra = fault_server(_openai("quick")), fault_server(_openai("misc"))
    inv = _load(tmp_path, _cluster(_dead(), _dead(), quick.url, extra.url))
    assert _decide(inv, Category.CODE).model == "quick"
    quick.stop()
    d = _decide(inv, Category.CODE)
    assert d.model == "misc"
    assert "nor a chat or fast expert; misc is the first model of the cluster that serves" in d.reason


def test_a_category_with_no_experts_configured_falls_back_only_to_a_capable_model(
    tmp_path: Path, servers: dict[str, FaultServer]
) -> None:
    inv = _load(tmp_path, _cluster(servers["big"].url, servers["small"].url, _dead(), servers["extra"].url))
    d = _decide(inv, Category.VISION)
    assert d.model is None and d.needs == "vision" and d.fallbacks == []
    assert d.reason == (
        "no vision experts are configured; no serving model can take vision requests, which need vision: "
        "chatty can do completion (experts), coder-big can do completion (experts), reasoner can do completion "
        "(experts), coder-small can do completion (experts), misc can do completion (assumed)"
    )
    assert not any(c.capable for c in d.candidates), "text models cannot see the image"


def test_nothing_serving_is_a_decision_without_a_model(tmp_path: Path) -> None:
    inv = _load(tmp_path, _cluster(_dead(), _dead(), _dead(), _dead()))
    d = _decide(inv, Category.CHAT)
    assert d.model is None and d.url is None and d.fallbacks == []
    assert d.reason == "no model serves: every endpoint is down or unprobed"
    assert all(c.state == "DOWN" and not c.serving for c in d.candidates)
    assert choose_expert(inv, _as(Category.CHAT), HealthView()).reason == "no model serves: no endpoint has been probed"


@pytest.fixture
def late_standin() -> Iterator[Callable[[int], str]]:
    """Start the Ollama stand-in on a given port (one that was dead until now)."""
    stops: list[Callable[[], None]] = []

    def start(port: int) -> str:
        server = make_server(LOOPBACK, port)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        url = f"http://{LOOPBACK}:{port}"
        wait_http(f"{url}/api/version", 15.0, "Ollama stand-in")

        def stop() -> None:
            server.should_exit = True
            thread.join(timeout=10)

        stops.append(stop)
        return url

    yield start
    for stop in stops:
        stop()


def _one_node(url: str) -> dict[str, Any]:
    return {
        "defaults": {"probe": PROBE},
        "nodes": [
            {
                "name": "box",
                "tier": "gpu",
                "host": LOOPBACK,
                "endpoints": [_endpoint("ollama", url, "chatty", kind="ollama")],
            }
        ],
        "experts": {"chat": ["chatty"]},
    }


def test_history_feeds_the_view_and_a_stale_one_is_probed_live(
    tmp_path: Path, late_standin: Callable[[int], str]
) -> None:
    port = free_port()
    inv = _load(tmp_path, _one_node(f"http://{LOOPBACK}:{port}"))
    chat = {"messages": [{"role": "user", "content": "write me a poem about the sea"}]}

    async def route(ttl_s: float, probe: bool) -> tuple[Decision, int, bool]:
        with open_history(f"sqlite:///{tmp_path}/history.db") as store:
            async with open_probe_client() as client:
                router, refreshed = await open_router(
                    inv, client if probe else None, store, HealthSettings(ttl_s=ttl_s)
                )
            if refreshed.sweep is not None:
                store.record_sweep(refreshed.sweep)
            return router.decide("/v1/chat/completions", chat), refreshed.probed, refreshed.sweep is not None

    async def record_sweep_now() -> None:
        with open_history(f"sqlite:///{tmp_path}/history.db") as store:
            async with open_probe_client() as client:
                store.record_sweep(await sweep(inv, client))

    asyncio.run(record_sweep_now())  # nothing listens yet: the history says DOWN
    decision, probed, _ = asyncio.run(route(ttl_s=3600, probe=False))
    assert decision.model is None and probed == 0
    assert decision.candidates[0].note.startswith("box/ollama is DOWN (")

    late_standin(port)  # the endpoint comes back
    decision, probed, swept = asyncio.run(route(ttl_s=3600, probe=True))
    assert decision.model is None and probed == 0 and not swept, "within the TTL the history is trusted"
    decision, probed, swept = asyncio.run(route(ttl_s=0, probe=True))
    assert (decision.model, decision.health_source, probed, swept) == ("chatty", HealthSource.LIVE, 1, True)
    decision, probed, _ = asyncio.run(route(ttl_s=3600, probe=False))
    assert (decision.model, decision.health_source) == ("chatty", HealthSource.HISTORY), "the live sweep was recorded"


def test_only_the_stale_endpoints_are_probed(tmp_path: Path, servers: dict[str, FaultServer]) -> None:
    first = _one_node(servers["small"].url)
    inv = _load(tmp_path, first)

    async def run() -> tuple[HealthView, int]:
        async with open_probe_client() as client:
            view = (await refresh_health_view(inv, HealthView(), client)).view
            grown = first | {
                "nodes": [
                    *first["nodes"],
                    {
                        "name": "nas",
                        "tier": "nas",
                        "host": LOOPBACK,
                        "endpoints": [_endpoint("extra", servers["extra"].url, "misc")],
                    },
                ]
            }
            refreshed = await refresh_health_view(_load(tmp_path, grown), view, client, HealthSettings(ttl_s=600))
            return refreshed.view, refreshed.probed

    view, probed = asyncio.run(run())
    assert probed == 1 and len(view) == 2
    assert view.source("nas", "extra") is HealthSource.LIVE
