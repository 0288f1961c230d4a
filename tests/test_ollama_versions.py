"""The stand-in plays Ollama 0.12 and 0.30+ as their source says, one case per behaviour.

A row of tests/cases/ollama_standin/behaviours.jsonl names the Ollama version played, an
optional tiny GGUF uploaded first (`chat`, or `embedding`: one with a pooling type), setup
requests that must succeed (`steps`), an optional restart with every blob aged by
`restart_hours`, then the request and what must come back:
`status`, the exact `error`, a subset of the JSON body (`json`), lengths of parts of it
(`lengths`, by `a/b` paths) and parts that are null (`nulls`), what `/api/ps` lists after
(`ps`, `ps_forever`), and for a create whether the model's layer is the uploaded blob or a
rewritten one (`layer`). `source` cites the Ollama file and line the behaviour copies; `{digest}`
in a request stands for the uploaded blob. A new case needs no new code.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from gguf import GGUFReader, GGUFValueType, GGUFWriter
from gguf.scripts.gguf_new_metadata import MetadataDetails, copy_with_new_metadata

from homelab.ollama.api import OllamaAPI, open_ollama_client
from homelab.ollama.settings import OllamaTimeouts
from homelab.tiny_gguf import write_tiny_llama
from homelab.vram.metadata import read_gguf
from homelab.vram.served import fetch_ollama_shape
from homelab_app.ollama_standin import StandInOptions
from tests.fixtures.net import LOOPBACK, free_port, stop_process, wait_http
from tests.fixtures.ollama import StandInServer

CASES = Path(__file__).parent / "cases" / "ollama_standin" / "behaviours.jsonl"
ROWS = [json.loads(line) for line in CASES.read_text().splitlines() if line.strip()]
_CITATION = re.compile(r"\S+\.go:\d+.*@ v0\.\d+\.\d+")


def _gguf(tmp_path: Path, kind: str) -> bytes:
    path = write_tiny_llama(tmp_path / f"{kind}.gguf", seed=7, pooling_type=1 if kind == "embedding" else None)
    return path.read_bytes()


def _call(server: StandInServer, request: dict[str, Any], digest: str) -> httpx.Response:
    path = request["path"].replace("{digest}", digest)
    body = json.loads(json.dumps(request["body"]).replace("{digest}", digest)) if "body" in request else None
    return httpx.request(request["method"], server.url + path, json=body, timeout=10)


def _restart(server: StandInServer, start: Callable[..., StandInServer], hours: float) -> StandInServer:
    server.stop()
    for path in server.standin.blobs.root.iterdir():
        stamp = path.stat().st_mtime - hours * 3600
        os.utime(path, (stamp, stamp))
    return start([], server.standin.options, httpx.URL(server.url).port)


def test_every_row_cites_an_ollama_file_line_and_tag() -> None:
    assert len(ROWS) >= 20 and len({row["id"] for row in ROWS}) == len(ROWS)
    assert [row["id"] for row in ROWS if not _CITATION.search(row["source"])] == []


@pytest.mark.parametrize("row", ROWS, ids=[row["id"] for row in ROWS])
def test_behaviour(row: dict[str, Any], ollama_standin_factory: Callable[..., StandInServer], tmp_path: Path) -> None:
    options = StandInOptions(ollama_version=row["version"], models_dir=tmp_path / "ollama")
    server = ollama_standin_factory([], options)
    digest = "sha256:" + "0" * 64
    if "gguf" in row:
        blob = _gguf(tmp_path, row["gguf"])
        digest = f"sha256:{hashlib.sha256(blob).hexdigest()}"
        assert httpx.post(f"{server.url}/api/blobs/{digest}", content=blob, timeout=10).status_code == 201
    for step in row.get("steps", []):
        done = _call(server, step, digest)
        assert done.status_code == 200, done.text
    if "restart_hours" in row:
        server = _restart(server, ollama_standin_factory, row["restart_hours"])

    response = _call(server, row["request"], digest)

    assert response.status_code == row["status"], response.text
    if "error" in row:
        assert response.json() == {"error": row["error"]}
    body = response.json() if "json" in row else {}
    assert {key: body.get(key) for key in row.get("json", {})} == row.get("json", {})
    for where, length in row.get("lengths", {}).items():
        found: Any = response.json()
        for key in where.split("/"):
            found = found[key]
        assert len(found) == length, where
    for where in row.get("nulls", []):
        found = response.json()
        for key in where.split("/"):
            found = found[key]
        assert found is None, where
    if "ps" in row:
        ps = httpx.get(f"{server.url}/api/ps", timeout=10).json()["models"]
        assert [m["name"] for m in ps] == row["ps"]
        if "ps_forever" in row:
            assert all(m["expires_at"] > "9000" for m in ps) is row["ps_forever"]
    if "layer" in row:
        (model,) = server.standin.models.values()
        assert (model.blob == digest) is (row["layer"] == "uploaded") and server.standin.blobs.has(model.blob or "")


async def test_a_created_model_is_sized_from_show_as_from_its_file(
    ollama_standin_factory: Callable[..., StandInServer], tmp_path: Path
) -> None:
    server = ollama_standin_factory([], StandInOptions(models_dir=tmp_path / "ollama"))
    path = write_tiny_llama(tmp_path / "m.gguf", seed=7, n_layer=6)
    digest = f"sha256:{hashlib.sha256(path.read_bytes()).hexdigest()}"
    httpx.post(f"{server.url}/api/blobs/{digest}", content=path.read_bytes(), timeout=10)
    create = {"model": "m", "files": {"m.gguf": digest}}
    _call(server, {"method": "POST", "path": "/api/create", "body": create}, digest)

    with open_ollama_client(server.url, OllamaTimeouts()) as client:
        shown = fetch_ollama_shape(OllamaAPI(client, "node/ollama"), "m")

    on_disk = read_gguf(path)
    assert not shown.estimated and (shown.n_layer, shown.n_vocab) == (on_disk.n_layer, on_disk.n_vocab) == (6, 512)
    assert shown.weight_bytes == on_disk.weight_bytes > 0


def test_the_command_plays_the_version_asked_and_refuses_one_it_does_not_model(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "standin.log"
    command = [
        sys.executable,
        "-m",
        "homelab_app.ollama_standin",
        "--port",
        str(port),
        "--models-dir",
        str(tmp_path / "m"),
    ]
    with log.open("wb") as out:
        proc = subprocess.Popen([*command, "--ollama-version", "0.12.11"], stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_http(f"http://{LOOPBACK}:{port}/api/version", 30, "python -m homelab_app.ollama_standin", log)
        assert httpx.get(f"http://{LOOPBACK}:{port}/api/version", timeout=5).json() == {"version": "0.12.11"}
    finally:
        stop_process(proc)

    refused = subprocess.run([*command, "--ollama-version", "0.20.0"], capture_output=True, text=True, timeout=60)

    assert refused.returncode == 2 and "models Ollama 0.12.x and 0.30 and later, not 0.20.0" in refused.stderr
    assert "Traceback" not in refused.stderr


def _per_layer_gguf(tmp_path: Path) -> Path:
    """A tiny GGUF whose KV heads are a per-layer array (6 entries), as some real models have."""
    base = write_tiny_llama(tmp_path / "base.gguf", seed=7, n_layer=6, n_head=4, n_head_kv=2)
    out = tmp_path / "per-layer.gguf"
    per_layer = MetadataDetails(GGUFValueType.ARRAY, [2, 2, 1, 2, 2, 1], sub_type=GGUFValueType.UINT32)
    copy_with_new_metadata(GGUFReader(base), GGUFWriter(out, "llama"), {"llama.attention.head_count_kv": per_layer}, [])
    return out


async def test_per_layer_arrays_reach_the_vram_reader_only_through_verbose(
    ollama_standin_factory: Callable[..., StandInServer], tmp_path: Path
) -> None:
    server = ollama_standin_factory([], StandInOptions(models_dir=tmp_path / "ollama"))
    blob = _per_layer_gguf(tmp_path).read_bytes()
    digest = f"sha256:{hashlib.sha256(blob).hexdigest()}"
    httpx.post(f"{server.url}/api/blobs/{digest}", content=blob, timeout=10)
    create = {"model": "m", "files": {"m.gguf": digest}}
    _call(server, {"method": "POST", "path": "/api/create", "body": create}, digest)
    plain = httpx.post(f"{server.url}/api/show", json={"model": "m"}, timeout=10).json()

    with open_ollama_client(server.url, OllamaTimeouts()) as client:
        shown = fetch_ollama_shape(OllamaAPI(client, "node/ollama"), "m")

    assert plain["model_info"]["llama.attention.head_count_kv"] is None, "Ollama shows it null without verbose"
    assert shown.n_head_kv == [2, 2, 1, 2, 2, 1] and not shown.estimated
