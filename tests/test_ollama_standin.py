"""The Ollama stand-in keeps Ollama's documented API contract: paths, fields, status codes, streaming."""

from __future__ import annotations

import hashlib
import json
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from homelab.tiny_gguf import write_tiny_llama
from homelab_app.ollama_standin import DEFAULT_MODELS, ModelSpec, StandInOptions, parse_keep_alive
from tests.fixtures.net import LOOPBACK, free_port, stop_process, wait_http
from tests.fixtures.ollama import StandInServer

StartStandIn = Callable[..., StandInServer]

TINY = ModelSpec(
    name="tiny",
    size=2_000_000_000,
    family="qwen2",
    parameter_size="1.5B",
    quantization_level="Q8_0",
    context_length=8192,
    size_vram=1_500_000_000,
)


@pytest.fixture
def standin(ollama_standin_factory: StartStandIn) -> StandInServer:
    return ollama_standin_factory([TINY, *DEFAULT_MODELS])


def _post(server: StandInServer, path: str, body: object) -> httpx.Response:
    return httpx.post(server.url + path, json=body, timeout=5)


def _get(server: StandInServer, path: str) -> httpx.Response:
    return httpx.get(server.url + path, timeout=5)


def _expires_at(entry: dict[str, object]) -> datetime:
    return datetime.fromisoformat(str(entry["expires_at"]))


def test_version_and_root(standin: StandInServer) -> None:
    assert isinstance(_get(standin, "/api/version").json()["version"], str)
    root = _get(standin, "/")
    assert (root.status_code, root.text) == (200, "Ollama is running")


def test_tags_list_every_model_with_ollama_fields(standin: StandInServer) -> None:
    response = _get(standin, "/api/tags")
    assert response.headers["content-type"].startswith("application/json")
    models = response.json()["models"]
    assert [m["name"] for m in models] == ["tiny:latest", "qwen2.5:0.5b", "llama3.2:1b", "nomic-embed-text:latest"]
    tiny = models[0]
    assert tiny["model"] == "tiny:latest"
    assert tiny["size"] == 2_000_000_000
    assert len(tiny["digest"]) == 64
    datetime.fromisoformat(tiny["modified_at"])
    assert tiny["details"] == {
        "parent_model": "",
        "format": "gguf",
        "family": "qwen2",
        "families": ["qwen2"],
        "parameter_size": "1.5B",
        "quantization_level": "Q8_0",
    }


def test_empty_generate_loads_and_keep_alive_zero_unloads(standin: StandInServer) -> None:
    assert _get(standin, "/api/ps").json() == {"models": []}
    loaded = _post(standin, "/api/generate", {"model": "tiny"}).json()
    assert (loaded["model"], loaded["response"], loaded["done"], loaded["done_reason"]) == (
        "tiny:latest",
        "",
        True,
        "load",
    )
    (entry,) = _get(standin, "/api/ps").json()["models"]
    assert (entry["name"], entry["size"], entry["size_vram"], entry["context_length"]) == (
        "tiny:latest",
        2_000_000_000,
        1_500_000_000,
        8192,
    )
    assert timedelta(minutes=4) < _expires_at(entry) - datetime.now(UTC) <= timedelta(minutes=5)
    unloaded = _post(standin, "/api/generate", {"model": "tiny", "keep_alive": 0}).json()
    assert unloaded["done_reason"] == "unload"
    assert _get(standin, "/api/ps").json() == {"models": []}


def test_keep_alive_runs_out_and_negative_means_forever(standin: StandInServer) -> None:
    _post(standin, "/api/generate", {"model": "tiny", "keep_alive": 0.3})
    _post(standin, "/api/chat", {"model": "qwen2.5:0.5b", "messages": [], "keep_alive": "-1m"})
    time.sleep(0.5)
    (entry,) = _get(standin, "/api/ps").json()["models"]
    assert entry["name"] == "qwen2.5:0.5b"
    assert _expires_at(entry).year > 9000


@pytest.mark.parametrize(
    ("value", "seconds"),
    [(None, None), (0, 0.0), (90, 90.0), ("10s", 10.0), ("5m", 300.0), ("1h30m", 5400.0), ("-1s", float("inf"))],
)
def test_keep_alive_accepts_seconds_and_go_durations(value: object, seconds: float | None) -> None:
    assert parse_keep_alive(value) == seconds


def test_bad_keep_alive_is_400(standin: StandInServer) -> None:
    response = _post(standin, "/api/generate", {"model": "tiny", "keep_alive": "soon"})
    assert response.status_code == 400
    assert response.json()["error"] == 'time: invalid duration "soon"'


def test_show_gives_details_and_model_info(standin: StandInServer) -> None:
    body = _post(standin, "/api/show", {"model": "tiny"}).json()
    assert body["details"]["quantization_level"] == "Q8_0"
    assert body["model_info"]["general.architecture"] == "qwen2"
    assert body["model_info"]["qwen2.context_length"] == 8192
    assert body["model_info"]["general.parameter_count"] == 1_500_000_000
    assert "completion" in body["capabilities"]


@pytest.mark.parametrize(
    ("path", "body", "status", "error"),
    [
        ("/api/show", {"model": "nope"}, 404, "model 'nope' not found"),
        ("/api/show", {}, 400, "model is required"),
        ("/api/chat", {"model": "nope", "messages": [{"role": "user", "content": "hi"}]}, 404, "not found"),
        ("/api/generate", {"model": "nope", "prompt": "hi"}, 404, "try pulling it first"),
        ("/api/chat", [1, 2], 400, "JSON object"),
    ],
)
def test_errors_are_json_with_ollama_status_codes(
    standin: StandInServer, path: str, body: object, status: int, error: str
) -> None:
    response = _post(standin, path, body)
    assert response.status_code == status
    assert error in response.json()["error"]


def test_chat_without_stream_answers_once_and_loads_the_model(standin: StandInServer) -> None:
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello there"}]
    body = _post(standin, "/api/chat", {"model": "tiny:latest", "messages": messages, "stream": False}).json()
    assert body["message"] == {"role": "assistant", "content": "Stand-in reply to: hello there"}
    assert (body["done"], body["done_reason"]) == (True, "stop")
    assert body["eval_count"] > 0 and body["total_duration"] > 0
    assert [m["name"] for m in _get(standin, "/api/ps").json()["models"]] == ["tiny:latest"]


def test_chat_streams_ndjson_by_default(standin: StandInServer) -> None:
    payload = {"model": "tiny", "messages": [{"role": "user", "content": "stream please"}]}
    with httpx.stream("POST", standin.url + "/api/chat", json=payload, timeout=5) as response:
        assert response.headers["content-type"].startswith("application/x-ndjson")
        chunks = [json.loads(line) for line in response.iter_lines() if line]
    assert len(chunks) > 2
    assert all(not c["done"] for c in chunks[:-1]) and chunks[-1]["done"]
    assert "".join(c["message"]["content"] for c in chunks) == "Stand-in reply to: stream please"


def test_generate_with_a_prompt(standin: StandInServer) -> None:
    body = _post(standin, "/api/generate", {"model": "tiny", "prompt": "why is the sky blue", "stream": False}).json()
    assert body["response"] == "Stand-in reply to: why is the sky blue"
    assert body["done"] is True


def test_module_cli_serves_the_models_it_is_given(tmp_path: Path) -> None:
    models = tmp_path / "models.json"
    models.write_text(json.dumps([{"name": "cli-model:7b", "size": 42}]))
    port = free_port()
    log = tmp_path / "standin.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "homelab_app.ollama_standin", "--port", str(port), "--models", str(models)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_http(f"http://{LOOPBACK}:{port}/api/version", 30, "python -m homelab_app.ollama_standin", log)
        tags = httpx.get(f"http://{LOOPBACK}:{port}/api/tags", timeout=5).json()
        assert [m["name"] for m in tags["models"]] == ["cli-model:7b"]
    finally:
        stop_process(proc)
    assert "stand-in" in log.read_text()


# -- model management: blobs, create, pull, delete ---------------------------------------------


def _digest(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


@pytest.fixture(scope="module")
def gguf(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return write_tiny_llama(tmp_path_factory.mktemp("standin-gguf") / "tiny.gguf", n_layer=2).read_bytes()


def _upload(server: StandInServer, data: bytes, digest: str | None = None) -> httpx.Response:
    return httpx.post(f"{server.url}/api/blobs/{digest or _digest(data)}", content=data, timeout=5)


def _create(server: StandInServer, body: dict[str, object]) -> list[dict[str, object]]:
    with httpx.stream("POST", server.url + "/api/create", json=body, timeout=5) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("application/x-ndjson")
        return [json.loads(line) for line in response.iter_lines() if line]


def test_a_blob_is_absent_uploaded_then_present(standin: StandInServer, gguf: bytes) -> None:
    digest = _digest(gguf)
    assert httpx.head(f"{standin.url}/api/blobs/{digest}").status_code == 404

    assert _upload(standin, gguf).status_code == 201

    assert httpx.head(f"{standin.url}/api/blobs/{digest}").status_code == 200
    assert _upload(standin, gguf).status_code == 200, "a blob that is there is not written again"
    assert [(u.digest, u.received_bytes, u.status) for u in standin.standin.uploads] == [(digest, len(gguf), 201)]


def test_a_blob_with_another_digest_is_refused_and_not_kept(standin: StandInServer, gguf: bytes) -> None:
    claimed = _digest(b"something else")

    response = _upload(standin, gguf, claimed)

    assert response.status_code == 400
    assert response.json()["error"] == f'digest mismatch, expected "{claimed}", got "{_digest(gguf)}"'
    assert httpx.head(f"{standin.url}/api/blobs/{claimed}").status_code == 404
    assert httpx.head(f"{standin.url}/api/blobs/{_digest(gguf)}").status_code == 404
    assert standin.standin.blobs.leftovers() == []


def test_a_bad_digest_is_400(standin: StandInServer) -> None:
    assert httpx.head(f"{standin.url}/api/blobs/md5:abc").status_code == 400
    assert httpx.post(f"{standin.url}/api/blobs/sha256:xyz", content=b"x").json() == {"error": "invalid digest format"}


def test_an_upload_cut_halfway_leaves_nothing(standin: StandInServer, gguf: bytes) -> None:
    digest = _digest(gguf)
    host, port = httpx.URL(standin.url).host, httpx.URL(standin.url).port
    with socket.create_connection((host, port)) as sock:
        head = f"POST /api/blobs/{digest} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {len(gguf)}\r\n\r\n"
        sock.sendall(head.encode() + gguf[: len(gguf) // 2])
    deadline = time.monotonic() + 10
    while not standin.standin.uploads and time.monotonic() < deadline:  # the server notices the close
        time.sleep(0.05)

    assert [(u.digest, u.status) for u in standin.standin.uploads] == [(digest, 0)]
    assert httpx.head(f"{standin.url}/api/blobs/{digest}").status_code == 404
    assert standin.standin.blobs.leftovers() == []


@pytest.mark.parametrize("version", ["0.12.11", "0.33.0"])
def test_create_from_a_gguf_streams_progress_and_show_reports_what_it_was_made_with(
    ollama_standin_factory: StartStandIn, gguf: bytes, version: str
) -> None:
    server = ollama_standin_factory([], StandInOptions(ollama_version=version))
    digest = _digest(gguf)
    _upload(server, gguf)
    template = "{{ .System }} {{ .Prompt }}"

    lines = _create(server, {
        "model": "made", "files": {"tiny.gguf": digest}, "parameters": {"num_ctx": 1024, "num_gpu": 3},
        "template": template, "license": "homelab-deploy source=x config=y",
    })  # fmt: skip

    statuses = [line["status"] for line in lines]
    assert statuses[0] == "parsing GGUF" and f"using existing layer {digest}" in statuses
    assert statuses[-2:] == ["writing manifest", "success"]
    shown = _post(server, "/api/show", {"model": "made"}).json()
    parameters = dict(line.split(None, 1) for line in shown["parameters"].splitlines())
    assert parameters == {"num_ctx": "1024", "num_gpu": "3"}
    assert shown["template"] == template and shown["license"] == "homelab-deploy source=x config=y"
    layer = server.standin.models["made:latest"].blob
    # 0.30+ rewrites the GGUF into a new layer (server/create.go:765 at v0.33.0-rc2); 0.12 keeps it.
    assert (layer == digest) is (version == "0.12.11")
    assert (server.standin.blobs.has(layer) and f"creating new layer {layer}" in statuses) or version == "0.12.11"
    assert f"FROM /stand-in/blobs/sha256-{layer.removeprefix('sha256:')}" in shown["modelfile"]
    assert "PARAMETER num_ctx 1024" in shown["modelfile"]
    assert (shown["details"]["family"], shown["model_info"]["llama.block_count"]) == ("llama", 2)
    assert "made:latest" in [m["name"] for m in _get(server, "/api/tags").json()["models"]]


def test_create_without_streaming_answers_once(standin: StandInServer, gguf: bytes) -> None:
    _upload(standin, gguf)
    body = {"model": "once", "files": {"tiny.gguf": _digest(gguf)}, "stream": False}
    assert _post(standin, "/api/create", body).json() == {"status": "success"}


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        ({"model": "m", "files": {"x.gguf": "sha256:" + "0" * 64}}, 400, "blob not found for x.gguf"),
        ({"model": "m", "files": {"x.gguf": "sha256:nope"}}, 400, "invalid digest format"),
        ({"model": "m"}, 400, "neither 'from' or 'files' was specified"),
        ({"files": {}}, 400, "model is required"),
        ({"model": "m", "from": "absent"}, 404, "model 'absent' not found"),
    ],
)
def test_create_refuses_bad_requests_before_streaming(
    standin: StandInServer, body: dict[str, object], status: int, error: str
) -> None:
    response = _post(standin, "/api/create", body)
    assert response.status_code == status
    assert error in response.json()["error"]
    assert "m:latest" not in standin.standin.models


def test_a_blob_that_is_no_gguf_fails_inside_the_stream(standin: StandInServer) -> None:
    junk = b"not a model at all" * 10
    _upload(standin, junk)

    lines = _create(standin, {"model": "junk", "files": {"junk.gguf": _digest(junk)}})

    assert lines[0] == {"status": "parsing GGUF"}
    assert "not a readable GGUF file" in str(lines[-1]["error"])
    assert "junk:latest" not in standin.standin.models


def test_the_create_fault_answers_500(ollama_standin_factory: StartStandIn, gguf: bytes) -> None:
    server = ollama_standin_factory([], StandInOptions(create_error="disk full (test fault)"))
    _upload(server, gguf)

    response = _post(server, "/api/create", {"model": "m", "files": {"tiny.gguf": _digest(gguf)}})

    assert (response.status_code, response.json()) == (500, {"error": "disk full (test fault)"})


def _size_vram(server: StandInServer, gguf: bytes, name: str, parameters: dict[str, int]) -> int:
    _upload(server, gguf)
    _create(server, {"model": name, "files": {"tiny.gguf": _digest(gguf)}, "parameters": parameters})
    _post(server, "/api/generate", {"model": name})
    return int({m["name"]: m for m in _get(server, "/api/ps").json()["models"]}[f"{name}:latest"]["size_vram"])


def test_size_vram_by_version_layers_and_context(ollama_standin_factory: StartStandIn, gguf: bytes) -> None:
    new = ollama_standin_factory([], StandInOptions(ollama_version="0.33.0"))
    old = ollama_standin_factory([], StandInOptions(ollama_version="0.12.11"))

    everything = _size_vram(new, gguf, "all", {"num_ctx": 512})
    assert _size_vram(new, gguf, "none", {"num_ctx": 512, "num_gpu": 0}) == 0
    assert 0 < _size_vram(new, gguf, "one", {"num_ctx": 512, "num_gpu": 1}) < everything
    # more context, more KV cache; past the training context (2048) Ollama clamps it
    assert _size_vram(new, gguf, "long", {"num_ctx": 2048}) > everything
    assert _size_vram(new, gguf, "longer", {"num_ctx": 65536}) == _size_vram(new, gguf, "long2", {"num_ctx": 2048})
    # 0.12 counts a fixed 457 MiB per GPU on top (ml/device.go:348 at v0.12.11), none without a GPU
    assert _size_vram(old, gguf, "all", {"num_ctx": 512}) - everything == 457 << 20
    assert _size_vram(old, gguf, "none", {"num_ctx": 512, "num_gpu": 0}) == 0


def test_a_configured_size_vram_wins(ollama_standin_factory: StartStandIn, gguf: bytes) -> None:
    server = ollama_standin_factory([], StandInOptions(vram_bytes={"v:latest": 12345}))
    _upload(server, gguf)
    _create(server, {"model": "v", "files": {"tiny.gguf": _digest(gguf)}, "parameters": {"num_ctx": 512}})
    _post(server, "/api/generate", {"model": "v"})

    (entry,) = _get(server, "/api/ps").json()["models"]

    assert (entry["size_vram"], entry["context_length"]) == (12345, 512)


def test_re_creating_a_loaded_model_unloads_it(standin: StandInServer, gguf: bytes) -> None:
    _upload(standin, gguf)
    body = {"model": "r", "files": {"tiny.gguf": _digest(gguf)}}
    _create(standin, body)
    _post(standin, "/api/generate", {"model": "r"})

    _create(standin, body | {"parameters": {"num_ctx": 2048}})

    assert _get(standin, "/api/ps").json() == {"models": []}


def test_loads_are_recorded_once_per_load(ollama_standin_factory: StartStandIn) -> None:
    server = ollama_standin_factory([TINY], StandInOptions(load_delay_s=0.05))

    _post(server, "/api/generate", {"model": "tiny"})
    _post(server, "/api/generate", {"model": "tiny"})  # resident: only its keep-alive is renewed

    (load,) = server.standin.loads
    assert load.model == "tiny:latest" and load.started < load.finished


def test_pull_without_a_registry_ends_in_an_error_line(standin: StandInServer) -> None:
    with httpx.stream("POST", standin.url + "/api/pull", json={"model": "qwen2.5:14b"}, timeout=5) as response:
        lines = [json.loads(line) for line in response.iter_lines() if line]
    assert response.status_code == 200
    assert lines == [
        {"status": "pulling manifest"},
        {"error": "pull model manifest: the stand-in (not Ollama) reaches no registry"},
    ]
    refused = _post(standin, "/api/pull", {"model": "qwen2.5:14b", "stream": False})
    assert refused.status_code == 500 and "reaches no registry" in refused.json()["error"]


def test_pull_from_the_registry_streams_progress(ollama_standin_factory: StartStandIn) -> None:
    pulled = ModelSpec(name="fetched:7b", size=1000, context_length=8192)
    server = ollama_standin_factory([], StandInOptions(registry=(pulled,)))

    with httpx.stream("POST", server.url + "/api/pull", json={"model": "fetched:7b"}, timeout=5) as response:
        lines = [json.loads(line) for line in response.iter_lines() if line]

    assert lines[0] == {"status": "pulling manifest"} and lines[-1] == {"status": "success"}
    downloads = [line for line in lines if "completed" in line]
    assert downloads[-1]["completed"] == downloads[-1]["total"] == 1000
    assert [m["name"] for m in _get(server, "/api/tags").json()["models"]] == ["fetched:7b"]
    assert "does not exist" in _post(server, "/api/pull", {"model": "other", "stream": False}).json()["error"]


def test_delete_removes_a_model_and_404s_an_unknown_one(standin: StandInServer) -> None:
    _post(standin, "/api/generate", {"model": "tiny"})

    assert httpx.request("DELETE", standin.url + "/api/delete", json={"model": "tiny"}).status_code == 200

    assert "tiny:latest" not in [m["name"] for m in _get(standin, "/api/tags").json()["models"]]
    assert _get(standin, "/api/ps").json() == {"models": []}
    gone = httpx.request("DELETE", standin.url + "/api/delete", json={"model": "tiny"})
    assert (gone.status_code, gone.json()) == (404, {"error": "model 'tiny' not found"})


def test_module_cli_fault_flag_fails_create(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "standin.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "homelab_app.ollama_standin", "--port", str(port), "--fail-create", "no space left"],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_http(f"http://{LOOPBACK}:{port}/api/version", 30, "python -m homelab_app.ollama_standin", log)
        response = httpx.post(f"http://{LOOPBACK}:{port}/api/create", json={"model": "m", "from": "x"}, timeout=5)
        assert (response.status_code, response.json()) == (500, {"error": "no space left"})
    finally:
        stop_process(proc)
