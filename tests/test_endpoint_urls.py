"""Endpoint URLs as people write them: a known API path is dropped (with a note), a path prefix kept, a query refused.

The forms are rows of tests/cases/endpoint_urls/forms.jsonl: kind and URL as written, then the
stored base and the note `homelab validate` prints, or the error. The probes then run against
real loopback servers: llama-server written with `/v1`, and a reverse-proxy-like prefix path.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from homelab.errors import InventoryError, Problem
from homelab.gateway.config import litellm_params
from homelab.health.http import open_probe_client
from homelab.health.probe import EndpointState, ProbeResult, Reason, probe_endpoint
from homelab.inventory import Endpoint, EndpointKind, Node, ProbeSettings, load_inventory_with_notes
from homelab.inventory.values import KNOWN_API_PATHS, split_api_path
from tests.fixtures.fault_servers import FaultServer, Handler, canned, json_route
from tests.fixtures.litellm_proxy import LiteLLMProxy
from tests.fixtures.llama import LlamaServer
from tests.fixtures.net import LOOPBACK

ROWS: list[dict[str, Any]] = [
    json.loads(line)
    for line in (Path(__file__).parent / "cases" / "endpoint_urls" / "forms.jsonl").open()
    if line.strip()
]
CLUSTER = """\
nodes:
  - name: box
    tier: lab
    host: box.home.arpa
    endpoints:
      - name: ep
        kind: {kind}
        url: {url}
"""
URL_LINE = 8
URL_PATH = "nodes[0].endpoints[0].url"
SETTINGS = ProbeSettings(connect_s=2.0, total_s=10.0, slow_ms=5000)


@pytest.mark.parametrize("case", ROWS, ids=[row["id"] for row in ROWS])
def test_endpoint_url_form(case: dict[str, Any], tmp_path: Path) -> None:
    cluster = tmp_path / "cluster.yaml"
    cluster.write_text(CLUSTER.format(kind=case["kind"], url=json.dumps(case["url"])))
    where = (str(cluster), URL_LINE, URL_PATH)

    if "error" in case:
        with pytest.raises(InventoryError) as caught:
            load_inventory_with_notes(cluster)
        assert [(p.file, p.line, p.path) for p in caught.value.problems] == [where]
        assert case["error"] in caught.value.problems[0].message
        return
    inv, notes = load_inventory_with_notes(cluster)

    ((_, endpoint),) = inv.endpoints()
    assert endpoint.url == case["stored"]
    assert notes == ([Problem(*where, case["note"])] if case["note"] else [])


PATH_WORDS = st.sampled_from(["/ollama", "/v1", "/api", "/health", "/models", "/gpu%20box", "/", "/v1x"])
KNOWN = sorted({path for paths in KNOWN_API_PATHS.values() for path in paths})


@settings(max_examples=300, deadline=None, database=None)
@given(
    kind=st.sampled_from(list(EndpointKind)),
    prefix=st.lists(PATH_WORDS, max_size=4).map("".join),
    tail=st.lists(st.sampled_from(KNOWN), max_size=3).map("".join),
    slash=st.booleans(),
)
def test_the_stored_url_is_a_base_that_reads_back_as_itself(
    kind: EndpointKind, prefix: str, tail: str, slash: bool
) -> None:
    """A dumped inventory read again (a flow parameter, an imported file) keeps every URL."""
    written = f"http://box.home.arpa:8080{prefix}{tail}" + ("/" * slash)

    stored = Endpoint(name="ep", kind=kind, url=written).url

    assert written.startswith(stored) and not stored.endswith("/")
    assert Endpoint(name="ep", kind=kind, url=stored).url == stored
    assert split_api_path(kind.value, stored) == (stored, "")


@settings(max_examples=300, deadline=None, database=None)
@given(
    kind=st.sampled_from([*KNOWN_API_PATHS, "other"]),
    url=st.lists(st.sampled_from([*KNOWN, "?", "#", "/", "=", "x", "http://h"]), max_size=12).map("".join),
)
def test_splitting_any_text_ends_and_keeps_a_prefix(kind: str, url: str) -> None:
    """Public and fed the file's text: a query holding `/v1` must not loop or cut outside the path."""
    base, removed = split_api_path(kind, url)

    assert url.rstrip("/").startswith(base)
    assert (removed == "") == (base == url.rstrip("/"))


def test_the_gateway_adds_v1_once_to_an_endpoint_written_with_v1() -> None:
    endpoint = Endpoint.model_validate(
        {
            "name": "coder",
            "kind": "llamacpp",
            "url": "http://mark-ii.home.arpa:3009/v1/",
            "models": [{"name": "qwen2.5-coder", "alias": "coder"}],
        }
    )

    params = litellm_params(endpoint, endpoint.models[0])

    assert params is not None and params["api_base"] == "http://mark-ii.home.arpa:3009/v1"


async def _probe(kind: EndpointKind, url: str) -> ProbeResult:
    node = Node(name="box", tier="lab", host=LOOPBACK)
    async with open_probe_client() as client:
        return await probe_endpoint(client, node, Endpoint(name="ep", kind=kind, url=url), SETTINGS)


@pytest.mark.llama
@pytest.mark.parametrize("written", ["/v1", "/v1/models", "/health"])
async def test_llama_server_written_with_an_api_path_is_up(
    llama_server: Callable[..., LlamaServer], tiny_gguf: Path, written: str
) -> None:
    """Before, `/v1` got `/v1/health` and `/v1/v1/models`: a 404 and a DOWN for a healthy server."""
    server = llama_server(tiny_gguf, alias="url-forms")

    result = await _probe(EndpointKind.LLAMACPP, f"{server.url}{written}")

    assert (result.state, result.reason) == (EndpointState.UP, Reason.OK), result.detail
    assert result.models == ["url-forms"]
    assert result.url == server.url


async def test_litellm_written_with_health_is_probed_by_liveliness(litellm_proxy: LiteLLMProxy) -> None:
    """Before, `/health` got `/health/health/liveliness`: a 404 from a healthy proxy."""
    result = await _probe(EndpointKind.LITELLM, f"{litellm_proxy.url}/health")

    assert (result.state, result.reason) == (EndpointState.UP, Reason.OK), result.detail
    assert result.url == litellm_proxy.url


OLLAMA_TAGS = json_route({"models": [{"name": "llama3.2:3b"}]})
OLLAMA_PS = json_route({"models": []})


def _behind_prefix(prefix: str) -> Handler:
    """A reverse proxy that serves Ollama under `prefix` only (its root answers 404)."""
    return canned({f"{prefix}/api/tags": OLLAMA_TAGS, f"{prefix}/api/ps": OLLAMA_PS})


@pytest.mark.parametrize("written", ["/ollama", "/ollama/", "/ollama/api/tags"])
async def test_ollama_behind_a_path_prefix_is_probed_under_it(
    fault_server: Callable[[Handler], FaultServer], written: str
) -> None:
    server = fault_server(_behind_prefix("/ollama"))

    result = await _probe(EndpointKind.OLLAMA, f"{server.url}{written}")

    assert (result.state, result.reason) == (EndpointState.UP, Reason.OK), result.detail
    assert result.models == ["llama3.2:3b"]
    assert server.paths == ["/ollama/api/tags", "/ollama/api/ps"]
