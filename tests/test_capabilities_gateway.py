"""The LiteLLM `auto` hook on a real proxy: a request no serving model can take is a clear 503.

The proxy runs the config `homelab gateway config` writes, in front of a real llama-server
(a text model) and the Ollama stand-in (a text model): no model can see an image, and no
embed expert is configured. Instead of handing the request to a model that cannot serve it,
the hook answers 503 with the router's reason.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml

from homelab.gateway.autoroute import NO_MODEL_STATUS
from tests.fixtures.litellm_proxy import LiteLLMProxy, running_litellm
from tests.fixtures.llama import LlamaServer
from tests.fixtures.net import LOOPBACK
from tests.fixtures.ollama import StandInServer
from tests.test_cli_validate import homelab

pytestmark = pytest.mark.llama

TIMEOUT_S = 60.0
IMAGE = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}


@dataclass(frozen=True)
class Proxy:
    proxy: LiteLLMProxy

    def post(self, path: str, body: dict[str, object]) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.proxy.master_key}"}
        return httpx.post(f"{self.proxy.url}{path}", headers=headers, json=body, timeout=TIMEOUT_S)


@pytest.fixture(scope="module")
def proxy(
    ollama_standin: StandInServer,
    llama_server: Callable[..., LlamaServer],
    tiny_gguf: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Proxy]:
    workdir = tmp_path_factory.mktemp("capable-gateway")
    coder = llama_server(tiny_gguf, alias="coder")
    cluster = {
        "name": "capable",
        "nodes": [
            {"name": "box", "tier": "t", "host": LOOPBACK, "endpoints": [
                {"name": "ollama", "kind": "ollama", "url": ollama_standin.url,
                 "models": [{"name": "qwen2.5:0.5b", "alias": "chat"}]},
                {"name": "coder", "kind": "llamacpp", "url": coder.url,
                 "models": [{"name": "coder", "alias": "coder"}]},
                {"name": "gateway", "kind": "litellm", "url": "http://127.0.0.1:4000"},
            ]},
        ],
        "experts": {"code": ["coder", "chat"], "chat": ["chat"]},
        "gateway": {"endpoint": "box/gateway"},
    }  # fmt: skip
    path, config = workdir / "cluster.yaml", workdir / "litellm.yaml"
    path.write_text(yaml.safe_dump(cluster, sort_keys=False))
    generated = homelab("gateway", "config", "-i", path, "-o", config)
    assert generated.returncode == 0, generated.stderr
    with running_litellm(config, workdir) as running:
        yield Proxy(running)


def test_an_image_with_only_text_models_up_is_a_503_with_the_reason(proxy: Proxy) -> None:
    body = {"model": "auto", "messages": [{"role": "user", "content": [{"type": "text", "text": "what?"}, IMAGE]}]}

    response = proxy.post("/v1/chat/completions", body)

    assert response.status_code == NO_MODEL_STATUS, response.text
    assert "homelab auto-routing: no vision experts are configured; no serving model can take vision requests" in (
        response.text
    )
    assert "coder can do completion (discovered)" in response.text


def test_embeddings_without_an_embed_expert_are_a_503_not_a_chat_models_vectors(proxy: Proxy) -> None:
    response = proxy.post("/v1/embeddings", {"model": "auto", "input": "a sentence"})

    assert response.status_code == NO_MODEL_STATUS, response.text
    assert "no embed experts are configured; embeddings go only to the embed experts" in response.text


def test_a_request_a_model_can_take_is_still_routed(proxy: Proxy) -> None:
    body = {"model": "auto", "messages": [{"role": "user", "content": "hello there"}], "max_tokens": 4}

    response = proxy.post("/v1/chat/completions", body)

    assert response.status_code == 200, response.text
    assert response.headers["x-homelab-route-model"] in ("t/chat", "t/coder")
