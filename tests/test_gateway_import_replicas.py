"""Replicas and external models as the import leaves them: the router, the sweep and the generated config.

Endpoints are real loopback servers answering as OpenAI-compatible servers (fault servers with
canned `/v1/models`), and ports nothing listens on; health comes from real sweeps.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from homelab.errors import InventoryError
from homelab.gateway.config import build_config
from homelab.health.http import open_probe_client
from homelab.health.sweep import Prognosis, SweepReport, sweep
from homelab.inventory import Inventory, load_inventory
from homelab.router import HealthSource, HealthView, Router
from tests.fixtures.fault_servers import FaultServer, Handler, canned, json_route
from tests.fixtures.net import LOOPBACK, free_port
from tests.test_cli_validate import homelab

StartServer = Callable[[Handler], FaultServer]
PROBE = {"connect_s": 1.0, "total_s": 3.0, "slow_ms": 2500}
BODY = {"messages": [{"role": "user", "content": "Hi! How was your weekend?"}]}


def _openai(name: str) -> Handler:
    return canned({"/v1/models": json_route({"object": "list", "data": [{"id": name}]})})


def _dead() -> str:
    return f"http://{LOOPBACK}:{free_port()}"


def _cluster(a: str, b: str, c: str, external_api_base: str) -> dict[str, Any]:
    """`chat` on three endpoints of two nodes in two tiers; two external models."""

    def endpoint(name: str, url: str) -> dict[str, Any]:
        return {"name": name, "kind": "openai", "url": url, "models": [{"name": "qwen", "alias": "chat"}]}

    return {
        "name": "replicas",
        "defaults": {"probe": PROBE},
        "nodes": [
            {"name": "one", "tier": "gpu", "host": LOOPBACK, "endpoints": [endpoint("a", a), endpoint("b", b)]},
            {"name": "two", "tier": "cpu", "host": LOOPBACK, "endpoints": [endpoint("c", c)]},
        ],
        "experts": {"chat": ["chat"]},
        "gateway": {
            "external": [
                {"model_name": "gpt-4o", "litellm_params": {"model": "gpt-4o", "api_key": "os.environ/OPENAI_KEY"}},
                {"model_name": "lan-vllm", "litellm_params": {"model": "openai/x", "api_base": external_api_base}},
            ],
            "settings": {"router_settings": {"routing_strategy": "least-busy"}},
        },
    }


def _load(tmp_path: Path, cluster: dict[str, Any]) -> Inventory:
    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump(cluster, sort_keys=False))
    return load_inventory(path)


def _sweep(inv: Inventory, probe_external: bool | None = None) -> SweepReport:
    async def run() -> SweepReport:
        async with open_probe_client() as client:
            return await sweep(inv, client, probe_external=probe_external)

    return asyncio.run(run())


def _view(report: SweepReport) -> HealthView:
    return HealthView().updated(report.endpoints, HealthSource.LIVE)


def test_requests_take_the_serving_replicas_in_turn_and_never_a_dead_one(
    tmp_path: Path, fault_server: StartServer
) -> None:
    a, c = fault_server(_openai("qwen")), fault_server(_openai("qwen"))
    inv = _load(tmp_path, _cluster(a.url, _dead(), c.url, _dead()))
    router = Router(inv, _view(_sweep(inv)))

    picked = [router.decide("/v1/chat/completions", BODY).endpoint for _ in range(5)]
    again = Router(inv, router.view)

    assert picked == ["a", "c", "a", "c", "a"]
    assert [again.decide("/v1/chat/completions", BODY).endpoint for _ in range(2)] == ["a", "c"], "deterministic"
    decision = router.decide("/v1/chat/completions", BODY)
    assert decision.model == "chat" and decision.candidates[0].replicas == 3
    assert "(2 serve and can take it)" in decision.candidates[0].note


def test_an_alias_serves_while_one_replica_does(tmp_path: Path, fault_server: StartServer) -> None:
    c = fault_server(_openai("qwen"))
    inv = _load(tmp_path, _cluster(_dead(), _dead(), c.url, _dead()))

    report = _sweep(inv)
    c.stop()
    down = _sweep(inv)

    assert report.cluster.prognosis is Prognosis.DEGRADED, report.cluster.reasons
    assert Router(inv, _view(report)).decide("/v1/chat/completions", BODY).endpoint == "c"
    assert down.cluster.prognosis is Prognosis.CRITICAL
    assert "no serving expert for chat: none of chat serves" in down.cluster.reasons
    assert Router(inv, _view(down)).decide("/v1/chat/completions", BODY).model is None


def test_the_sweep_lists_external_models_and_probes_them_only_when_asked(
    tmp_path: Path, fault_server: StartServer
) -> None:
    external = fault_server(_openai("x"))
    inv = _load(tmp_path, _cluster(_dead(), _dead(), _dead(), f"{external.url}/v1"))

    listed = _sweep(inv)
    connections_after_listing = external.connections
    probed = _sweep(inv, probe_external=True)

    assert [(x.model_name, x.state) for x in listed.external] == [("gpt-4o", "external"), ("lan-vllm", "external")]
    assert connections_after_listing == 0, "an external model is not probed unless asked"
    assert [(x.model_name, x.state) for x in probed.external] == [("gpt-4o", "external"), ("lan-vllm", "UP")]
    assert probed.external[0].note == "no api_base: the openai provider's own API is not probed"
    assert probed.cluster.prognosis is Prognosis.CRITICAL, "external models count in no verdict"


def test_the_sweep_command_shows_external_models(tmp_path: Path) -> None:
    _load(tmp_path, _cluster(_dead(), _dead(), _dead(), "os.environ/LAN_VLLM_URL"))

    shown = homelab("sweep", "-i", tmp_path / "cluster.yaml")
    dumped = homelab("sweep", "-i", tmp_path / "cluster.yaml", "--json", "--probe-external")

    assert "external models" in shown.stdout and "gpt-4o" in shown.stdout and "not probed" in shown.stdout
    external = {x["model_name"]: x for x in yaml.safe_load(dumped.stdout)["external"]}
    assert external["lan-vllm"]["api_base"] == "os.environ/LAN_VLLM_URL"
    assert external["lan-vllm"]["note"] == "api_base os.environ/LAN_VLLM_URL: LAN_VLLM_URL is not set here"


def test_the_generated_config_lists_each_replica_under_one_name_with_the_owners_settings(tmp_path: Path) -> None:
    inv = _load(tmp_path, _cluster(_dead(), _dead(), _dead(), "os.environ/LAN_VLLM_URL"))

    config = build_config(inv)

    names = [(e["model_name"], e["litellm_params"].get("api_base")) for e in config["model_list"]]
    assert [n for n, _ in names] == ["chat", "chat", "chat", "gpt-4o", "lan-vllm"], "replicas in two tiers: ALIAS"
    assert len({api_base for _, api_base in names[:3]}) == 3
    assert config["router_settings"]["routing_strategy"] == "least-busy"
    assert "chat" not in config["router_settings"]["model_group_alias"], "chat is a model name itself"
    assert config["model_list"][3] == {
        "model_name": "gpt-4o",
        "litellm_params": {"model": "gpt-4o", "api_key": "os.environ/OPENAI_KEY"},
    }


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"models": [{"name": "qwen", "alias": "chat"}, {"name": "llama", "alias": "chat"}]}, "on this endpoint"),
        ({"models": [{"name": "qwen", "alias": "chat", "gateway": {"model_name": "other"}}]}, "replicas of 'chat'"),
        ({"models": [{"name": "q", "alias": "chat", "gateway": {"params": {"api_key": "sk-x"}}}]}, "os.environ/"),
    ],
    ids=["twice-on-one-endpoint", "replicas-with-two-names", "literal-key"],
)
def test_replica_mistakes_are_refused_with_the_field(tmp_path: Path, change: dict[str, Any], message: str) -> None:
    cluster = _cluster(_dead(), _dead(), _dead(), _dead())
    cluster["nodes"][0]["endpoints"][0]["models"][0]["gateway"] = {"model_name": "chat"}
    cluster["nodes"][1]["endpoints"][0] |= change

    with pytest.raises(InventoryError) as caught:
        _load(tmp_path, cluster)

    assert message in str(caught.value)
    assert "sk-x" not in str(caught.value)


@pytest.mark.parametrize("section", ["router_settings", "litellm_settings"])
def test_the_owners_fallbacks_win_and_homelabs_join_them_where_they_are(tmp_path: Path, section: str) -> None:
    cluster = _cluster(_dead(), _dead(), _dead(), _dead())
    cluster["nodes"][1]["endpoints"][0]["models"].append({"name": "coder", "alias": "coder"})
    cluster["experts"] = {"code": ["coder", "chat"], "fast": ["chat", "coder"]}
    cluster["gateway"]["settings"] = {section: {"fallbacks": [{"chat": ["gpt-4o"]}]}}
    inv = _load(tmp_path, cluster)

    config = build_config(inv)

    merged = config[section]["fallbacks"]
    assert merged == [{"chat": ["gpt-4o"]}, {"coder": ["chat"]}, {"cpu/coder": ["chat"]}]
    if section == "litellm_settings":  # LiteLLM reads litellm_settings' only while router_settings' is empty
        assert config["router_settings"]["fallbacks"] == []
