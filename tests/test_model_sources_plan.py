"""Models sized from their `source:` without downloading them: GGUF headers read with HTTP ranges (a bounded
number of bytes), split GGUFs part by part, `homelab plan` and `homelab rollout --dry-run` on hub sources."""

from __future__ import annotations

import hashlib
import json
import re
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from homelab.errors import ModelDownloadError, ModelFileError
from homelab.sources.fetch import Fetcher, open_fetch_client
from homelab.sources.limits import FetchLimits
from homelab.sources.remote_header import read_remote_header, source_shape
from homelab.sources.spec import SourceSpec
from homelab.tiny_gguf import write_tiny_llama
from homelab.vram.metadata import read_gguf
from homelab.vram.shape import ModelShape
from tests.fixtures.fault_servers import FaultServer, Handler, endless_body
from tests.fixtures.hf_hub import HubStandIn
from tests.model_sources_util import run_homelab, write_split_llama

MIB = 2**20


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 13 MB model whose header is about 90 KB: a plan must not fetch the weights."""
    return write_tiny_llama(tmp_path_factory.mktemp("big") / "big.gguf", n_embd=256, n_ff=512, n_vocab=4096)


@pytest.fixture(scope="module")
def split(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    """The tiny model, and the same model split into three parts by gguf-py's own shard writer."""
    return write_split_llama(tmp_path_factory.mktemp("split"))


def _fetcher(hub: HubStandIn, tmp_path: Path, limits: FetchLimits | None = None) -> Fetcher:
    limits = limits or FetchLimits()
    return Fetcher(client=open_fetch_client(limits), cache_dir=tmp_path / "cache", hub_endpoint=hub.endpoint,
                   hub_cache_dir=tmp_path / "hf", limits=limits)  # fmt: skip


def _same_shape(a_file: Path, shape_name: str, b: ModelShape) -> None:
    a = read_gguf(a_file)
    assert a.model_dump(exclude={"name", "tensors"}) == b.model_dump(exclude={"name", "tensors"})
    # Offsets count from each part's own data section; names, types and sizes are the model's.
    assert [(t.name, t.type, t.shape, t.n_bytes) for t in a.tensors] == [
        (t.name, t.type, t.shape, t.n_bytes) for t in b.tensors
    ]
    assert shape_name == b.name


def test_a_hub_model_is_sized_from_a_ranged_header_read(hf_hub: HubStandIn, tmp_path: Path, big: Path) -> None:
    data = big.read_bytes()
    hf_hub.add("owner/repo", {"Q4/big.gguf": data})
    shape = source_shape(_fetcher(hf_hub, tmp_path), SourceSpec(url="hf://owner/repo/Q4/big.gguf"), "big.gguf")
    _same_shape(big, "big.gguf", shape)
    gets = hf_hub.requests("GET", "cdn")
    assert gets and all(g.range is not None and g.range.startswith("bytes=") for g in gets)
    fetched = sum(hf_hub.sent.values())
    assert fetched < 1 * MIB < len(data) // 10, fetched  # a few hundred KB of a 13 MB file
    assert not (tmp_path / "hf").exists()  # nothing downloaded into the cache


def test_a_split_model_is_sized_from_every_part_header(
    hf_hub: HubStandIn, tmp_path: Path, split: tuple[Path, list[Path]]
) -> None:
    single, parts = split
    hf_hub.add("owner/repo", {p.name: p.read_bytes() for p in parts})
    spec = SourceSpec(url=f"hf://owner/repo/{parts[0].name}")
    _same_shape(single, parts[0].name, source_shape(_fetcher(hf_hub, tmp_path), spec, parts[0].name))
    assert len(hf_hub.requests("HEAD", "hub")) == 3 and len({g.path for g in hf_hub.requests("GET", "cdn")}) == 3
    _same_shape(single, parts[0].name, read_gguf(parts[0]))  # and on disk, the parts beside the first


def test_a_local_split_named_by_a_later_part_is_refused(split: tuple[Path, list[Path]]) -> None:
    _, parts = split
    with pytest.raises(ModelFileError, match="part 2 of a 3-part split GGUF; give the first part"):
        read_gguf(parts[1])


def test_https_header_read_is_bounded(hf_hub: HubStandIn, tmp_path: Path, big: Path) -> None:
    data = big.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    hf_hub.blobs[sha] = data
    url = f"{hf_hub.cdn}/cdn/{sha}"
    with open_fetch_client() as client:
        tight = FetchLimits(header_first_bytes=16 * 1024, header_max_bytes=32 * 1024)
        with pytest.raises(ModelDownloadError, match="the GGUF header goes on past 32,768 bytes"):
            read_remote_header(client, url, "big.gguf", tight)
        header, fetched = read_remote_header(client, url, "big.gguf", FetchLimits(header_first_bytes=16 * 1024))
    assert len(header.tensors) == len(read_gguf(big).tensors)
    assert fetched < 256 * 1024


def test_a_server_that_ignores_range_is_read_only_as_far_as_needed(
    fault_server: Callable[[Handler], FaultServer],
) -> None:
    server = fault_server(endless_body(100 * MIB, announce=True))
    with open_fetch_client() as client, pytest.raises(ModelFileError, match="not a GGUF file"):
        read_remote_header(client, f"{server.url}/m.gguf", "m.gguf", FetchLimits())
    assert server.bytes_sent < 8 * MIB  # the first range's worth, not 100 MB


def _cluster(tmp_path: Path, source: str, docker: str = "unix:///nonexistent/docker.sock") -> Path:
    file = tmp_path / "cluster.yaml"
    file.write_text(
        "nodes:\n"
        "  - name: box\n    tier: gpu\n    host: 127.0.0.1\n    gpus: [{name: RTX 3060, vram_gib: 12}]\n"
        f"    docker: {{url: '{docker}'}}\n"
        "    endpoints:\n"
        "      - name: big\n        kind: llamacpp\n        url: http://127.0.0.1:39999\n"
        "        models: [{name: big, alias: big}]\n"
        f"        container: {{image: llama, source: '{source}', ctx_size: 2048}}\n"
    )
    return file


def _homelab(tmp_path: Path, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return run_homelab(tmp_path / "hf", *args)


def test_homelab_plan_sizes_a_hub_source_without_downloading_it(hf_hub: HubStandIn, tmp_path: Path, big: Path) -> None:
    hf_hub.add("owner/repo", {"big.gguf": big.read_bytes()})
    cluster = _cluster(tmp_path, "hf://owner/repo/big.gguf")
    result = _homelab(tmp_path, "plan", "-i", cluster, "--hf-endpoint", hf_hub.endpoint, "--no-ask-nodes", "--json")
    assert result.returncode == 0, result.stderr
    (placed,) = [p for gpu in json.loads(result.stdout)["gpus"] for p in gpu["placements"]]
    assert (placed["model"], placed["source"], placed["whole"]) == ("big", "gguf", True)
    assert sum(hf_hub.sent.values()) < 1 * MIB and not (tmp_path / "hf").exists()
    text = _homelab(tmp_path, "plan", "-i", cluster, "--hf-endpoint", hf_hub.endpoint, "--no-ask-nodes")
    assert any(line.strip().startswith("big") and "GGUF file" in line for line in text.stdout.splitlines())


def test_homelab_plan_says_why_a_source_could_not_be_read(hf_hub: HubStandIn, tmp_path: Path) -> None:
    cluster = _cluster(tmp_path, "hf://owner/missing/big.gguf")
    result = _homelab(tmp_path, "plan", "-i", cluster, "--hf-endpoint", hf_hub.endpoint, "--no-ask-nodes")
    assert result.returncode == 0, result.stderr
    assert "not sized: big (source: big.gguf: hf://owner/missing/big.gguf: no such repository, or it is private" in (
        result.stdout.replace("\n", " ")
    )


def test_rollout_fetches_the_source_and_plans_from_it(hf_hub: HubStandIn, tmp_path: Path, big: Path) -> None:
    hf_hub.add("owner/repo", {"big.gguf": big.read_bytes()})
    cluster = _cluster(tmp_path, "hf://owner/repo/big.gguf")
    result = _homelab(tmp_path, "rollout", "-i", cluster, "--node", "box", "--dry-run", "--json",
                      "--hf-endpoint", hf_hub.endpoint, "--cache-dir", tmp_path / "cache")  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    (container,) = report["preview"]["containers"]
    assert container["model_file"] == "big.gguf" and container["gpu_layers_from"] == "the VRAM plan"
    assert container["source"] == "hf://owner/repo/big.gguf"
    assert report["preview"]["vram"][0].startswith("big: all layers on box GPU0 (RTX 3060)")
    assert report["engine_not_checked"]  # no engine here: the dry run says so and still succeeds
    (cached,) = (tmp_path / "hf").glob("models--owner--repo/snapshots/*/big.gguf")
    assert cached.read_bytes() == big.read_bytes()


def _one_byte_ranges(data: bytes, wrong_start: bool) -> Handler:
    """Answers every range with one byte (a 206 whose Content-Range names it), or with byte 0 whatever was asked."""

    def handle(conn: socket.socket, server: FaultServer) -> None:
        head = b""
        while b"\r\n\r\n" not in head and (chunk := conn.recv(4096)):
            head += chunk
        asked = re.search(rb"(?i)range: bytes=(\d+)-", head)
        start = 0 if wrong_start or asked is None else int(asked[1])
        answer = (f"HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {start}-{start}/{len(data)}\r\n"
                  "Content-Length: 1\r\nConnection: close\r\n\r\n").encode()  # fmt: skip
        server.send(conn, answer + data[start : start + 1])

    return handle


def test_a_server_that_sends_a_byte_at_a_time_or_the_wrong_range_is_given_up_on(
    fault_server: Callable[[Handler], FaultServer], big: Path
) -> None:
    data = big.read_bytes()
    stingy = fault_server(_one_byte_ranges(data, wrong_start=False))
    with open_fetch_client() as client:
        with pytest.raises(ModelDownloadError, match="sent the header in pieces too small: 32 bytes after 32 range"):
            read_remote_header(client, f"{stingy.url}/m.gguf", "m.gguf", FetchLimits())
        assert stingy.connections == 32
        liar = fault_server(_one_byte_ranges(data, wrong_start=True))
        with pytest.raises(ModelDownloadError, match=r"answered 'bytes 0-0/\d+' to a range from byte 1"):
            read_remote_header(client, f"{liar.url}/m.gguf", "m.gguf", FetchLimits())
