"""An https:// model source: a streamed download into `NAME.part`, resumed with Range, SHA-256 checked, renamed in.

The cache holds each file under its expected SHA-256 (`https/<sha256>.gguf`), so a file that is
there was checked once and a changed `sha256:` in the cluster file never reuses another file. A
download writes to `<sha256>.gguf.part`; a connection that drops mid-body is resumed from the
part's size with `Range: bytes=N-` (a 206 whose Content-Range starts there is appended; a 200
means the server ignored the range, and the part is rewritten), in this run or the next. Only a
whole file whose digest matches is renamed over the final name (atomic within the folder); a
mismatch deletes the part, since resuming it could only repeat the wrong bytes.

httpx's errors are translated here (`ModelDownloadError`); the client is the caller's.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from filelock import FileLock

from homelab.docker_ops.sources import CopyProgress, ProgressCallback, hash_local_file
from homelab.errors import ChecksumMismatch, ModelDownloadError
from homelab.sources.limits import FetchLimits
from homelab.sources.spec import SourceSpec

__all__ = ["fetch_https", "https_cache_path"]

log = logging.getLogger(__name__)
_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")
# A dropped connection, a stall, a refused connect: worth another try from where it stopped.
_TRANSIENT = (httpx.TransportError,)


class _Broken(Exception):
    """The transfer stopped short; the part keeps what arrived."""


def https_cache_path(cache_dir: Path, spec: SourceSpec) -> Path:
    """Where the verified file lives in the cache (named by its SHA-256)."""
    assert spec.sha256 is not None  # the spec requires one for https
    return cache_dir / "https" / f"{spec.sha256}.gguf"


def _total(response: httpx.Response, start: int) -> int | None:
    """The whole file's size from Content-Range (206) or Content-Length (200), if the server said."""
    if response.status_code == 206:
        match = _CONTENT_RANGE.match(response.headers.get("content-range", ""))
        return int(match[3]) if match and match[3] != "*" else None
    length = response.headers.get("content-length", "")
    return int(length) if length.isdigit() else None


def _resumed_at(response: httpx.Response, have: int) -> int:
    """Where this answer's bytes start: `have` for a matching 206, 0 when the part must be rewritten."""
    if response.status_code == 200:
        return 0
    match = _CONTENT_RANGE.match(response.headers.get("content-range", ""))
    if match is None or int(match[1]) != have:
        raise _Broken(f"asked for bytes from {have:,}, got Content-Range {response.headers.get('content-range')!r}")
    return have


@dataclass(frozen=True)
class _Download:
    """One source's download into its `.part` file."""

    client: httpx.Client
    spec: SourceSpec
    model: str
    part: Path
    limits: FetchLimits
    progress: ProgressCallback | None

    def check_size(self, total: int | None, start: int) -> None:
        if total is None:
            return
        if total > self.limits.max_file_bytes:
            raise ModelDownloadError(
                f"{self.model}: {self.spec.shown()} says the file is {total:,} bytes, more than the "
                f"{self.limits.max_file_bytes:,} a model file may have; refused before downloading"
            )
        folder = self.part.parent
        if total - start > (free := shutil.disk_usage(folder).free):
            raise ModelDownloadError(f"{self.model}: {self.spec.shown()} needs {total - start:,} more bytes; "
                                     f"{folder} has {free:,} free")  # fmt: skip

    def transfer(self) -> None:
        """One GET into the part, from where it stopped. Raises `_Broken` when the body ends short."""
        have = self.part.stat().st_size if self.part.exists() else 0
        # identity: a compressed body would make Content-Length and the byte bound mean something else.
        headers = {"Accept-Encoding": "identity"} | ({"Range": f"bytes={have}-"} if have else {})
        with self.client.stream("GET", self.spec.url, headers=headers) as response:
            if response.status_code == 416 and have:  # the part is longer than the file: start again
                self.part.unlink()
                raise _Broken("the partial file was longer than the file; starting over")
            if response.status_code not in (200, 206):
                raise ModelDownloadError(f"{self.model}: {self.spec.shown()} answered HTTP {response.status_code}")
            at = _resumed_at(response, have)
            total = _total(response, at)
            self.check_size(total, at)
            if have:
                log.info("%s: resuming at byte %d (%s)", self.model, at, "206" if at else "range ignored: 200")
            done = self.write(response, at, total)
        if total is not None and done != total:
            raise _Broken(f"the body ended at byte {done:,} of {total:,}")

    def write(self, response: httpx.Response, at: int, total: int | None) -> int:
        """The body appended at byte `at` (0: the part rewritten); where it ended."""
        with self.part.open("ab" if at else "wb") as handle:
            done = at
            # As the bytes arrive: a chunk size would hold back what a dropped connection then loses.
            for chunk in response.iter_raw():
                done += len(chunk)
                if done > self.limits.max_file_bytes:
                    raise ModelDownloadError(
                        f"{self.model}: {self.spec.shown()} sent more than {self.limits.max_file_bytes:,} bytes, "
                        "the most a model file may have; cut off"
                    )
                handle.write(chunk)
                if self.progress is not None:
                    self.progress(CopyProgress(file=self.model, phase="download", done_bytes=done,
                                               total_bytes=total or done))  # fmt: skip
            handle.flush()
            os.fsync(handle.fileno())
        return done

    def run(self) -> None:
        """Transfers until the part is whole, each resuming the last; at most `limits.attempts`."""
        why, attempts = "", self.limits.attempts
        for attempt in range(1, attempts + 1):
            try:
                self.transfer()
                return
            except _Broken as exc:
                why = str(exc)
            except _TRANSIENT as exc:
                why = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            except httpx.HTTPError as exc:
                raise ModelDownloadError(f"{self.model}: {self.spec.shown()}: {type(exc).__name__}: {exc}") from exc
            log.warning("%s: download of %s broke off (%s); try %d of %d", self.model, self.spec.shown(), why,
                        attempt, attempts)  # fmt: skip
            if attempt < attempts:
                time.sleep(self.limits.retry_wait_s)
        kept = self.part.stat().st_size if self.part.exists() else 0
        raise ModelDownloadError(
            f"{self.model}: {self.spec.shown()}: the download broke off on each of {attempts} tries (last: {why}); "
            f"{kept:,} bytes kept in {self.part}, resumed from there on the next run"
        )


def fetch_https(
    client: httpx.Client,
    spec: SourceSpec,
    model: str,
    cache_dir: Path,
    limits: FetchLimits,
    progress: ProgressCallback | None = None,
) -> Path:
    """The verified local copy of an https:// source, downloaded (or resumed) when the cache lacks it.

    Args:
        client: the connector (timeouts, TLS trust); the caller owns and closes it.
        model: how messages name the model (its file name in the cluster file).

    Raises:
        ChecksumMismatch: the whole file hashes to another SHA-256 (the part is deleted).
        ModelDownloadError: an HTTP error, a bound crossed, or the transfer broke off every try.
    """
    final = https_cache_path(cache_dir, spec)
    final.parent.mkdir(parents=True, exist_ok=True)
    if final.is_file():
        return final  # named by its digest, and renamed in only once it matched
    part = final.with_name(final.name + ".part")
    # Two rollouts fetching one file would append to one part: the second waits, then finds it.
    with FileLock(final.with_name(final.name + ".lock")):
        if final.is_file():
            return final
        _Download(client, spec, model, part, limits, progress).run()
        got = hash_local_file(part, model, progress).sha256
        if got != spec.sha256:
            part.unlink()
            raise ChecksumMismatch(
                f"{model}: {spec.shown()}: SHA-256 expected {spec.sha256}, got {got}; the download was deleted"
            )
        os.replace(part, final)
    return final
