"""A Hugging Face model source: `huggingface_hub` downloads into its own cache; homelab checks the SHA-256.

Per file (each part of a split GGUF): a HEAD on `/{repo}/resolve/{revision}/{path}` reads the
commit, the size and the LFS object's SHA-256 (`X-Linked-Etag`; huggingface_hub
file_download.py:1676-1688 `get_hf_file_metadata`); a `sha256:` pinned in the cluster file is
compared with it before anything is downloaded. `hf_hub_download` then fetches that exact
commit into the hub's cache (file_download.py:1068 `_hf_hub_download_to_cache_dir`; a file
already there costs no GET, and a connection that drops mid-body is resumed with Range,
file_download.py:377-378 and 459-485), and the file is hashed (once while it is unchanged,
`homelab.sources.checked`): bytes that do not match the LFS digest are refused and removed
from the cache, so the next run downloads them again.

The token is read from the cluster file's `secrets:` by the caller and reaches the hub only as
the client's `Authorization` header (which it drops for a CDN on another host,
file_download.py:1814-1821); without one, `token=False` keeps the client from using a token
of its own (HF_TOKEN, the login file). huggingface_hub's errors are translated here.
"""

from __future__ import annotations

import logging
import os
import posixpath
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from huggingface_hub import get_hf_file_metadata, hf_hub_download, hf_hub_url
from huggingface_hub.errors import (
    GatedRepoError,
    HfHubHTTPError,
    LocalEntryNotFoundError,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from pydantic import Field, SecretStr
from tqdm import tqdm

from homelab.docker_ops.sources import CopyProgress, ProgressCallback, hash_local_file
from homelab.errors import ChecksumMismatch, ModelDownloadError
from homelab.frozen import Frozen
from homelab.sources.checked import mark_checked, was_checked
from homelab.sources.limits import FetchLimits
from homelab.sources.spec import Fetched, SourceSpec

__all__ = ["DEFAULT_HUB_ENDPOINT", "HubFile", "fetch_hub", "hub_files"]

log = logging.getLogger(__name__)
DEFAULT_HUB_ENDPOINT = "https://huggingface.co"
_LFS_SHA256 = re.compile(r"[0-9a-f]{64}")


class HubFile(Frozen):
    """One file of a hub source as the hub describes it (a split GGUF has one per part)."""

    path: str = Field(description="the file's path in the repo")
    commit: str
    size_bytes: int | None
    sha256: str = Field(description="the LFS object's SHA-256, or the cluster file's pin")
    location: str = Field(description="where its bytes are: the resolve URL, or the CDN it redirects to")


def _bar_class(progress: ProgressCallback | None, model: str) -> type[tqdm] | None:
    """A tqdm class whose updates go to `progress` (huggingface_hub makes one per file download,
    utils/tqdm.py:337-338; it passes unit, total, initial and desc)."""
    if progress is None:
        return None  # huggingface_hub's own bar, on a terminal

    class Bar(tqdm):  # type: ignore[misc]  # tqdm ships no types
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **(kwargs | {"disable": True}))
            self.done_bytes, self.total_bytes = kwargs.get("initial") or 0, kwargs.get("total")

        def update(self, n: float | None = 1) -> bool | None:
            self.done_bytes += int(n or 0)
            total = self.total_bytes or self.done_bytes
            assert progress is not None
            progress(CopyProgress(file=model, phase="download", done_bytes=self.done_bytes, total_bytes=total))
            return None

    return Bar


def _token(token: SecretStr | None) -> str | bool:
    # False, not None: None lets huggingface_hub send HF_TOKEN or the login file's token.
    return token.get_secret_value() if token is not None else False


@contextmanager
def _translated(model: str, spec: SourceSpec, endpoint: str, token: SecretStr | None) -> Iterator[None]:
    """huggingface_hub's errors as `ModelDownloadError`s naming the model, the source and what to do."""
    where = f"{model}: {spec.shown()}"
    try:
        yield
    except GatedRepoError as exc:
        given = "the token given has no access" if token is not None else "no token was given"
        raise ModelDownloadError(
            f"{where}: the repository is gated ({given}, HTTP {exc.response.status_code}): accept its conditions "
            "on the hub, then name a secret holding a token of that account in the source's token_secret"
        ) from exc
    except RevisionNotFoundError as exc:
        raise ModelDownloadError(f"{where}: the repository has no revision {spec.revision or 'main'!r}") from exc
    except RemoteEntryNotFoundError as exc:
        raise ModelDownloadError(f"{where}: the repository has no such file at that revision") from exc
    except RepositoryNotFoundError as exc:
        hint = "the token given cannot read it" if token is not None else "a private one needs token_secret"
        raise ModelDownloadError(
            f"{where}: no such repository, or it is private ({hint}; HTTP {exc.response.status_code})"
        ) from exc
    except HfHubHTTPError as exc:
        raise ModelDownloadError(f"{where}: the hub answered HTTP {exc.response.status_code}") from exc
    except LocalEntryNotFoundError as exc:
        cause = exc.__cause__ or exc
        raise ModelDownloadError(
            f"{where}: the hub at {endpoint} did not answer ({type(cause).__name__}) and the file is not cached"
        ) from exc
    except (httpx.HTTPError, OSError) as exc:  # a body cut short every retry: "Consistency check failed"
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ModelDownloadError(f"{where}: the download failed: {first}") from exc


def _part_path(spec: SourceSpec, name: str) -> str:
    folder = posixpath.dirname(spec.repo_path)
    return posixpath.join(folder, name) if folder else name


def hub_files(
    spec: SourceSpec, model: str, endpoint: str, token: SecretStr | None, limits: FetchLimits
) -> list[HubFile]:
    """What the hub says of each part (a HEAD each; nothing downloaded), the pin checked.

    Raises:
        ChecksumMismatch: the cluster file's `sha256` is not the hub's LFS digest.
        ModelDownloadError: the hub refused (gated, private, missing), or gives no SHA-256 to check.
    """
    files = []
    for name in spec.part_names():
        path = _part_path(spec, name)
        url = hf_hub_url(spec.repo_id, path, revision=spec.revision, endpoint=endpoint)
        with _translated(model, spec, endpoint, token):
            meta = get_hf_file_metadata(url, token=_token(token), timeout=limits.connect_s, endpoint=endpoint)
        if meta.commit_hash is None:
            raise ModelDownloadError(f"{model}: {spec.shown()}: {endpoint} gave no X-Repo-Commit: is it a hub?")
        if meta.size is not None and meta.size > limits.max_file_bytes:
            # huggingface_hub reads the body itself: what it is told to expect is where homelab bounds it.
            raise ModelDownloadError(
                f"{model}: {spec.shown()}: the hub says {path} is {meta.size:,} bytes, more than the "
                f"{limits.max_file_bytes:,} a model file may have; refused before downloading"
            )
        lfs = meta.etag if meta.etag and _LFS_SHA256.fullmatch(meta.etag) else None
        if spec.sha256 is not None and lfs is not None and lfs != spec.sha256:
            raise ChecksumMismatch(
                f"{model}: {spec.shown()}: sha256 in the cluster file is {spec.sha256}, the hub's LFS object "
                f"is {lfs}; nothing was downloaded"
            )
        expected = lfs or spec.sha256
        if expected is None:
            raise ModelDownloadError(
                f"{model}: {spec.shown()}: the hub gives no SHA-256 for {path} (not an LFS file); "
                "add sha256 to the source"
            )
        files.append(HubFile(path=path, commit=meta.commit_hash, size_bytes=meta.size, sha256=expected,
                             location=meta.location))  # fmt: skip
    return files


def _forget(path: Path) -> None:
    """Remove a bad download from the hub cache: the snapshot's link and the blob it points at."""
    blob = path.resolve()
    path.unlink(missing_ok=True)
    if blob != path:
        blob.unlink(missing_ok=True)


def fetch_hub(
    spec: SourceSpec,
    model: str,
    *,
    endpoint: str,
    cache_dir: Path | None,
    token: SecretStr | None,
    limits: FetchLimits,
    checked_dir: Path,
    progress: ProgressCallback | None = None,
) -> list[Fetched]:
    """Every part of a hub source in the hub's cache, checked; the first part first.

    Args:
        endpoint: the hub (`https://huggingface.co`, a mirror, or a stand-in on 127.0.0.1).
        cache_dir: the hub cache folder; None: huggingface_hub's own (HF_HUB_CACHE).
        checked_dir: where the records of files already hashed are kept (`homelab.sources.checked`).

    Raises:
        ChecksumMismatch: a part's bytes are not the LFS object's (removed from the cache).
        ModelDownloadError: the hub refused or failed (the message says what to do).
    """
    paths = []
    for file in hub_files(spec, model, endpoint, token, limits):
        with _translated(model, spec, endpoint, token):
            # The commit just read, not the branch: the bytes are those the HEAD described.
            local = hf_hub_download(spec.repo_id, file.path, revision=file.commit, cache_dir=cache_dir,
                                    endpoint=endpoint, token=_token(token), etag_timeout=limits.connect_s,
                                    tqdm_class=_bar_class(progress, model))  # fmt: skip
        path = Path(str(local))
        if not was_checked(checked_dir, file.sha256, path):
            if (got := hash_local_file(path, model, progress).sha256) != file.sha256:
                _forget(path)
                raise ChecksumMismatch(
                    f"{model}: {spec.shown()}: {file.path}: SHA-256 expected {file.sha256} (the hub's LFS object), "
                    f"got {got}; removed from the cache"
                )
            mark_checked(checked_dir, got, path)
        size = os.path.getsize(path)
        log.info("%s: %s (%s bytes) from %s, sha256 ok", model, file.path, size, spec.shown())
        paths.append(Fetched(path=path, sha256=file.sha256, size_bytes=size))
    return paths
