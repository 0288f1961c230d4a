"""An imported config with replicas, generated again and loaded by a real LiteLLM proxy.

One test: the proxy takes 10-30 s to start. Two Ollama stand-ins (homelab_app.ollama_standin,
not Ollama) on loopback ports are two replicas of `chat`; a cloud entry rides along unused.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import yaml

from tests.fixtures.litellm_proxy import running_litellm
from tests.fixtures.ollama import StandInServer
from tests.test_cli_validate import homelab

REQUEST_TIMEOUT_S = 60.0
MAX_REQUESTS = 40  # LiteLLM's default routing shuffles: both replicas answer long before this


def test_the_proxy_loads_the_generated_replicas_and_answers_on_each(
    ollama_standin_factory: Callable[..., StandInServer],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    replicas = [ollama_standin_factory(), ollama_standin_factory()]
    chat = [
        {"model_name": "chat", "litellm_params": {"model": "ollama_chat/qwen2.5:0.5b", "api_base": s.url}}
        for s in replicas
    ]
    cloud = {"model_name": "gpt-4o", "litellm_params": {"model": "gpt-4o", "api_key": "os.environ/OPENAI_API_KEY"}}
    original = tmp_path / "original.yaml"
    original.write_text(yaml.safe_dump({"model_list": [*chat, cloud], "router_settings": {"num_retries": 0}}))
    cluster, generated = tmp_path / "cluster.yaml", tmp_path / "litellm.yaml"
    assert homelab("gateway", "import", original, "-o", cluster).returncode == 0
    assert homelab("gateway", "config", "-i", cluster, "-o", generated).returncode == 0
    monkeypatch.setenv("OPENAI_API_KEY", "sk-unused-by-this-test")  # the cloud entry is loaded, never called

    with running_litellm(generated, tmp_path) as proxy:
        headers = {"Authorization": f"Bearer {proxy.master_key}"}
        listed = httpx.get(f"{proxy.url}/v1/models", headers=headers, timeout=REQUEST_TIMEOUT_S)
        answered: dict[str, int] = {}
        for _ in range(MAX_REQUESTS):
            response = httpx.post(
                f"{proxy.url}/v1/chat/completions",
                headers=headers,
                json={"model": "chat", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 4},
                timeout=REQUEST_TIMEOUT_S,
            )
            assert response.status_code == 200, response.text
            api_base = response.headers["x-litellm-model-api-base"]
            answered[api_base] = answered.get(api_base, 0) + 1
            if len(answered) == len(replicas):
                break

    assert listed.status_code == 200, listed.text
    assert sorted(m["id"] for m in listed.json()["data"]) == ["chat", "gpt-4o"]
    assert set(answered) == {s.url for s in replicas}, answered
