"""The generated config on a real LiteLLM proxy, in front of real backends.

One proxy for the module (it takes 10-30 s to start), started from the file that
`homelab gateway config` writes, in front of two llama-servers (`coder`, `general`), the
Ollama stand-in (`chat`, `fast`) and a server that accepts and never answers (`stuck`).
The tests that kill the coder come last and share the `coder_killed` fixture: everything
before it sees the whole cluster up.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml

from homelab.gateway.autoroute import PROXY_HEALTH
from tests.fixtures.fault_servers import FaultServer, blackhole
from tests.fixtures.litellm_proxy import LiteLLMProxy, running_litellm
from tests.fixtures.llama import LlamaServer
from tests.fixtures.net import LOOPBACK, stop_process
from tests.fixtures.ollama import StandInServer
from tests.test_cli_validate import homelab

pytestmark = pytest.mark.llama

CODING_PROMPT = "Write a Python function that parses a CSV file and returns a list of dicts, with type hints."
REQUEST_TIMEOUT_S = 60.0
STUCK_TOTAL_S = 1.0


@dataclass(frozen=True)
class Gateway:
    """The proxy and what stands behind it."""

    proxy: LiteLLMProxy
    coder: LlamaServer
    general: LlamaServer
    standin: StandInServer
    config: Path

    def chat(self, model: str, prompt: str = "ping") -> httpx.Response:
        return httpx.post(
            f"{self.proxy.url}/v1/chat/completions",
            headers={"Authorization": f"Bearer {self.proxy.master_key}"},
            json={"model": model, "messages": [{"role": "user", "content": prompt}], "max_tokens": 4},
            timeout=REQUEST_TIMEOUT_S,
        )

    def get(self, path: str) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.proxy.master_key}"}
        return httpx.get(f"{self.proxy.url}{path}", headers=headers, timeout=REQUEST_TIMEOUT_S)


def _cluster(standin: StandInServer, coder: LlamaServer, general: LlamaServer, stuck: FaultServer) -> dict[str, object]:
    llama = [
        {"name": s.alias, "kind": "llamacpp", "url": s.url, "models": [{"name": s.alias, "alias": s.alias}]}
        for s in (coder, general)
    ]
    return {
        "name": "gateway-test",
        "nodes": [
            {"name": "box-a", "tier": "primary", "host": LOOPBACK, "endpoints": [
                {"name": "ollama", "kind": "ollama", "url": standin.url,
                 "models": [{"name": "qwen2.5:0.5b", "alias": "chat"}, {"name": "llama3.2:1b", "alias": "fast"}]},
            ]},
            {"name": "box-b", "tier": "secondary", "host": LOOPBACK, "endpoints": [
                *llama,
                {"name": "stuck", "kind": "llamacpp", "url": stuck.url,
                 "probe": {"connect_s": 1, "total_s": STUCK_TOTAL_S}, "models": [{"name": "stuck", "alias": "stuck"}]},
            ]},
        ],
        "experts": {"code": ["coder", "general"], "chat": ["chat", "general"], "fast": ["fast"]},
    }  # fmt: skip


@pytest.fixture(scope="module")
def gateway(
    ollama_standin: StandInServer,
    llama_server: Callable[..., LlamaServer],
    tiny_gguf: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Gateway]:
    """`homelab gateway config` on a cluster of real servers, then `litellm --config` on its output."""
    workdir = tmp_path_factory.mktemp("gateway")
    coder, general = llama_server(tiny_gguf, alias="coder"), llama_server(tiny_gguf, alias="general")
    stuck = FaultServer(blackhole)
    cluster, config = workdir / "cluster.yaml", workdir / "litellm.yaml"
    cluster.write_text(yaml.safe_dump(_cluster(ollama_standin, coder, general, stuck)))
    generated = homelab("gateway", "config", "-i", cluster, "-o", config)
    assert generated.returncode == 0, generated.stderr
    try:
        with running_litellm(config, workdir) as proxy:
            yield Gateway(proxy, coder, general, ollama_standin, config)
    finally:
        stuck.stop()
        for server in (coder, general):
            stop_process(server.process)


def test_the_proxy_is_alive(gateway: Gateway) -> None:
    response = httpx.get(f"{gateway.proxy.url}/health/liveliness", timeout=REQUEST_TIMEOUT_S)

    assert response.status_code == 200
    assert "alive" in response.text.lower()


def test_every_model_is_listed_once_with_auto(gateway: Gateway) -> None:
    response = gateway.get("/v1/models")

    assert response.status_code == 200, response.text
    listed = sorted(m["id"] for m in response.json()["data"])
    assert listed == ["auto", "primary/chat", "primary/fast", "secondary/coder", "secondary/general", "secondary/stuck"]


@pytest.mark.parametrize(
    ("model", "backend"),
    [
        ("primary/chat", "standin"),
        ("primary/fast", "standin"),
        ("secondary/coder", "coder"),
        ("secondary/general", "general"),
        ("coder", "coder"),  # the plain alias, hidden from the listing, still answers
    ],
)
def test_a_chat_completion_reaches_each_backend(gateway: Gateway, model: str, backend: str) -> None:
    response = gateway.chat(model, "hello there")

    assert response.status_code == 200, response.text
    expected = gateway.standin.url if backend == "standin" else f"{getattr(gateway, backend).url}/v1"
    assert response.headers["x-litellm-model-api-base"] == expected
    assert response.headers["x-litellm-attempted-fallbacks"] == "0"
    assert "x-homelab-route-model" not in response.headers  # only `auto` is routed by homelab
    if backend == "standin":
        assert response.json()["choices"][0]["message"]["content"] == "Stand-in reply to: hello there"


def test_a_hung_backend_cannot_stall_the_proxys_health_check(gateway: Gateway) -> None:
    started = time.monotonic()
    response = gateway.get("/health")
    took_s = time.monotonic() - started

    assert response.status_code == 200, response.text
    unhealthy = {e["model"] for e in response.json()["unhealthy_endpoints"]}
    assert "openai/stuck" in unhealthy
    assert took_s < STUCK_TOTAL_S + 20, f"/health took {took_s:.1f} s"  # LiteLLM's own default wait is 60 s


def test_auto_sends_a_coding_prompt_to_the_code_expert(gateway: Gateway) -> None:
    response = gateway.chat("auto", CODING_PROMPT)

    assert response.status_code == 200, response.text
    assert response.headers["x-homelab-route-category"] == "code"
    assert response.headers["x-homelab-route-model"] == "secondary/coder"
    assert response.headers["x-litellm-model-api-base"] == f"{gateway.coder.url}/v1"


@pytest.fixture(scope="module")
def coder_killed(gateway: Gateway) -> Gateway:
    """The coder's llama-server, killed; the rest of the module sees it down."""
    stop_process(gateway.coder.process)
    return gateway


@pytest.mark.parametrize("model", ["secondary/coder", "coder"])
def test_a_dead_backends_fallback_serves_the_next_request(coder_killed: Gateway, model: str) -> None:
    response = coder_killed.chat(model)

    assert response.status_code == 200, response.text
    assert response.headers["x-litellm-model-api-base"] == f"{coder_killed.general.url}/v1"
    assert response.headers["x-litellm-attempted-fallbacks"] == "1"


def test_auto_skips_a_dead_code_expert_for_its_fallback(coder_killed: Gateway) -> None:
    # The hook's health view is refreshed in the background once older than its TTL: until
    # then `auto` may still pick the coder (and LiteLLM's fallback serves the request).
    deadline = time.monotonic() + PROXY_HEALTH.ttl_s + 15
    while True:
        response = coder_killed.chat("auto", CODING_PROMPT)
        assert response.status_code == 200, response.text
        if response.headers.get("x-homelab-route-skipped") or time.monotonic() > deadline:
            break
        time.sleep(1)

    assert response.headers["x-homelab-route-category"] == "code"
    assert response.headers["x-homelab-route-model"] == "secondary/general"
    assert response.headers["x-homelab-route-skipped"] == "secondary/coder (DOWN)"
    assert response.headers["x-litellm-model-api-base"] == f"{coder_killed.general.url}/v1"
    assert response.headers["x-litellm-attempted-fallbacks"] == "0"  # chosen directly, not by a failed call
