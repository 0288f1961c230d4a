"""Probes against misbehaving servers on real loopback sockets: each fault gets the right reason, on time.

Every probe here must end within its endpoint's total timeout (plus a generous second for a
loaded machine); the 100 MB body must be cut off at the cap; a reset must be retried once.
Hostile answers (nesting, numbers, encodings) are data files under tests/cases/hostile/probe/,
one per case, run by `test_hostile_answer_is_data`.
"""

from __future__ import annotations

import base64
import gzip
import json
import socket
import ssl
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from homelab.health.http import open_probe_client
from homelab.health.probe import DEFAULT_PROBE_LIMITS, EndpointState, ProbeLimits, ProbeResult, Reason, probe_endpoint
from homelab.inventory import Endpoint, EndpointKind, Node, ProbeSettings
from tests.fixtures.fault_servers import (
    FaultServer,
    Handler,
    Route,
    blackhole,
    canned,
    delayed,
    endless_body,
    hang_up,
    json_route,
    over_tls,
    reset,
    reset_then,
    slowloris,
)
from tests.fixtures.net import LOOPBACK, free_port

SETTINGS = ProbeSettings(connect_s=0.5, total_s=2.0, slow_ms=1500)
MARGIN_S = 1.0
HUNDRED_MB = 100 * 1024 * 1024

StartServer = Callable[[Handler], FaultServer]

OPENAI_MODELS = json_route({"object": "list", "data": [{"id": "tiny", "object": "model"}]})
OLLAMA_TAGS = json_route({"models": [{"name": "qwen2.5:0.5b", "model": "qwen2.5:0.5b", "size": 1}]})
HTML = Route(200, b"<!doctype html><html><body>Router login</body></html>", "text/html; charset=utf-8")


def _not_http(conn: socket.socket, server: FaultServer) -> None:
    """An SSH banner where an HTTP answer should be (a port mix-up)."""
    server.read_request(conn)
    server.send(conn, b"SSH-2.0-OpenSSH_9.2\r\n\r\n")


async def _probe(
    kind: EndpointKind, url: str, settings: ProbeSettings = SETTINGS, limits: ProbeLimits = DEFAULT_PROBE_LIMITS
) -> tuple[ProbeResult, float]:
    """Probe one endpoint; also return the wall time the test saw."""
    node = Node(name="box", tier="lab", host=LOOPBACK)
    endpoint = Endpoint(name="ep", kind=kind, url=url)
    started = time.monotonic()
    async with open_probe_client() as client:
        result = await probe_endpoint(client, node, endpoint, settings, limits)
    return result, time.monotonic() - started


def _assert_on_time(result: ProbeResult, wall_s: float, settings: ProbeSettings = SETTINGS) -> None:
    assert result.latency_ms <= (settings.total_s + MARGIN_S) * 1000, result
    assert wall_s <= settings.total_s + MARGIN_S, (wall_s, result)


@dataclass(frozen=True)
class Fault:
    kind: EndpointKind
    handler: Handler | None
    state: EndpointState
    reason: Reason
    detail: str
    scheme: str = "http"


FAULTS = {
    "refused": Fault(EndpointKind.OLLAMA, None, EndpointState.DOWN, Reason.REFUSED, "refused"),
    "blackhole": Fault(EndpointKind.OLLAMA, blackhole, EndpointState.DOWN, Reason.TIMEOUT, ""),
    "slowloris": Fault(EndpointKind.LLAMACPP, slowloris, EndpointState.DOWN, Reason.TIMEOUT, "2 s"),
    "html-everywhere-ollama": Fault(
        EndpointKind.OLLAMA, canned({}, HTML), EndpointState.DOWN, Reason.BAD_BODY, "text/html"
    ),
    "html-everywhere-llamacpp": Fault(
        EndpointKind.LLAMACPP, canned({}, HTML), EndpointState.DOWN, Reason.BAD_BODY, "text/html"
    ),
    "html-everywhere-litellm": Fault(
        EndpointKind.LITELLM, canned({}, HTML), EndpointState.DOWN, Reason.BAD_BODY, "text/html"
    ),
    "invalid-json": Fault(
        EndpointKind.OLLAMA,
        canned({"/api/tags": Route(200, b'{"models": [{"name": ', "application/json")}),
        EndpointState.DOWN,
        Reason.BAD_BODY,
        "invalid JSON",
    ),
    "json-without-model-list": Fault(
        EndpointKind.OPENAI,
        canned({"/v1/models": json_route({"ok": True})}),
        EndpointState.DOWN,
        Reason.BAD_BODY,
        "'data'",
    ),
    "wrong-content-type": Fault(
        EndpointKind.OPENAI,
        canned({"/v1/models": Route(200, OPENAI_MODELS.body, "text/plain")}),
        EndpointState.DOWN,
        Reason.BAD_BODY,
        "text/plain",
    ),
    "redirect-loop": Fault(
        EndpointKind.OPENAI,
        canned({}, Route(302, b"", headers={"Location": "/v1/models"})),
        EndpointState.DOWN,
        Reason.HTTP_STATUS,
        "redirects to /v1/models",
    ),
    "http-500": Fault(
        EndpointKind.OLLAMA,
        canned({}, Route(500, b"oops", "text/plain")),
        EndpointState.DOWN,
        Reason.HTTP_STATUS,
        "HTTP 500",
    ),
    "llama-loading": Fault(
        EndpointKind.LLAMACPP,
        canned({"/health": json_route({"error": {"code": 503, "message": "Loading model"}}, status=503)}),
        EndpointState.SLOW,
        Reason.LOADING,
        "loading",
    ),
    "llama-health-not-ok": Fault(
        EndpointKind.LLAMACPP,
        canned({"/health": json_route({"status": "error"})}),
        EndpointState.DOWN,
        Reason.BAD_BODY,
        "status",
    ),
    "connection-reset": Fault(EndpointKind.OLLAMA, reset, EndpointState.DOWN, Reason.RESET, "2 attempts"),
    "hang-up-after-accept": Fault(EndpointKind.LITELLM, hang_up, EndpointState.DOWN, Reason.RESET, "2 attempts"),
    "not-http": Fault(EndpointKind.OPENAI, _not_http, EndpointState.DOWN, Reason.BAD_BODY, "not HTTP"),
    "tls-to-plain-http": Fault(
        EndpointKind.OPENAI, canned({"/v1/models": OPENAI_MODELS}), EndpointState.DOWN, Reason.TLS, "TLS", "https"
    ),
    "gzip-despite-identity": Fault(
        EndpointKind.OPENAI,
        canned({"/v1/models": Route(200, gzip.compress(OPENAI_MODELS.body), headers={"Content-Encoding": "gzip"})}),
        EndpointState.DOWN,
        Reason.BAD_BODY,
        "gzip",
    ),
    "ollama-ps-garbage": Fault(
        EndpointKind.OLLAMA,
        canned({"/api/tags": OLLAMA_TAGS, "/api/ps": json_route({"models": [{"size": "big"}]})}),
        EndpointState.DOWN,
        Reason.BAD_BODY,
        "/api/ps",
    ),
}


@pytest.mark.parametrize("name", FAULTS)
async def test_fault_is_classified_within_its_timeout(name: str, fault_server: StartServer) -> None:
    fault = FAULTS[name]
    port = fault_server(fault.handler).port if fault.handler else free_port()
    result, wall_s = await _probe(fault.kind, f"{fault.scheme}://{LOOPBACK}:{port}")
    assert (result.state, result.reason) == (fault.state, fault.reason), result.detail
    assert fault.detail in result.detail
    _assert_on_time(result, wall_s)


async def test_name_under_invalid_is_dns_without_a_resolver() -> None:
    result, wall_s = await _probe(EndpointKind.OLLAMA, "http://ollama.invalid:11434")
    assert (result.state, result.reason) == (EndpointState.DOWN, Reason.DNS)
    assert "ollama.invalid" in result.detail
    assert result.latency_ms < 100  # answered locally: no resolver, no timeout
    _assert_on_time(result, wall_s)


async def test_full_accept_queue_ends_at_the_connect_timeout(full_backlog: str) -> None:
    settings = ProbeSettings(connect_s=0.5, total_s=5.0, slow_ms=1000)
    result, wall_s = await _probe(EndpointKind.OLLAMA, full_backlog, settings)
    assert (result.state, result.reason) == (EndpointState.DOWN, Reason.TIMEOUT)
    assert "ConnectTimeout" in result.detail
    assert wall_s < settings.connect_s + MARGIN_S  # the connect budget, not the whole total_s


async def test_slowloris_ends_at_the_total_timeout_not_the_read_timeout(fault_server: StartServer) -> None:
    server = fault_server(slowloris)
    settings = ProbeSettings(connect_s=0.5, total_s=3.0, slow_ms=1000)
    result, wall_s = await _probe(EndpointKind.OLLAMA, server.url, settings)
    assert (result.state, result.reason) == (EndpointState.DOWN, Reason.TIMEOUT)
    assert server.bytes_sent >= 2  # it did trickle, so no single read ever timed out
    _assert_on_time(result, wall_s, settings)


async def test_reset_is_retried_once(fault_server: StartServer) -> None:
    server = fault_server(reset_then(canned({"/v1/models": OPENAI_MODELS}), resets=1))
    result, _ = await _probe(EndpointKind.OPENAI, server.url)
    assert result.state is EndpointState.UP, result.detail
    assert result.models == ["tiny"]
    assert server.connections == 2


async def test_persistent_reset_gives_up_after_one_retry(fault_server: StartServer) -> None:
    server = fault_server(reset)
    result, _ = await _probe(EndpointKind.OPENAI, server.url)
    assert result.reason is Reason.RESET
    assert server.connections == 3  # two HTTP attempts, then one TLS handshake that is reset too


async def test_plain_http_at_a_tls_port_is_tls(fault_server: StartServer, tls_context: ssl.SSLContext) -> None:
    server = fault_server(over_tls(tls_context, canned({"/v1/models": OPENAI_MODELS})))
    result, wall_s = await _probe(EndpointKind.OPENAI, server.url)
    assert server.url.startswith("http://")
    assert (result.state, result.reason) == (EndpointState.DOWN, Reason.TLS), result.detail
    assert "speaks TLS" in result.detail and "https://" in result.detail
    _assert_on_time(result, wall_s)


async def test_a_plain_server_that_hangs_up_is_still_a_reset(fault_server: StartServer) -> None:
    server = fault_server(hang_up)
    result, _ = await _probe(EndpointKind.OLLAMA, server.url)
    assert (result.state, result.reason) == (EndpointState.DOWN, Reason.RESET), result.detail


async def test_redirect_is_not_followed(fault_server: StartServer) -> None:
    server = fault_server(canned({}, Route(301, b"", headers={"Location": "/v1/models"})))
    result, _ = await _probe(EndpointKind.OPENAI, server.url)
    assert result.reason is Reason.HTTP_STATUS
    assert server.connections == 1


async def test_announced_100_mb_body_is_refused_from_its_header(fault_server: StartServer) -> None:
    server = fault_server(endless_body(HUNDRED_MB, announce=True))
    result, wall_s = await _probe(EndpointKind.OLLAMA, server.url)
    assert (result.state, result.reason) == (EndpointState.DOWN, Reason.TOO_LARGE)
    assert "announces" in result.detail
    assert server.bytes_sent < HUNDRED_MB // 10
    _assert_on_time(result, wall_s)


async def test_unannounced_100_mb_body_stops_at_the_cap_with_bounded_memory(fault_server: StartServer) -> None:
    server = fault_server(endless_body(HUNDRED_MB, announce=False))
    limits = ProbeLimits(max_body_bytes=1_048_576)
    tracemalloc.start()
    try:
        result, wall_s = await _probe(EndpointKind.OLLAMA, server.url, limits=limits)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (result.state, result.reason) == (EndpointState.DOWN, Reason.TOO_LARGE), result.detail
    assert "more than 1048576 bytes" in result.detail
    # The kernel's socket buffers hold a few MB more than the prober read; 100 MB never moves.
    assert server.bytes_sent < HUNDRED_MB // 5, server.bytes_sent
    assert peak < 16 * 1024 * 1024, peak
    _assert_on_time(result, wall_s)


async def test_valid_but_late_answer_is_slow_and_still_serves(fault_server: StartServer) -> None:
    server = fault_server(delayed(OPENAI_MODELS, 0.5))
    settings = ProbeSettings(connect_s=0.5, total_s=3.0, slow_ms=200)
    result, wall_s = await _probe(EndpointKind.OPENAI, server.url, settings)
    assert (result.state, result.reason) == (EndpointState.SLOW, Reason.SLOW)
    assert result.serving
    _assert_on_time(result, wall_s, settings)


async def test_loading_llama_server_is_slow_but_does_not_serve(fault_server: StartServer) -> None:
    server = fault_server(canned({"/health": json_route({"error": {"code": 503}}, status=503)}))
    result, _ = await _probe(EndpointKind.LLAMACPP, server.url)
    assert result.state is EndpointState.SLOW
    assert not result.serving


async def test_llama_server_without_health_falls_back_to_models(fault_server: StartServer) -> None:
    server = fault_server(canned({"/v1/models": OPENAI_MODELS}))
    result, _ = await _probe(EndpointKind.LLAMACPP, server.url)
    assert result.state is EndpointState.UP, result.detail
    assert result.models == ["tiny"]
    assert server.paths == ["/health", "/v1/models"]


async def test_litellm_is_asked_for_liveliness_only(fault_server: StartServer) -> None:
    alive = Route(200, json.dumps("I'm alive!").encode(), "application/json")
    server = fault_server(canned({"/health/liveliness": alive}))
    result, _ = await _probe(EndpointKind.LITELLM, server.url)
    assert result.state is EndpointState.UP, result.detail
    assert server.paths == ["/health/liveliness"]


async def test_ollama_without_ps_still_serves(fault_server: StartServer) -> None:
    server = fault_server(canned({"/api/tags": OLLAMA_TAGS}))
    result, _ = await _probe(EndpointKind.OLLAMA, server.url)
    assert result.state is EndpointState.UP, result.detail
    assert (result.models, result.loaded) == (["qwen2.5:0.5b"], [])


HOSTILE = sorted((Path(__file__).parent / "cases" / "hostile" / "probe").glob("*.json"))


def _hostile_route(spec: dict[str, Any]) -> Route:
    """A route from a case file: `json` (a value), `text` (a string, or [piece, times] pairs) or `b64`."""
    if "json" in spec:
        body = json.dumps(spec["json"]).encode()
    elif "b64" in spec:
        body = base64.b64decode(spec["b64"])
    elif isinstance(spec["text"], list):
        body = "".join(piece * times for piece, times in spec["text"]).encode()
    else:
        body = spec["text"].encode()
    return Route(spec.get("status", 200), body, spec.get("content_type", "application/json"), spec.get("headers", {}))


@pytest.mark.parametrize("path", HOSTILE, ids=lambda p: p.stem)
async def test_hostile_answer_is_data(path: Path, fault_server: StartServer) -> None:
    case = json.loads(path.read_text())
    server = fault_server(canned({route: _hostile_route(spec) for route, spec in case["routes"].items()}))
    result, wall_s = await _probe(EndpointKind(case["kind"]), server.url)
    expect = case["expect"]
    assert (result.state.value, result.reason.value) == (expect["state"], expect["reason"]), result.detail
    assert expect.get("detail", "") in result.detail
    printed = result.model_dump_json()  # what `sweep --json` prints must encode
    if "absent" in expect:
        assert expect["absent"] not in printed
    if "max_detail_chars" in expect:
        assert len(result.detail) <= expect["max_detail_chars"]
    if "loaded_vram" in expect:
        assert [m.size_vram_bytes for m in result.loaded] == expect["loaded_vram"]
    _assert_on_time(result, wall_s)
