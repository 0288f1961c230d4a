"""Fuzzing the probe's reading of answers and URLs: whatever comes back, a `ProbeResult`, on time.

Answers come from a real loopback server whose every path serves what hypothesis drew for it
(arbitrary bytes, JSON of any shape, nesting up to 20,000 levels, the shapes each kind expects
with odd values inside, odd statuses and content types), for every endpoint kind. URLs are
drawn around 127.0.0.1 with odd user-info, ports and paths; a drawn URL whose host would leave
loopback is discarded before any connection. Each probe runs under a time and address-space
cap (tests/bounded.py) and must also end within its endpoint's total timeout; its result
must print as `sweep --json` prints it. Bounded: a few seconds per test.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from homelab.health.http import open_probe_client
from homelab.health.probe import EndpointState, ProbeResult, Reason, probe_endpoint
from homelab.inventory import Endpoint, EndpointKind, Node, ProbeSettings
from tests.bounded import capped
from tests.fixtures.fault_servers import FaultServer, Route, http_response
from tests.fixtures.net import LOOPBACK

FUZZ = settings(
    max_examples=100,
    deadline=None,  # timed below, with a bound that tolerates a loaded 2-core machine
    database=None,  # nothing written into the checkout
    suppress_health_check=[HealthCheck.too_slow],
)
SETTINGS = ProbeSettings(connect_s=0.5, total_s=2.0, slow_ms=1500)
MARGIN_S = 1.0
EXTRA_BYTES = 512 * 1024 * 1024
PATHS = ("/api/tags", "/api/ps", "/health", "/v1/models", "/health/liveliness")


class _Answers:
    """What the fuzz server answers on each path right now (set per example)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.routes: dict[str, Route] = {}

    def __call__(self, conn: socket.socket, server: FaultServer) -> None:
        path = server.read_request(conn).split("?")[0]
        with self.lock:
            route = self.routes.get(path, Route(404, b"", "text/plain"))
        server.send(conn, http_response(route))


@pytest.fixture(scope="module")
def fuzz_server() -> Iterator[tuple[FaultServer, _Answers]]:
    answers = _Answers()
    server = FaultServer(answers)
    yield server, answers
    server.stop()


class _Prober:
    """One event loop and one probe client for all examples, as a sweep shares them."""

    def __init__(self) -> None:
        self.runner = asyncio.Runner()
        self.client = self.runner.run(self._open())

    @staticmethod
    async def _open() -> httpx.AsyncClient:
        return open_probe_client()

    def close(self) -> None:
        self.runner.run(self.client.aclose())
        self.runner.close()


@pytest.fixture(scope="module")
def prober() -> Iterator[_Prober]:
    shared = _Prober()
    yield shared
    shared.close()


def _probe(prober: _Prober, kind: EndpointKind, url: str) -> ProbeResult:
    """One probe, capped in time and memory, checked to end on time and to print."""
    node = Node(name="box", tier="lab", host=LOOPBACK)
    endpoint = Endpoint.model_construct(name="ep", kind=kind, url=url, models=[], probe=None, container=None)
    started = time.monotonic()
    with capped(seconds=SETTINGS.total_s + 10, extra_bytes=EXTRA_BYTES):
        result = prober.runner.run(probe_endpoint(prober.client, node, endpoint, SETTINGS))
    elapsed = time.monotonic() - started
    assert elapsed < SETTINGS.total_s + MARGIN_S, (elapsed, result)
    assert (result.state is EndpointState.UP) == (result.reason is Reason.OK), result
    assert ProbeResult.model_validate_json(result.model_dump_json()) == result  # sweep --json prints it
    return result


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
SHAPED = st.one_of(
    st.builds(lambda v: {"models": v}, JSON | st.lists(st.fixed_dictionaries({"name": JSON}, optional={
        "size": JSON, "size_vram": st.integers() | JSON}), max_size=3)),
    st.builds(lambda v: {"data": v}, JSON | st.lists(st.fixed_dictionaries({"id": JSON}), max_size=3)),
    st.builds(lambda v: {"status": v}, st.just("ok") | JSON),
    st.just("I'm alive!") | JSON,
)  # fmt: skip


@st.composite
def nested(draw: st.DrawFn) -> bytes:
    """Up to 20,000 levels of arrays or objects, closed or not (json.loads raised RecursionError)."""
    depth = draw(st.integers(0, 20_000))
    opener, closer = draw(st.sampled_from([(b"[", b"]"), (b'{"a":', b"}"), (b'{"models":[', b"]}")]))
    return opener * depth + draw(st.sampled_from([b"1", b"", b"null"])) + closer * draw(st.integers(0, depth))


BODIES = st.one_of(
    st.binary(max_size=2048),
    nested(),
    JSON.map(lambda v: json.dumps(v).encode()),
    SHAPED.map(lambda v: json.dumps(v).encode()),
)
ROUTES = st.builds(
    Route,
    status=st.sampled_from([200, 200, 200, 200, 302, 404, 500, 503]),
    body=BODIES,
    content_type=st.sampled_from(["application/json", "application/json; charset=utf-8", "application/x+json",
                                  "text/html", ""]),
)  # fmt: skip


@FUZZ
@given(kind=st.sampled_from(list(EndpointKind)), routes=st.fixed_dictionaries({path: ROUTES for path in PATHS}))
def test_any_answer_is_a_result(
    fuzz_server: tuple[FaultServer, _Answers], prober: _Prober, kind: EndpointKind, routes: dict[str, Route]
) -> None:
    server, answers = fuzz_server
    with answers.lock:
        answers.routes = routes
    _probe(prober, kind, server.url)


def _stays_on_loopback(url: str) -> bool:
    """Whether probing `url` could reach no host but 127.0.0.1 (or none at all)."""
    try:
        host = httpx.URL(url).host
    except (httpx.InvalidURL, ValueError):
        return True  # refused before any connection
    return host in {LOOPBACK, ""} or host.rstrip(".").endswith(".invalid")


URL_TEXT = st.text(alphabet=st.characters(codec="utf-8"), max_size=12)


@FUZZ
@given(
    userinfo=st.none() | URL_TEXT,
    port=st.sampled_from(["", "0", "-1", "65536", "99999", "1e3", "٣", "80x"]) | URL_TEXT,
    path=URL_TEXT,
    host=st.sampled_from([LOOPBACK, "xn--", "xn--a.invalid", "[::1", "", "ollama.invalid"]),
)
def test_any_url_is_a_result(prober: _Prober, userinfo: str | None, port: str, path: str, host: str) -> None:
    url = f"http://{'' if userinfo is None else userinfo + '@'}{host}:{port}/{path}"
    assume(_stays_on_loopback(url))
    result = _probe(prober, EndpointKind.OPENAI, url)
    if userinfo and not set(userinfo) & set("/?#\\"):  # then it is user-info, whatever else it holds
        assert result.url.startswith("http://***@"), result.url


def test_the_fuzz_server_serves_what_it_was_given(fuzz_server: tuple[FaultServer, _Answers], prober: _Prober) -> None:
    """The fuzzer's server is a real one: an answer it was given for every path is probed UP."""
    server, answers = fuzz_server
    body: dict[str, Any] = {"data": [{"id": "m"}]}
    with answers.lock:
        answers.routes = {"/v1/models": Route(200, json.dumps(body).encode())}
    assert _probe(prober, EndpointKind.OPENAI, server.url).models == ["m"]
