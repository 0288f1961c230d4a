"""The Ollama stand-in keeps Ollama's documented API contract: paths, fields, status codes, streaming."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from homelab.ollama_standin import DEFAULT_MODELS, ModelSpec, parse_keep_alive
from tests.fixtures.net import LOOPBACK, free_port, stop_process, wait_http
from tests.fixtures.ollama import StandInServer

StartStandIn = Callable[[Sequence[ModelSpec]], StandInServer]

TINY = ModelSpec(
    name="tiny", size=2_000_000_000, family="qwen2", parameter_size="1.5B", quantization_level="Q8_0",
    context_length=8192, size_vram=1_500_000_000,
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
        "tiny:latest", "", True, "load",
    )
    (entry,) = _get(standin, "/api/ps").json()["models"]
    assert (entry["name"], entry["size"], entry["size_vram"], entry["context_length"]) == (
        "tiny:latest", 2_000_000_000, 1_500_000_000, 8192,
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
    [(None, 300.0), (0, 0.0), (90, 90.0), ("10s", 10.0), ("5m", 300.0), ("1h30m", 5400.0), ("-1", float("inf"))],
)
def test_keep_alive_accepts_seconds_and_go_durations(value: object, seconds: float) -> None:
    assert parse_keep_alive(value) == seconds


def test_bad_keep_alive_is_400(standin: StandInServer) -> None:
    response = _post(standin, "/api/generate", {"model": "tiny", "keep_alive": "soon"})
    assert response.status_code == 400
    assert "keep_alive" in response.json()["error"]


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
            [sys.executable, "-m", "homelab.ollama_standin", "--port", str(port), "--models", str(models)],
            stdout=out, stderr=subprocess.STDOUT,
        )
    try:
        wait_http(f"http://{LOOPBACK}:{port}/api/version", 30, "python -m homelab.ollama_standin", log)
        tags = httpx.get(f"http://{LOOPBACK}:{port}/api/tags", timeout=5).json()
        assert [m["name"] for m in tags["models"]] == ["cli-model:7b"]
    finally:
        stop_process(proc)
    assert "stand-in" in log.read_text()
