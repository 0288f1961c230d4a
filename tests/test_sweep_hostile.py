"""A hostile or crowded endpoint never costs the others their results (issue #20).

Through the real `homelab sweep --json` and `homelab route`: an endpoint answering 5,000
nested arrays and one sending an endless body are DOWN, every other result is kept and
stored. In process, on real loopback servers: forty endpoints behind one slow reverse proxy
are UP, not DOWN; a URL with a password never reaches the printed report, the route
decision, the logs or the history file.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from homelab.health.http import open_probe_client
from homelab.health.probe import EndpointState, Reason
from homelab.health.sweep import SweepLimits, sweep
from homelab.history import open_history
from homelab.inventory import Category, Endpoint, EndpointKind, Inventory, Node, ServedModel
from homelab.router import open_router
from tests.fixtures.fault_servers import FaultServer, Handler, Route, canned, delayed, endless_body, json_route
from tests.fixtures.net import LOOPBACK
from tests.test_sweep_cli import _run, _write

StartServer = Callable[[Handler], FaultServer]

SECRET = "s3cret-pa55word"
OLLAMA = canned({
    "/api/tags": json_route({"models": [{"name": "qwen2.5:0.5b", "model": "qwen2.5:0.5b", "size": 1}]}),
    "/api/ps": json_route({"models": []}),
})  # fmt: skip
OPENAI = canned({"/v1/models": json_route({"object": "list", "data": [{"id": "coder-7b"}]})})
LITELLM = canned({"/health/liveliness": json_route("I'm alive!")})
DEEP = canned({}, Route(200, b"[" * 5000 + b"]" * 5000))  # 10 KB, 5,000 levels
# Every path of every Ollama behind the proxy: a model list /api/tags and /api/ps both accept.
PROXIED_OLLAMA = json_route({"models": [{"name": "m", "model": "m", "size": 1, "size_vram": 1}]})


def _hostile_cluster(servers: dict[str, str]) -> dict[str, Any]:
    """Two tiers; the code expert `deep` answers nested JSON, `huge` an endless body."""
    openai = [
        {"name": name, "kind": "openai", "url": servers[name], "models": [{"name": "coder-7b", "alias": alias}]}
        for name, alias in (("coder", "coder"), ("deep", "deep-coder"), ("huge", "huge-coder"))
    ]
    return {
        "name": "hostile",
        "defaults": {"probe": {"connect_s": 1.0, "total_s": 3.0, "slow_ms": 2500}},
        "nodes": [
            {"name": "gpu-box", "tier": "gpu", "host": LOOPBACK, "endpoints": [
                {"name": "ollama", "kind": "ollama", "url": servers["ollama"],
                 "models": [{"name": "qwen2.5:0.5b", "alias": "chat"}]},
                {"name": "gateway", "kind": "litellm", "url": servers["gateway"]},
            ]},
            {"name": "cpu-box", "tier": "cpu", "host": LOOPBACK, "endpoints": openai},
        ],
        "experts": {"chat": ["chat"], "code": ["deep-coder", "huge-coder", "coder"]},
        "gateway": {"endpoint": "gpu-box/gateway"},
    }  # fmt: skip


@pytest.fixture
def hostile_inventory(tmp_path: Path, fault_server: StartServer) -> Path:
    handlers = {"ollama": OLLAMA, "gateway": LITELLM, "coder": OPENAI, "deep": DEEP,
                "huge": endless_body(100 * 1024 * 1024, announce=False)}  # fmt: skip
    return _write(tmp_path, _hostile_cluster({name: fault_server(h).url for name, h in handlers.items()}))


EXPECTED = {
    "gpu-box/ollama": ("UP", "ok"),
    "gpu-box/gateway": ("UP", "ok"),
    "cpu-box/coder": ("UP", "ok"),
    "cpu-box/deep": ("DOWN", "bad_body"),
    "cpu-box/huge": ("DOWN", "too_large"),
}


def test_sweep_json_keeps_every_result_beside_deep_json_and_a_huge_body(hostile_inventory: Path) -> None:
    done = _run("sweep", "--inventory", hostile_inventory, "--json")
    assert done.returncode == 1, done.stdout + done.stderr  # DEGRADED: code falls back to coder
    assert "Traceback" not in done.stderr
    report = json.loads(done.stdout)
    assert {f"{e['node']}/{e['endpoint']}": (e["state"], e["reason"]) for e in report["endpoints"]} == EXPECTED
    assert "code falls back to coder (deep-coder does not serve)" in report["cluster"]["reasons"]


def test_route_goes_past_deep_json_and_stores_the_whole_sweep(hostile_inventory: Path) -> None:
    done = _run("route", "write a python function that sorts a list of numbers", "-i", hostile_inventory, "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    decision = json.loads(done.stdout)
    assert decision["model"] in {"coder", "chat"}, decision
    states = {c["alias"]: c["state"] for c in decision["candidates"]}
    assert (states["deep-coder"], states["huge-coder"]) == ("DOWN", "DOWN")
    rows = sqlite3.connect(hostile_inventory.parent / "homelab-history.db").execute(
        "SELECT node || '/' || endpoint, state, reason FROM probe_results"
    )
    assert {key: (state, reason) for key, state, reason in rows} == EXPECTED


def _behind_proxy(proxy: str, n: int, kind: EndpointKind, probe: dict[str, float]) -> Inventory:
    """`n` nodes whose one endpoint each is a path of the same reverse proxy (one origin)."""
    nodes = [
        {"name": f"n{i}", "tier": "lab", "host": LOOPBACK,
         "endpoints": [{"name": "ep", "kind": kind.value, "url": f"{proxy}/n{i}"}]}
        for i in range(n)
    ]  # fmt: skip
    return Inventory.model_validate({"defaults": {"probe": probe}, "nodes": nodes})


async def test_forty_ollamas_behind_one_slow_proxy_are_all_up(fault_server: StartServer) -> None:
    """Two requests per Ollama probe, 0.5 s each: 40 probes need 40 connections to that origin at once."""
    proxy = fault_server(delayed(PROXIED_OLLAMA, 0.5))
    inv = _behind_proxy(proxy.url, 40, EndpointKind.OLLAMA, {"connect_s": 1.0, "total_s": 3.0, "slow_ms": 2500})
    async with open_probe_client() as client:
        report = await sweep(inv, client)
    assert [r.state for r in report.endpoints] == [EndpointState.UP] * 40, {r.detail for r in report.endpoints}
    assert proxy.connections == 80
    assert report.duration_ms < 3000


async def test_a_probe_waiting_for_its_origin_has_not_started_its_clock(fault_server: StartServer) -> None:
    """Ten connections for forty endpoints: four waves of 0.5 s, each probe within its own 1.5 s."""
    proxy = fault_server(delayed(json_route({"data": [{"id": "m"}]}), 0.5))
    inv = _behind_proxy(proxy.url, 40, EndpointKind.OPENAI, {"connect_s": 1.0, "total_s": 1.5, "slow_ms": 1400})
    limits = SweepLimits(max_connections_per_origin=10)
    async with open_probe_client(limits.max_connections_per_origin) as client:
        report = await sweep(inv, client, limits)
    assert [r.state for r in report.endpoints] == [EndpointState.UP] * 40, {r.detail for r in report.endpoints}
    assert max(r.latency_ms for r in report.endpoints) < 1400
    assert report.duration_ms >= 4 * 500 * 0.9  # the cap held: four waves, not one


def _unchecked_cluster(urls: list[str]) -> Inventory:
    """A cluster of OpenAI endpoints `e0`, `e1`... (served alias `coder` on `e0`) at URLs the
    cluster file's validation refuses (a password, an IDNA error), as `gateway import` or an
    older file could bring them: the models are built without validation."""
    endpoints = [
        Endpoint.model_construct(name=f"e{i}", kind=EndpointKind.OPENAI, url=url, models=[])
        for i, url in enumerate(urls)
    ]
    endpoints[0] = endpoints[0].model_copy(update={"models": [ServedModel(name="coder-7b", alias="coder")]})
    node = Node.model_construct(name="box", tier="lab", host=LOOPBACK, endpoints=endpoints)
    return Inventory.model_construct(nodes=[node], experts={Category.CODE: ["coder"]})


BAD_URLS = [json.loads(line) for line in (Path(__file__).parent / "cases/hostile/probe/bad_urls.jsonl").open()]


async def test_urls_httpx_refuses_are_down_and_every_other_result_is_kept(fault_server: StartServer) -> None:
    good = fault_server(canned({"/v1/models": json_route({"data": [{"id": "coder-7b"}]})})).url
    inv = _unchecked_cluster([good, *(case["url"] for case in BAD_URLS)])
    async with open_probe_client() as client:
        report = await sweep(inv, client)
    first, *rest = report.endpoints
    assert first.state is EndpointState.UP, first.detail
    found = {
        case["id"]: (r.state.value, r.reason.value, case["detail"] in r.detail)
        for case, r in zip(BAD_URLS, rest, strict=True)
    }
    assert found == {case["id"]: ("DOWN", case["reason"], True) for case in BAD_URLS}, [r.detail for r in rest]
    json.loads(report.model_dump_json())


async def test_a_password_in_a_url_is_never_printed_logged_or_stored(
    tmp_path: Path, fault_server: StartServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    server = fault_server(canned({"/v1/models": json_route({"data": [{"id": "coder-7b"}]})}))
    inv = _unchecked_cluster([f"http://admin:{SECRET}@{LOOPBACK}:{server.port}"])
    async with open_probe_client() as client:
        report = await sweep(inv, client)
        router, _ = await open_router(inv, client)
    [result] = report.endpoints
    assert (result.state, result.reason) == (EndpointState.UP, Reason.OK), result.detail
    printed = report.model_dump_json()
    assert f"http://***@{LOOPBACK}:{server.port}" in printed
    decision = router.decide("/v1/chat/completions", {"messages": [{"role": "user", "content": "def f(): pass"}]})
    assert decision.model == "coder"
    raw = result.model_copy(update={"url": inv.nodes[0].endpoints[0].url})  # a result built elsewhere
    with open_history(f"sqlite:///{tmp_path}/h.db") as history:
        history.record_sweep(report)
        history.record_sweep(report.model_copy(update={"endpoints": [raw]}))
        stored = history.sweep_results(2)[0].url
    assert stored == f"http://***@{LOOPBACK}:{server.port}"
    database = b"".join(path.read_bytes() for path in tmp_path.glob("h.db*"))  # the WAL too
    for shown in (printed, decision.model_dump_json(), caplog.text, database.decode("latin-1")):
        assert SECRET not in shown
