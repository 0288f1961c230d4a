"""GGUF headers of model sources read without downloading the model: `homelab plan` sizes a source first.

A remote file is read with HTTP ranged requests (`Range: bytes=A-B`, answered 206 with a
Content-Range that gives the file's size): a first range of `header_first_bytes`, then more,
doubling, until `parse_header_prefix` has the whole header, never past `header_max_bytes` per
file (a 100 GB model's header is a few MB). A server that ignores Range and answers 200 is read
only as far as needed and the connection closed. A hub source is resolved first (a HEAD,
`hub_files`: the CDN location and the size), and the token goes only to the hub's own host, as
huggingface_hub does (file_download.py:1814-1821). A split GGUF's every part is read: each part's
header holds its own tensors. A local source is read from disk (`read_gguf`).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from homelab.errors import HomelabError, ModelDownloadError
from homelab.inventory import Inventory
from homelab.sources.fetch import Fetcher, node_sources
from homelab.sources.hub import hub_files
from homelab.sources.limits import FetchLimits
from homelab.sources.spec import SourceKind, SourceSpec
from homelab.vram.gguf_header import GGUFHeader, NeedMoreBytes, parse_header_prefix
from homelab.vram.metadata import read_gguf, shape_from_headers, split_count
from homelab.vram.shape import ModelShape

__all__ = ["read_remote_header", "source_shape", "source_shapes"]

log = logging.getLogger(__name__)
_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")
# Doubling from 256 KiB reaches the 64 MiB bound in 9 requests; a server that sends much less
# than asked each time would otherwise be asked again and again.
_MAX_RANGE_REQUESTS = 32


def _size_said(response: httpx.Response) -> int | None:
    if response.status_code == 206:
        match = _CONTENT_RANGE.match(response.headers.get("content-range", ""))
        return int(match[3]) if match and match[3] != "*" else None
    length = response.headers.get("content-length", "")
    return int(length) if length.isdigit() else None


def _range(
    client: httpx.Client, url: str, headers: dict[str, str], start: int, end: int, name: str
) -> tuple[bytes, int | None, int]:
    """Bytes [start, end) of the file (fewer if the server sends fewer), its size if said, the bytes read."""
    asked = headers | {"Range": f"bytes={start}-{end - 1}", "Accept-Encoding": "identity"}
    try:
        with client.stream("GET", url, headers=asked) as response:
            if response.status_code not in (200, 206):
                raise ModelDownloadError(f"{name}: {_shown(url)} answered HTTP {response.status_code} to a range")
            said = _CONTENT_RANGE.match(response.headers.get("content-range", ""))
            if response.status_code == 206 and (said is None or int(said[1]) != start):
                got_range = response.headers.get("content-range", "")[:80]
                raise ModelDownloadError(f"{name}: {_shown(url)} answered {got_range!r} to a range from byte {start:,}")
            skip = start if response.status_code == 200 else 0  # Range ignored: the body starts at byte 0
            got = bytearray()
            for chunk in response.iter_raw():
                got += chunk
                if len(got) >= skip + end - start:
                    break  # leaving the block closes the connection: nothing more is read
            return bytes(got[skip : skip + end - start]), _size_said(response), len(got)
    except httpx.HTTPError as exc:
        raise ModelDownloadError(f"{name}: {_shown(url)}: {type(exc).__name__}: {exc}") from exc


def _shown(url: str) -> str:
    parts = urlsplit(url)
    return parts._replace(query="...").geturl() if parts.query else url


def read_remote_header(
    client: httpx.Client, url: str, name: str, limits: FetchLimits, headers: dict[str, str] | None = None
) -> tuple[GGUFHeader, int]:
    """The GGUF header of the file at `url`, and how many bytes were fetched to read it.

    Raises:
        ModelDownloadError: an HTTP error, no size given, or a header over `limits.header_max_bytes`.
        ModelFileError: not GGUF, or a corrupt header (named `name`).
    """
    data, size, fetched = b"", None, 0
    want = limits.header_first_bytes
    for _ in range(_MAX_RANGE_REQUESTS):
        chunk, said, read = _range(client, url, headers or {}, len(data), want, name)
        fetched += read
        size = size or said
        if size is None:
            raise ModelDownloadError(f"{name}: {_shown(url)} gives no size (Content-Range or Content-Length)")
        if not chunk:
            raise ModelDownloadError(f"{name}: {_shown(url)} sent nothing from byte {len(data):,} of {size:,}")
        data += chunk
        try:
            return parse_header_prefix(data, size, name), fetched
        except NeedMoreBytes as more:
            if len(data) >= min(limits.header_max_bytes, size):
                raise ModelDownloadError(
                    f"{name}: the GGUF header goes on past {len(data):,} bytes, the most read for a header "
                    f"(header_max_bytes); a real one is a few MB"
                ) from None
            want = min(max(more.end, 2 * len(data)), limits.header_max_bytes, size)
    raise ModelDownloadError(
        f"{name}: {_shown(url)} sent the header in pieces too small: {len(data):,} bytes after "
        f"{_MAX_RANGE_REQUESTS} range requests"
    )


def _hub_headers(fetcher: Fetcher, spec: SourceSpec, model: str) -> list[GGUFHeader]:
    token = fetcher.token(spec)
    files = hub_files(spec, model, fetcher.hub_endpoint, token, fetcher.limits)
    hub_host = urlsplit(fetcher.hub_endpoint).hostname
    headers = []
    for file in files:
        # The token goes only to the hub's own host, never to the CDN it redirects to.
        auth = token is not None and urlsplit(file.location).hostname == hub_host
        sent = {"Authorization": f"Bearer {token.get_secret_value()}"} if auth and token else {}
        header, fetched = read_remote_header(fetcher.client, file.location, model, fetcher.limits, sent)
        log.info("%s: header of %s read with %d bytes of %s", model, file.path, fetched, file.size_bytes)
        headers.append(header)
    return headers


def source_shape(fetcher: Fetcher, spec: SourceSpec, model: str) -> ModelShape:
    """The shape of the model a source holds, from its header(s) alone.

    Raises:
        ModelDownloadError, ModelFileError, UnsupportedModel, ModelSourceMissing: as the readers.
    """
    if spec.kind == SourceKind.LOCAL:
        return read_gguf(Path(spec.url).expanduser())
    if spec.kind == SourceKind.HUB:
        headers = _hub_headers(fetcher, spec, model)
    else:
        header, fetched = read_remote_header(fetcher.client, spec.url, model, fetcher.limits)
        log.info("%s: header read with %d bytes", model, fetched)
        headers = [header]
    split_count(headers[0], spec.file_name)  # the name and the header agree on the split
    return shape_from_headers(headers, model)


def source_shapes(inv: Inventory, fetcher: Fetcher) -> dict[str, ModelShape | str]:
    """Model file -> shape (or why not) for every source of a node with GPUs: the lineup's `SourceShapes`."""
    shapes: dict[str, ModelShape | str] = {}
    for node in inv.nodes:
        for name, spec in node_sources(inv, node).items() if node.gpus else []:
            try:
                shapes[name] = source_shape(fetcher, spec, name)
            except HomelabError as exc:
                shapes[name] = f"source: {exc}"  # the message names the file and the source
    return shapes
