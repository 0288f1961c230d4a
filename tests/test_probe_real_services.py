"""The same probes against the real services: llama-server, a LiteLLM proxy, and the Ollama stand-in.

The fault tests prove probes say DOWN for the right reason; these prove they say UP to the
real thing, read what it serves, and that a sweep over all of it is OPERATIONAL.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from homelab.health.http import open_probe_client
from homelab.health.probe import EndpointState, ProbeResult, Reason, probe_endpoint
from homelab.health.sweep import Prognosis, TierState, sweep
from homelab.inventory import Endpoint, EndpointKind, Inventory, Node, ProbeSettings
from tests.fixtures.litellm_proxy import LiteLLMProxy
from tests.fixtures.llama import LlamaServer
from tests.fixtures.net import LOOPBACK
from tests.fixtures.ollama import StandInServer

SETTINGS = ProbeSettings(connect_s=2.0, total_s=10.0, slow_ms=5000)


async def _probe(kind: EndpointKind, url: str) -> ProbeResult:
    node = Node(name="box", tier="lab", host=LOOPBACK)
    async with open_probe_client() as client:
        return await probe_endpoint(client, node, Endpoint(name="ep", kind=kind, url=url), SETTINGS)


async def test_ollama_standin_is_up_with_its_models_and_vram(
    ollama_standin_factory: Callable[..., StandInServer],
) -> None:
    server = ollama_standin_factory()
    async with httpx.AsyncClient(timeout=5) as client:
        (await client.post(f"{server.url}/api/generate", json={"model": "llama3.2:1b"})).raise_for_status()
    result = await _probe(EndpointKind.OLLAMA, server.url)
    assert (result.state, result.reason) == (EndpointState.UP, Reason.OK), result.detail
    assert "llama3.2:1b" in result.models
    (loaded,) = result.loaded
    assert (loaded.name, loaded.size_vram_bytes) == ("llama3.2:1b", 1_321_098_329)


@pytest.mark.llama
async def test_llama_server_is_up_and_lists_its_alias(
    llama_server: Callable[..., LlamaServer], tiny_gguf: Path
) -> None:
    server = llama_server(tiny_gguf, alias="probe-tiny")
    result = await _probe(EndpointKind.LLAMACPP, server.url)
    assert (result.state, result.reason) == (EndpointState.UP, Reason.OK), result.detail
    assert result.models == ["probe-tiny"]


async def test_litellm_proxy_is_up_by_liveliness(litellm_proxy: LiteLLMProxy) -> None:
    result = await _probe(EndpointKind.LITELLM, litellm_proxy.url)
    assert (result.state, result.reason) == (EndpointState.UP, Reason.OK), result.detail


def test_litellm_proxy_forwards_to_the_standin(litellm_proxy: LiteLLMProxy) -> None:
    response = httpx.post(
        f"{litellm_proxy.url}/v1/chat/completions",
        headers={"Authorization": f"Bearer {litellm_proxy.master_key}"},
        json={"model": litellm_proxy.model, "messages": [{"role": "user", "content": "ping"}]},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"] == "Stand-in reply to: ping"


@pytest.mark.llama
async def test_sweep_over_real_services_is_operational(
    litellm_proxy: LiteLLMProxy,
    ollama_standin: StandInServer,
    llama_server: Callable[..., LlamaServer],
    tiny_gguf: Path,
) -> None:
    coder = llama_server(tiny_gguf, alias="sweep-coder")
    inv = Inventory.model_validate(
        {
            "defaults": {"probe": SETTINGS.model_dump()},
            "nodes": [
                {
                    "name": "primary",
                    "tier": "gpu",
                    "host": LOOPBACK,
                    "endpoints": [
                        {
                            "name": "ollama",
                            "kind": "ollama",
                            "url": ollama_standin.url,
                            "models": [{"name": "qwen2.5:0.5b", "alias": "chat"}],
                        },
                        {"name": "gateway", "kind": "litellm", "url": litellm_proxy.url},
                    ],
                },
                {
                    "name": "secondary",
                    "tier": "cpu",
                    "host": LOOPBACK,
                    "endpoints": [
                        {
                            "name": "coder",
                            "kind": "llamacpp",
                            "url": coder.url,
                            "models": [{"name": "sweep-coder", "alias": "coder"}],
                        },
                    ],
                },
            ],
            "experts": {"chat": ["chat"], "code": ["coder", "chat"]},
            "gateway": {"endpoint": "primary/gateway"},
        }
    )
    async with open_probe_client() as client:
        report = await sweep(inv, client)
    assert [r.state for r in report.endpoints] == [EndpointState.UP] * 3, [r.detail for r in report.endpoints]
    assert [t.state for t in report.tiers] == [TierState.HEALTHY, TierState.HEALTHY]
    assert report.cluster.prognosis is Prognosis.OPERATIONAL
