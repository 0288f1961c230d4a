"""The issue's cases end to end: `homelab route` and `homelab sweep` on real loopback servers.

The cluster: a real llama-server with a text model (`coder`), a real llama-server started with
`--embeddings` (`vectors`), and the Ollama stand-in with a chat model and an embedding model.
Each case takes some of them down (a port nothing listens on) and asks `homelab route` and
`homelab sweep` at the same moment: a request goes only to a model that can serve it, and
when none can, route says so (exit 3, `"model": null`) with the sweep's own CRITICAL reason.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from homelab_app.ollama_standin import ModelSpec
from tests.fixtures.llama import LlamaServer
from tests.fixtures.net import LOOPBACK, free_port
from tests.fixtures.ollama import start_standin

pytestmark = pytest.mark.llama

HOMELAB = Path(sys.executable).with_name("homelab")
PROBE = {"connect_s": 1.0, "total_s": 5.0, "slow_ms": 4000}
IMAGE = "data:image/png;base64,iVBORw0KGgo="
CODE_PROMPT = "Write a Python function that parses a CSV file and returns a list of dicts, with type hints."
OLLAMA_MODELS = (
    ModelSpec(name="qwen2.5:0.5b", size=1000, capabilities=("completion",)),
    ModelSpec(name="nomic-embed-text", size=1000, capabilities=("embedding",)),
)


@dataclass(frozen=True)
class Servers:
    coder: str
    vectors: str
    ollama: str


@pytest.fixture(scope="module")
def servers(llama_server: Callable[..., LlamaServer], tiny_gguf: Path) -> Iterator[Servers]:
    coder = llama_server(tiny_gguf, alias="coder")
    vectors = llama_server(tiny_gguf, alias="vectors", extra_args=("--embeddings", "--pooling", "mean"))
    standin = start_standin(OLLAMA_MODELS)
    yield Servers(coder.url, vectors.url, standin.url)
    standin.stop()


def _dead() -> str:
    return f"http://{LOOPBACK}:{free_port()}"


def _cluster(
    tmp_path: Path, coder: str, vectors: str, ollama: str, embed: tuple[str, ...] = ("vectors", "nomic")
) -> Path:
    """`experts`: code coder then chat; chat; embed vectors then nomic (on the stand-in)."""
    cluster = {
        "name": "capabilities",
        "defaults": {"probe": PROBE},
        "history": {"url": "sqlite:///history.db"},
        "nodes": [
            {"name": "gpu", "tier": "gpu", "host": LOOPBACK, "endpoints": [
                {"name": "coder", "kind": "llamacpp", "url": coder, "models": [{"name": "coder", "alias": "coder"}]},
                {"name": "vectors", "kind": "llamacpp", "url": vectors,
                 "models": [{"name": "vectors", "alias": "vectors"}]},
            ]},
            {"name": "nas", "tier": "nas", "host": LOOPBACK, "endpoints": [
                {"name": "ollama", "kind": "ollama", "url": ollama, "models": [
                    {"name": "qwen2.5:0.5b", "alias": "chat"}, {"name": "nomic-embed-text", "alias": "nomic"}]},
            ]},
        ],
        "experts": {"code": ["coder", "chat"], "chat": ["chat"], "embed": list(embed)},
    }  # fmt: skip
    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump(cluster, sort_keys=False))
    return path


def _homelab(*args: str | Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "HOMELAB_INVENTORY"} | {"COLUMNS": "250"}
    return subprocess.run(
        [str(HOMELAB), *map(str, args)], capture_output=True, text=True, timeout=120, env=env, check=False
    )


def _route(inventory: Path, prompt: str, *extra: str) -> tuple[int, dict[str, Any]]:
    result = _homelab("route", prompt, "-i", inventory, "--json", "--ttl", "0", *extra)
    assert "Traceback" not in result.stderr, result.stderr
    return result.returncode, json.loads(result.stdout)


def _sweep(inventory: Path) -> tuple[int, dict[str, Any]]:
    result = _homelab("sweep", "-i", inventory, "--json")
    assert "Traceback" not in result.stderr, result.stderr
    return result.returncode, json.loads(result.stdout)


def test_with_only_the_embedding_model_up_a_code_request_gets_no_model(servers: Servers, tmp_path: Path) -> None:
    inventory = _cluster(tmp_path, _dead(), servers.vectors, _dead())

    code, decision = _route(inventory, CODE_PROMPT)
    swept, report = _sweep(inventory)

    assert (code, decision["category"], decision["needs"], decision["model"]) == (3, "code", "completion", None)
    lost = "no serving expert for code: none of coder, chat serves"
    assert decision["reason"].startswith(lost + "; no serving model can take code requests, which need completion: ")
    assert "vectors can do embedding (discovered)" in decision["reason"]
    assert (swept, report["cluster"]["prognosis"]) == (3, "CRITICAL")
    assert lost in report["cluster"]["reasons"], "route and sweep give one verdict"


def test_an_image_with_only_text_models_up_gets_no_model(servers: Servers, tmp_path: Path) -> None:
    inventory = _cluster(tmp_path, servers.coder, _dead(), servers.ollama)

    code, decision = _route(inventory, "what is in this picture?", "--image", IMAGE)

    assert (code, decision["category"], decision["needs"], decision["model"]) == (3, "vision", "vision", None)
    assert decision["reason"].startswith("no vision experts are configured; no serving model can take vision requests")
    can = {c["alias"]: (c["capabilities"]["have"], c["capabilities"]["source"]) for c in decision["candidates"]}
    assert can["coder"] == (["completion"], "discovered"), "llama-server's /props: no vision modality"
    assert can["chat"] == (["completion"], "discovered"), "Ollama's /api/show"
    assert not any(c["capable"] for c in decision["candidates"])


def test_embeddings_with_the_embed_experts_down_go_to_no_chat_model(servers: Servers, tmp_path: Path) -> None:
    inventory = _cluster(tmp_path, servers.coder, _dead(), servers.ollama, embed=("vectors",))

    code, decision = _route(inventory, "a sentence to embed", "--endpoint", "/v1/embeddings")
    swept, report = _sweep(inventory)

    assert (code, decision["category"], decision["model"], decision["fallbacks"]) == (3, "embed", None, [])
    lost = "no serving expert for embed: none of vectors serves"
    assert decision["reason"] == lost + (
        "; embeddings go only to the embed experts (another model's vectors live in another space)"
    ), "not the chat model, nor nomic, an embedding model that is no embed expert"
    assert [c["alias"] for c in decision["candidates"]] == ["vectors"]
    assert swept == 3 and lost in report["cluster"]["reasons"]


def test_embeddings_fall_back_to_the_next_embedding_model(servers: Servers, tmp_path: Path) -> None:
    inventory = _cluster(tmp_path, servers.coder, _dead(), servers.ollama)

    code, decision = _route(inventory, "a sentence to embed", "--endpoint", "/v1/embeddings")
    swept, report = _sweep(inventory)

    assert (code, decision["model"], decision["fallbacks"]) == (0, "nomic", [])
    assert "embed falls back to nomic (vectors does not serve)" in report["cluster"]["reasons"]
    assert swept == 1 and report["cluster"]["prognosis"] == "DEGRADED"


def test_chat_fallbacks_never_list_an_embedding_model(servers: Servers, tmp_path: Path) -> None:
    inventory = _cluster(tmp_path, servers.coder, servers.vectors, servers.ollama)

    code, decision = _route(inventory, "Tell me a long story about a lighthouse keeper and a storm.")

    assert code == 0 and decision["category"] in ("chat", "reason")
    assert decision["model"] == "chat" and decision["fallbacks"] == ["coder"]
    refused = {c["alias"] for c in decision["candidates"] if c["serving"] and not c["capable"]}
    assert refused == {"vectors", "nomic"}


def test_route_and_sweep_show_what_each_model_can_do(servers: Servers, tmp_path: Path) -> None:
    inventory = _cluster(tmp_path, servers.coder, servers.vectors, servers.ollama)

    routed = _homelab("route", CODE_PROMPT, "-i", inventory)
    swept = _homelab("sweep", "-i", inventory)
    _, report = _sweep(inventory)

    assert routed.returncode == 0, routed.stderr
    assert "needs     completion" in routed.stdout and "can       completion (discovered)" in routed.stdout
    assert "vectors: embedding (discovered)" in swept.stdout and "nomic: embedding (discovered)" in swept.stdout
    assert report["capabilities"]["chat"] == {"have": ["completion"], "source": "discovered"}
    assert report["endpoints"][1]["capabilities"] == {"vectors": ["embedding"]}
