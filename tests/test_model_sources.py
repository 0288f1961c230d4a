"""Model sources fetched for a rollout: hf:// through huggingface_hub against the hub stand-in, https:// with
Range resume, local paths; checksums refused, splits whole, tokens only in the Authorization header."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import ssl
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from homelab.docker_ops.sources import CopyProgress
from homelab.errors import ChecksumMismatch, ModelDownloadError
from homelab.sources.fetch import Fetcher, open_fetch_client
from homelab.sources.limits import FetchLimits
from homelab.sources.spec import SourceSpec
from tests.fixtures.fault_servers import FaultServer, Handler, Route, canned, endless_body, self_signed
from tests.fixtures.hf_hub import HubStandIn, blobs_over_tls

TOKEN = "hf_standin_secret_token_0123456789"
FAST = FetchLimits(retry_wait_s=0.0, connect_s=5.0, read_s=10.0)


def _bytes(n: int, seed: int = 0) -> bytes:
    return hashlib.sha256(str(seed).encode()).digest() * (n // 32)


def _fetcher(hub: HubStandIn, tmp_path: Path, limits: FetchLimits = FAST, token: str | None = None) -> Fetcher:
    secrets = {"hf-token": SecretStr(token)} if token else {}
    return Fetcher(
        client=open_fetch_client(limits),
        cache_dir=tmp_path / "cache",
        hub_endpoint=hub.endpoint,
        hub_cache_dir=tmp_path / "hf",
        read_token=secrets.get,
        limits=limits,
    )


def test_hub_file_is_downloaded_checked_and_then_served_from_the_cache(hf_hub: HubStandIn, tmp_path: Path) -> None:
    data = _bytes(300_000)
    hf_hub.add("owner/repo", {"m.gguf": data})
    spec = SourceSpec(url="hf://owner/repo/m.gguf")
    with _fetcher(hf_hub, tmp_path).client:
        (path,) = _fetcher(hf_hub, tmp_path).fetch(spec, "m.gguf")
    assert path.read_bytes() == data
    assert [s.path for s in hf_hub.requests("GET", "cdn")] == [f"/cdn/{hashlib.sha256(data).hexdigest()}"]
    (again,) = _fetcher(hf_hub, tmp_path).fetch(spec, "m.gguf")
    assert again == path and len(hf_hub.requests("GET")) == 1  # the second run: a HEAD, no GET


def test_a_download_cut_mid_body_is_resumed_with_range(hf_hub: HubStandIn, tmp_path: Path) -> None:
    # huggingface_hub writes the body in chunks of 10 MiB (constants.py:40 DOWNLOAD_CHUNK_SIZE) and
    # resumes after the last whole chunk it wrote (file_download.py:459-485): cut past the first.
    chunk = 10 * 2**20
    data = _bytes(chunk + 2 * 2**20, seed=1)
    sha = hashlib.sha256(data).hexdigest()
    hf_hub.add("owner/repo", {"m.gguf": data})
    hf_hub.drop_after[sha] = chunk + 2**20
    (path,) = _fetcher(hf_hub, tmp_path).fetch(SourceSpec(url="hf://owner/repo/m.gguf"), "m.gguf")
    assert path.read_bytes() == data
    gets = hf_hub.requests("GET", "cdn")
    assert [g.range for g in gets] == [None, f"bytes={chunk}-"]
    assert hf_hub.sent[f"/cdn/{sha}"] == chunk + 2**20 + 2 * 2**20  # the cut body, then only the rest


def test_bytes_that_are_not_the_lfs_object_are_refused_and_not_kept(hf_hub: HubStandIn, tmp_path: Path) -> None:
    data = _bytes(100_000, seed=2)
    repo = hf_hub.add("owner/repo", {"m.gguf": data})
    repo.corrupt["m.gguf"] = _bytes(100_000, seed=3)
    spec = SourceSpec(url="hf://owner/repo/m.gguf")
    with pytest.raises(ChecksumMismatch) as caught:
        _fetcher(hf_hub, tmp_path).fetch(spec, "m.gguf")
    got = hashlib.sha256(repo.corrupt["m.gguf"]).hexdigest()
    assert f"m.gguf: hf://owner/repo/m.gguf: m.gguf: SHA-256 expected {hashlib.sha256(data).hexdigest()}" in str(
        caught.value
    )
    assert f"got {got}; removed from the cache" in str(caught.value)
    repo.corrupt.clear()  # the hub heals; the next run downloads again instead of trusting the cache
    (path,) = _fetcher(hf_hub, tmp_path).fetch(spec, "m.gguf")
    assert path.read_bytes() == data and len(hf_hub.requests("GET", "cdn")) == 2


def test_a_pinned_sha256_that_the_hub_contradicts_stops_before_downloading(hf_hub: HubStandIn, tmp_path: Path) -> None:
    hf_hub.add("owner/repo", {"m.gguf": _bytes(10_000)})
    spec = SourceSpec(url="hf://owner/repo/m.gguf", sha256="0" * 64)
    with pytest.raises(ChecksumMismatch, match=r"sha256 in the cluster file is 0{64}, the hub.s LFS object is"):
        _fetcher(hf_hub, tmp_path).fetch(spec, "m.gguf")
    assert hf_hub.requests("GET") == []


def test_a_split_gguf_is_fetched_whole_first_part_first(hf_hub: HubStandIn, tmp_path: Path) -> None:
    parts = {f"Q4/m-{n:05d}-of-00003.gguf": _bytes(50_000, seed=n) for n in (1, 2, 3)}
    hf_hub.add("owner/repo", parts)
    paths = _fetcher(hf_hub, tmp_path).fetch(SourceSpec(url="hf://owner/repo/Q4/m-00001-of-00003.gguf"), "m")
    assert [p.name for p in paths] == ["m-00001-of-00003.gguf", "m-00002-of-00003.gguf", "m-00003-of-00003.gguf"]
    assert [p.read_bytes() for p in paths] == list(parts.values())
    assert len({p.parent for p in paths}) == 1  # beside each other, where llama.cpp looks for them


def test_a_gated_repo_says_what_to_do_and_the_token_goes_only_to_the_hub_as_a_header(
    hf_hub: HubStandIn, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = _bytes(80_000, seed=4)
    hf_hub.add("meta/gated", {"m.gguf": data}, gated=True)
    hf_hub.tokens.add(TOKEN)
    spec = SourceSpec(url="hf://meta/gated/m.gguf", token_secret="hf-token")
    caplog.set_level(logging.DEBUG)  # every logger, httpx's and huggingface_hub's included
    with pytest.raises(ModelDownloadError) as anonymous:
        _fetcher(hf_hub, tmp_path).fetch(spec, "m.gguf")
    assert "the repository is gated (no token was given, HTTP 401): accept its conditions" in str(anonymous.value)
    assert "token_secret" in str(anonymous.value)
    with pytest.raises(ModelDownloadError, match=r"gated \(the token given has no access, HTTP 403\)"):
        _fetcher(hf_hub, tmp_path, token="hf_someone_else").fetch(spec, "m.gguf")
    hf_hub.seen.clear()
    (path,) = _fetcher(hf_hub, tmp_path, token=TOKEN).fetch(spec, "m.gguf")
    assert path.read_bytes() == data
    hub_asked = [s for s in hf_hub.requests(host="hub") if s.authorization]
    assert hub_asked and {s.authorization for s in hub_asked} == {f"Bearer {TOKEN}"}
    assert all(s.authorization is None for s in hf_hub.requests(host="cdn"))  # never to the CDN's host
    assert not any(TOKEN in s.other_headers for s in hf_hub.seen)  # not in a URL or another header
    assert TOKEN not in caplog.text and "hf_someone_else" not in caplog.text


def test_a_missing_repo_revision_or_file_is_named(hf_hub: HubStandIn, tmp_path: Path) -> None:
    hf_hub.add("owner/repo", {"m.gguf": _bytes(1_000)})
    fetcher = _fetcher(hf_hub, tmp_path)
    cases = {
        "hf://owner/none/m.gguf": "no such repository, or it is private (a private one needs token_secret; HTTP 401)",
        "hf://owner/repo/other.gguf": "the repository has no such file at that revision",
    }
    for url, message in cases.items():
        with pytest.raises(ModelDownloadError, match=message.replace("(", r"\(").replace(")", r"\)")):
            fetcher.fetch(SourceSpec(url=url), "m.gguf")
    with pytest.raises(ModelDownloadError, match="has no revision 'v9'"):
        fetcher.fetch(SourceSpec(url="hf://owner/repo/m.gguf", revision="v9"), "m.gguf")


def _https(hub: HubStandIn, data: bytes, sha256: str | None = None) -> SourceSpec:
    sha = hashlib.sha256(data).hexdigest()
    hub.blobs[sha] = data
    return SourceSpec(url=f"{hub.cdn}/cdn/{sha}", sha256=sha256 or sha)


def test_https_source_is_checked_resumed_across_runs_and_cached(hf_hub: HubStandIn, tmp_path: Path) -> None:
    data = _bytes(500_000, seed=5)
    spec = _https(hf_hub, data)
    hf_hub.drop_after[spec.sha256 or ""] = 200_000
    with pytest.raises(
        ModelDownloadError, match=r"broke off on each of 1 tries .* 200,000 bytes kept in .*\.part, resumed"
    ):
        _fetcher(hf_hub, tmp_path, FAST.model_copy(update={"attempts": 1})).fetch(spec, "m.gguf")
    (path,) = _fetcher(hf_hub, tmp_path).fetch(spec, "m.gguf")  # the next run goes on from byte 200,000
    assert path.read_bytes() == data and not path.with_name(path.name + ".part").exists()
    assert [g.range for g in hf_hub.requests("GET")] == [None, "bytes=200000-"]
    _fetcher(hf_hub, tmp_path).fetch(spec, "m.gguf")
    assert len(hf_hub.requests("GET")) == 2  # cached: no third GET


def test_https_source_with_a_wrong_sha256_is_refused_and_deleted(hf_hub: HubStandIn, tmp_path: Path) -> None:
    data = _bytes(64_000, seed=6)
    spec = _https(hf_hub, data, sha256="ab" * 32)
    with pytest.raises(ChecksumMismatch) as caught:
        _fetcher(hf_hub, tmp_path).fetch(spec, "qwen.gguf")
    assert str(caught.value) == (
        f"qwen.gguf: {spec.url}: SHA-256 expected {'ab' * 32}, got {hashlib.sha256(data).hexdigest()}; "
        "the download was deleted"
    )
    assert [p.name for p in (tmp_path / "cache" / "https").iterdir() if p.suffix != ".lock"] == []  # a lock may stay


def _start(fault_server: Callable[[Handler], FaultServer], handler: Handler) -> tuple[FaultServer, SourceSpec]:
    server = fault_server(handler)
    return server, SourceSpec(url=f"{server.url}/m.gguf", sha256="cd" * 32)


def test_a_huge_content_length_is_refused_before_a_byte_is_written(
    fault_server: Callable[[Handler], FaultServer], hf_hub: HubStandIn, tmp_path: Path
) -> None:
    route = Route(200, b"", "application/octet-stream", {"Content-Length": str(10**15)})
    _, spec = _start(fault_server, canned({"/m.gguf": route}))
    with pytest.raises(ModelDownloadError, match="says the file is 1,000,000,000,000,000 bytes, more than the"):
        _fetcher(hf_hub, tmp_path).fetch(spec, "m.gguf")
    assert [p.name for p in (tmp_path / "cache" / "https").iterdir() if p.suffix != ".lock"] == []  # a lock may stay


def test_an_endless_body_is_cut_at_the_bound(
    fault_server: Callable[[Handler], FaultServer], hf_hub: HubStandIn, tmp_path: Path
) -> None:
    server, spec = _start(fault_server, endless_body(200 * 2**20, announce=False))
    limits = FAST.model_copy(update={"max_file_bytes": 2**20})
    with pytest.raises(ModelDownloadError, match="sent more than 1,048,576 bytes, the most a model file may have"):
        _fetcher(hf_hub, tmp_path, limits).fetch(spec, "m.gguf")
    assert server.bytes_sent < 16 * 2**20  # stopped reading near the bound, not at 200 MB


def test_a_local_source_is_checked_against_its_pin(tmp_path: Path, hf_hub: HubStandIn) -> None:
    file = tmp_path / "m.gguf"
    file.write_bytes(b"GGUF....")
    fetcher = _fetcher(hf_hub, tmp_path)
    assert fetcher.fetch(SourceSpec(url=str(file), sha256=hashlib.sha256(b"GGUF....").hexdigest()), "m") == [file]
    with pytest.raises(ChecksumMismatch, match=f"m: {file}: SHA-256 expected {'e' * 64}, got"):
        fetcher.fetch(SourceSpec(url=str(file), sha256="e" * 64), "m")


def test_hub_download_progress_reaches_the_callers_callback(hf_hub: HubStandIn, tmp_path: Path) -> None:
    data = _bytes(200_000, seed=7)
    hf_hub.add("owner/repo", {"m.gguf": data})
    seen: list[CopyProgress] = []
    fetcher = dataclasses.replace(_fetcher(hf_hub, tmp_path), progress=seen.append)
    fetcher.fetch(SourceSpec(url="hf://owner/repo/m.gguf"), "m.gguf")
    downloads = [p for p in seen if p.phase == "download"]
    assert downloads and downloads[-1].done_bytes == downloads[-1].total_bytes == len(data)
    assert seen[-1].phase == "hash source" and seen[-1].done_bytes == len(data)  # then the check
    seen.clear()
    fetcher.fetch(SourceSpec(url="hf://owner/repo/m.gguf"), "m.gguf")
    assert seen == []  # cached and checked before, unchanged: neither downloaded nor read again


def test_an_https_source_over_tls_is_downloaded_and_checked(hf_hub: HubStandIn, tmp_path: Path) -> None:
    folder = self_signed(tmp_path)
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(folder / "cert.pem", folder / "key.pem")
    data = _bytes(300_000, seed=8)
    sha = hashlib.sha256(data).hexdigest()
    hf_hub.blobs[sha] = data
    with (
        blobs_over_tls(hf_hub, server) as base,
        httpx.Client(verify=ssl.create_default_context(cafile=folder / "cert.pem")) as trusting,
    ):
        fetcher = dataclasses.replace(_fetcher(hf_hub, tmp_path), client=trusting)
        (path,) = fetcher.fetch(SourceSpec(url=f"{base}/cdn/{sha}", sha256=sha), "m.gguf")
        assert path.read_bytes() == data
        with pytest.raises(ModelDownloadError, match="ConnectError"):  # an untrusted certificate is refused
            _fetcher(hf_hub, tmp_path / "other").fetch(SourceSpec(url=f"{base}/cdn/{sha}", sha256=sha), "m.gguf")


def test_a_hub_file_said_to_be_huge_is_refused_before_downloading(hf_hub: HubStandIn, tmp_path: Path) -> None:
    repo = hf_hub.add("owner/repo", {"m.gguf": _bytes(1_000)})
    repo.claimed_size["m.gguf"] = 10**15
    with pytest.raises(ModelDownloadError, match=r"the hub says m\.gguf is 1,000,000,000,000,000 bytes, more than"):
        _fetcher(hf_hub, tmp_path).fetch(SourceSpec(url="hf://owner/repo/m.gguf"), "m.gguf")
    assert hf_hub.requests("GET") == []
