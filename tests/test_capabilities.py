"""What each model can do: the sources in order, discovery on real servers, the history, validate.

Discovery runs against the real llama-server (a text model, and one started with
`--embeddings`) and the Ollama stand-in (given models, and one created from a GGUF whose keys
and template say what it can do, read as Ollama reads them). The history keeps what a sweep
found, so routing from it needs no probe.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from gguf import GGUFWriter

from homelab.health.http import open_probe_client
from homelab.health.probe import EndpointState, ProbeResult, Reason
from homelab.health.sweep import Prognosis, SweepReport, classify_cluster, expert_verdict, sweep
from homelab.history import open_history
from homelab.inventory import Capability, Category, Inventory
from homelab.inventory.capabilities import CapabilitySource, model_capabilities, name_hint
from homelab.router import open_router
from homelab_app.ollama_standin import ModelSpec
from tests.fixtures.llama import LlamaServer
from tests.fixtures.net import LOOPBACK
from tests.fixtures.ollama import StandInServer

HOMELAB = Path(sys.executable).with_name("homelab")
C, V, E, T, R = (Capability.COMPLETION, Capability.VISION, Capability.EMBEDDING, Capability.TOOLS, Capability.REASONING)
STANDIN_MODELS = (
    ModelSpec(name="qwen2.5:0.5b", size=1000, capabilities=("completion", "tools")),
    ModelSpec(name="nomic-embed-text", size=1000, capabilities=("embedding",)),
    ModelSpec(name="gemma3:4b", size=1000, capabilities=("completion", "vision")),
    ModelSpec(name="deepseek-r1:1.5b", size=1000, capabilities=("completion", "thinking", "insert")),
)


@pytest.mark.parametrize(
    ("name", "hint"),
    [
        ("nomic-embed-text", [E]),
        ("mxbai-embed-large:335m", [E]),
        ("bge-m3", [E]),
        ("text-embedding-3-small", [E]),
        ("llava:7b", [C, V]),
        ("qwen2.5vl:7b", [C, V]),
        ("Qwen2-VL-7B-Instruct", [C, V]),
        ("qwen2.5-coder:7b", None),
        ("llama3.2:1b", None),
        ("deepseek-r1:14b", None),
    ],
)
def test_a_name_hints_only_what_it_says(name: str, hint: list[Capability] | None) -> None:
    assert name_hint(name) == hint


def _inventory(models: list[dict[str, Any]], experts: dict[str, list[str]]) -> Inventory:
    endpoint = {"name": "ollama", "kind": "ollama", "url": "http://127.0.0.1:11434", "models": models}
    nodes = [{"name": "box", "tier": "t", "host": LOOPBACK, "endpoints": [endpoint]}]
    return Inventory.model_validate({"nodes": nodes, "experts": experts})


def test_the_most_trusted_source_that_knows_wins() -> None:
    inv = _inventory(
        [
            {"name": "nomic-embed-text", "alias": "declared", "capabilities": ["completion", "tools"]},
            {"name": "nomic-embed-text", "alias": "discovered"},
            {"name": "llava:7b", "alias": "named"},
            {"name": "m1", "alias": "listed"},
            {"name": "m2", "alias": "plain"},
        ],
        {"embed": ["listed"], "vision": ["named"]},
    )
    models = {m.alias: m for m in inv.nodes[0].endpoints[0].models}
    seen = {alias: model_capabilities(inv, m, [C, V] if alias != "plain" else None) for alias, m in models.items()}
    assert (seen["declared"].have, seen["declared"].source) == ([C, T], CapabilitySource.DECLARED)
    assert (seen["discovered"].have, seen["discovered"].source) == ([C, V], CapabilitySource.DISCOVERED)
    assert str(seen["discovered"]) == "completion, vision (discovered)"
    unknown = {alias: model_capabilities(inv, m, None) for alias, m in models.items()}
    assert (unknown["discovered"].have, unknown["discovered"].source) == ([E], CapabilitySource.NAME)
    assert (unknown["named"].have, unknown["named"].source) == ([C, V], CapabilitySource.NAME)
    assert (unknown["listed"].have, unknown["listed"].source) == ([E], CapabilitySource.EXPERTS)
    assert (unknown["plain"].have, unknown["plain"].source) == ([C], CapabilitySource.ASSUMED)


async def _sweep(inv: Inventory) -> SweepReport:
    async with open_probe_client() as client:
        return await sweep(inv, client)


def _endpoint(name: str, kind: str, url: str, *models: str) -> dict[str, Any]:
    return {"name": name, "kind": kind, "url": url, "models": [{"name": m, "alias": m.split(":")[0]} for m in models]}


@pytest.mark.llama
def test_llama_server_says_whether_it_completes_or_embeds(
    llama_server: Callable[..., LlamaServer], tiny_gguf: Path
) -> None:
    text = llama_server(tiny_gguf, alias="text")
    vectors = llama_server(tiny_gguf, alias="vectors", extra_args=("--embeddings", "--pooling", "mean"))
    endpoints = [
        _endpoint("text", "llamacpp", text.url, "text"),
        _endpoint("vec", "llamacpp", vectors.url, "vectors"),
        _endpoint("renamed", "llamacpp", text.url, "qwen2.5-coder-7b"),  # one server, one model, whatever its name
    ]
    inv = Inventory.model_validate({"nodes": [{"name": "n", "tier": "t", "host": LOOPBACK, "endpoints": endpoints}]})

    report = asyncio.run(_sweep(inv))

    assert [(r.endpoint, r.state, r.capabilities) for r in report.endpoints] == [
        ("text", "UP", {"text": [C]}),
        ("vec", "UP", {"vectors": [E]}),
        ("renamed", "UP", {"qwen2.5-coder-7b": [C]}),
    ]
    assert str(report.capabilities["vectors"]) == "embedding (discovered)"


def test_ollama_capabilities_come_from_api_show(
    ollama_standin_factory: Callable[[Sequence[ModelSpec]], StandInServer],
) -> None:
    server = ollama_standin_factory(STANDIN_MODELS)
    names = ["qwen2.5:0.5b", "nomic-embed-text", "gemma3:4b", "deepseek-r1:1.5b", "absent:1b"]
    endpoint = _endpoint("ollama", "ollama", server.url, *names)
    inv = Inventory.model_validate({"nodes": [{"name": "n", "tier": "t", "host": LOOPBACK, "endpoints": [endpoint]}]})

    (result,) = asyncio.run(_sweep(inv)).endpoints

    assert result.capabilities == {
        "qwen2.5:0.5b": [C, T],
        "nomic-embed-text": [E],
        "gemma3:4b": [C, V],
        "deepseek-r1:1.5b": [C, R],  # Ollama's `thinking`; `insert` decides no routing
    }, "a model the server does not list is not asked about"
    shows = [path for method, path in server.standin.requests if path == "/api/show"]
    assert len(shows) == 4


def _vision_tool_gguf(path: Path) -> bytes:
    """A GGUF with a vision encoder's block count and a template that takes tools and thinks."""
    writer = GGUFWriter(path, "llama")
    writer.add_block_count(2)
    writer.add_uint32("llama.vision.block_count", 2)
    writer.add_chat_template("{% if tools %}{{ tools }}{% endif %}<think>{{ messages }}</think>")
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path.read_bytes()


def test_a_created_model_gets_ollamas_capabilities_from_its_gguf(
    ollama_standin_factory: Callable[[Sequence[ModelSpec]], StandInServer], tmp_path: Path
) -> None:
    server = ollama_standin_factory(())
    data = _vision_tool_gguf(tmp_path / "m.gguf")
    digest = f"sha256:{hashlib.sha256(data).hexdigest()}"
    assert httpx.post(f"{server.url}/api/blobs/{digest}", content=data, timeout=5).status_code == 201
    created = httpx.post(f"{server.url}/api/create", json={"model": "eyes", "files": {"m.gguf": digest}}, timeout=5)
    assert created.status_code == 200 and '"success"' in created.text

    shown = httpx.post(f"{server.url}/api/show", json={"model": "eyes"}, timeout=5).json()

    assert shown["capabilities"] == ["tools", "thinking", "completion", "vision"]  # server/images.go's order


def test_the_history_keeps_what_a_sweep_found_and_routing_reads_it_without_probing(
    ollama_standin_factory: Callable[[Sequence[ModelSpec]], StandInServer], tmp_path: Path
) -> None:
    server = ollama_standin_factory(STANDIN_MODELS)
    endpoint = _endpoint("ollama", "ollama", server.url, "qwen2.5:0.5b", "gemma3:4b")
    nodes = [{"name": "n", "tier": "t", "host": LOOPBACK, "endpoints": [endpoint]}]
    inv = Inventory.model_validate({"nodes": nodes, "experts": {"chat": ["qwen2.5"]}})
    url = f"sqlite:///{tmp_path}/history.db"
    with open_history(url) as store:
        store.record_sweep(asyncio.run(_sweep(inv)))
        assert store.latest_states()[("n", "ollama")].capabilities == {"qwen2.5:0.5b": [C, T], "gemma3:4b": [C, V]}
        router, refreshed = asyncio.run(open_router(inv, None, store))
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
    body = {"messages": [{"role": "user", "content": [{"type": "text", "text": "what is it?"}, image]}]}

    decision = router.decide("/v1/chat/completions", body)

    assert refreshed.probed == 0
    assert (decision.category, decision.model, decision.health_source) == (Category.VISION, "gemma3", "history")
    assert str(decision.candidates[0].capabilities) == "completion, tools (discovered)"


def _validate(tmp_path: Path, cluster: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump(cluster, sort_keys=False))
    env = {k: v for k, v in os.environ.items() if k != "HOMELAB_INVENTORY"}
    return subprocess.run(
        [str(HOMELAB), "validate", str(path)], capture_output=True, text=True, timeout=60, env=env, check=False
    )


def test_validate_flags_an_expert_the_file_says_cannot_serve_its_category(tmp_path: Path) -> None:
    models = [
        {"name": "nomic-embed-text", "alias": "vectors"},
        {"name": "qwen2.5:7b", "alias": "general", "capabilities": ["completion", "tools"]},
        {"name": "mystery", "alias": "mystery"},
    ]
    cluster = {
        "nodes": [{"name": "box", "tier": "t", "host": LOOPBACK, "endpoints": [
            {"name": "ollama", "kind": "ollama", "url": "http://127.0.0.1:11434", "models": models}]}],
        "experts": {"chat": ["vectors", "general"], "vision": ["general", "mystery"], "embed": ["vectors"]},
    }  # fmt: skip

    result = _validate(tmp_path, cluster)

    assert result.returncode == 2, result.stdout
    lines = [line for line in result.stderr.splitlines() if "cluster.yaml:" in line]
    assert len(lines) == 2, result.stderr
    assert "experts.chat[0]: vectors cannot take chat requests, which need completion: its name " in lines[0]
    assert "'nomic-embed-text' says embedding" in lines[0]
    assert "experts.vision[0]: general cannot take vision requests, which need vision: its capabilities: " in lines[1]
    assert "mystery" not in result.stderr, "a model the file says nothing about is not flagged"


def test_an_unknown_capability_is_a_located_schema_error(tmp_path: Path) -> None:
    endpoint = {"name": "o", "kind": "ollama", "url": "http://127.0.0.1:11434",
                "models": [{"name": "m", "alias": "m", "capabilities": ["completion", "telepathy"]}]}  # fmt: skip
    result = _validate(tmp_path, {"nodes": [{"name": "b", "tier": "t", "host": LOOPBACK, "endpoints": [endpoint]}]})
    assert result.returncode == 2
    assert "capabilities[1]: must be 'completion', 'vision', 'embedding', 'tools' or 'reasoning'" in result.stderr
    assert json.dumps("telepathy") in result.stderr.replace("'", '"')


def test_an_expert_that_serves_but_cannot_take_its_category_leaves_it_critical() -> None:
    inv = _inventory([{"name": "mystery", "alias": "mystery"}, {"name": "chatty", "alias": "chatty"}],
                     {"embed": ["mystery"], "chat": ["chatty"]})  # fmt: skip
    up = ProbeResult(
        node="box", tier="t", endpoint="ollama", kind="ollama", url="http://127.0.0.1:11434", state=EndpointState.UP,
        reason=Reason.OK, latency_ms=1.0, checked_at=datetime.now(UTC), capabilities={"mystery": [C]},
    )  # fmt: skip

    verdict = expert_verdict(inv, Category.EMBED, lambda node, endpoint: up)
    cluster = classify_cluster(inv, [up])

    lost = "no serving expert for embed: none of mystery serves (mystery serves but has no embedding: completion "
    assert verdict.serving == [] and verdict.lost == lost + "(discovered))"
    assert cluster.prognosis is Prognosis.CRITICAL and cluster.reasons == [verdict.lost]
    assert expert_verdict(inv, Category.CHAT, lambda node, endpoint: up).serving == ["chatty"]
