"""A model's `source:` in the cluster file: a local path, an https:// URL with its SHA-256, or a Hugging Face file.

    source: /srv/models/qwen2.5-7b-instruct-q4_k_m.gguf
    source: {url: "https://example.org/m.gguf", sha256: "9f86d0...", model_file: m.gguf}
    source: hf://bartowski/Qwen2.5-7B-Instruct-GGUF/Qwen2.5-7B-Instruct-Q4_K_M.gguf
    source: {url: "hf://unsloth/Qwen3-235B-A22B-GGUF/Q4_K_M/Qwen3-235B-A22B-Q4_K_M-00001-of-00003.gguf",
             revision: main, token_secret: hf-token}

A bare string is the `url`. A split GGUF is named by its first part (`-00001-of-00003.gguf`):
every part is fetched and checked, and llama.cpp is given the first (it opens the others by
name from the same folder, `llama_split_prefix` in src/llama.cpp). Plain `http://` is taken
only for a loopback address (a mirror on this machine); anything else must be https.
"""

from __future__ import annotations

import ipaddress
import posixpath
import re
from enum import StrEnum
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import unquote, urlsplit

from pydantic import Field, field_validator, model_validator

from homelab.frozen import Frozen

__all__ = ["SPLIT_PATTERN", "Fetched", "SourceKind", "SourceSpec", "check_hub_endpoint", "file_name_of", "split_parts"]

# llama.cpp's split naming (`llama_split_path`, src/llama.cpp): PREFIX-%05d-of-%05d.gguf.
SPLIT_PATTERN = re.compile(r"^(?P<prefix>.+)-(?P<no>\d{5})-of-(?P<count>\d{5})\.gguf$")
_MAX_PARTS = 512  # the largest released splits have a few dozen parts
_HUB_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}")  # the hub's repo and owner names
_SHA256 = re.compile(r"[0-9a-f]{64}")
_MAX_URL_CHARS = 2048


class SourceKind(StrEnum):
    """Where a model file comes from."""

    LOCAL = "local"
    HTTPS = "https"
    HUB = "hf"


def split_parts(file_name: str) -> list[str]:
    """Every part's name of a split GGUF named by its first part; `[file_name]` for a single file.

    Raises:
        ValueError: a part other than the first is named, or the count is 0 or over the bound.
    """
    match = SPLIT_PATTERN.match(file_name)
    if match is None:
        return [file_name]
    number, count = int(match["no"]), int(match["count"])
    if not 1 <= count <= _MAX_PARTS:
        raise ValueError(f"{file_name!r}: a split of {count} parts (at most {_MAX_PARTS})")
    if number != 1:
        raise ValueError(f"{file_name!r} is part {number} of {count}; name the first part (-00001-of-{count:05d})")
    return [f"{match['prefix']}-{n:05d}-of-{count:05d}.gguf" for n in range(1, count + 1)]


def file_name_of(url: str) -> str:
    """The last name of a source's path or URL (query and fragment dropped); '' when it ends in '/'."""
    return posixpath.basename(unquote(urlsplit(url).path)) if "://" in url else PurePosixPath(url).name


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_hub_endpoint(url: str) -> str:
    """A hub (or mirror) base URL: https://, or plain http:// to a loopback address; no user-info, query or path.

    Raises:
        ValueError: anything else (the message says what is wrong).
    """
    parts = urlsplit(url)
    if parts.scheme not in {"https", "http"} or not parts.hostname or len(url) > _MAX_URL_CHARS:
        raise ValueError(f"must be https://HOST (the hub or a mirror), got {url[:120]!r}")
    if parts.username is not None or parts.password is not None or parts.query or parts.fragment:
        raise ValueError("must not carry a user name, password, query or fragment (a token goes in secrets)")
    if parts.scheme == "http" and not _loopback(parts.hostname):
        raise ValueError(f"plain http:// only to a loopback address: the hub token would cross the network: {url}")
    return url.rstrip("/")


class Fetched(Frozen):
    """A file of a source on this machine, and the SHA-256 it was checked against (None: not checked)."""

    path: Path
    sha256: str | None = None
    size_bytes: int


class SourceSpec(Frozen):
    """Where one model file comes from, and what it must hash to."""

    url: str = Field(min_length=1, max_length=_MAX_URL_CHARS, description="a local path, https:// URL or hf://")
    sha256: str | None = Field(None, description="SHA-256 of the file (hex); required for https://")
    revision: str | None = Field(None, min_length=1, max_length=255, description="hf://: a branch, tag or commit")
    token_secret: str | None = Field(None, min_length=1, description="hf://: the secret holding a hub token")

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        return {"url": data} if isinstance(data, str) else data

    @field_validator("sha256")
    @classmethod
    def _hex(cls, value: str | None) -> str | None:
        if value is not None and not _SHA256.fullmatch(value.lower()):
            raise ValueError(f"must be 64 hex digits (a SHA-256), got {value[:80]!r}")
        return None if value is None else value.lower()

    @field_validator("revision")
    @classmethod
    def _revision(cls, value: str | None) -> str | None:
        if value is not None and re.search(r"[\s\x00-\x1f\x7f]|\.\.", value):
            raise ValueError(f"is not a branch, tag or commit name: {value[:80]!r}")
        return value

    @model_validator(mode="after")
    def _checked(self) -> SourceSpec:
        kind = self.kind
        if kind == SourceKind.HUB:
            self._hub_parts()
        elif kind == SourceKind.HTTPS:
            self._check_http()
        elif not self.url.startswith(("/", "~")):
            raise ValueError(f"url: a local path must be absolute (or start with ~), got {self.url[:80]!r}")
        if kind != SourceKind.HUB and (self.revision is not None or self.token_secret is not None):
            raise ValueError("revision and token_secret are for hf:// sources")
        if kind == SourceKind.HTTPS and self.sha256 is None:
            raise ValueError("sha256 is required for an https:// source: the download is checked against it")
        parts = split_parts(self.file_name)  # a later part named instead of the first is refused here
        if len(parts) > 1 and kind == SourceKind.HTTPS:
            raise ValueError("a split GGUF from https:// needs a SHA-256 per part; use hf:// or a local path")
        if len(parts) > 1 and self.sha256 is not None:
            raise ValueError(
                "sha256 pins one file; a split GGUF's parts are checked against the hub's LFS digests "
                "(pin revision to a commit instead)"
            )
        return self

    @property
    def kind(self) -> SourceKind:
        if self.url.startswith("hf://"):
            return SourceKind.HUB
        if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", self.url):
            return SourceKind.HTTPS
        return SourceKind.LOCAL

    def _check_http(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in {"https", "http"} or not parts.hostname:
            raise ValueError(f"url: must be a local path, https://HOST/... or hf://OWNER/REPO/FILE, got {self.url!r}")
        if parts.username is not None or parts.password is not None:
            raise ValueError("url: must not carry a user name or password")
        if parts.scheme == "http" and not _loopback(parts.hostname):
            raise ValueError(f"url: plain http:// only to a loopback address (a local mirror); use https: {self.url}")

    def _hub_parts(self) -> tuple[str, str]:
        """(OWNER/REPO, path of the file in the repo)."""
        owner, _, rest = self.url.removeprefix("hf://").partition("/")
        repo, _, path = rest.partition("/")
        if not (_HUB_NAME.fullmatch(owner) and _HUB_NAME.fullmatch(repo)) or not path:
            raise ValueError(f"url: must be hf://OWNER/REPO/FILE.gguf, got {self.url[:120]!r}")
        clean = posixpath.normpath(path)
        if clean != path or clean.startswith(("/", "..")) or not path.lower().endswith(".gguf"):
            raise ValueError(f"url: the file in the repo must be a plain path ending in .gguf, got {path[:120]!r}")
        return f"{owner}/{repo}", path

    @property
    def repo_id(self) -> str:
        return self._hub_parts()[0]

    @property
    def repo_path(self) -> str:
        """hf://: the file's path in the repo (its folder included)."""
        return self._hub_parts()[1]

    @property
    def file_name(self) -> str:
        """The file's own name: what the model file is called in a volume unless the cluster file says otherwise."""
        return file_name_of(self.url)

    def part_names(self) -> list[str]:
        """The names of the file's parts (one for a file that is not split)."""
        return split_parts(self.file_name)

    def shown(self) -> str:
        """For messages and reports: the URL without its query (a signed URL's signature) and with the revision."""
        if self.kind == SourceKind.HTTPS:
            parts = urlsplit(self.url)._replace(fragment="")
            return parts._replace(query="...").geturl() if parts.query else parts.geturl()
        return self.url + (f"@{self.revision}" if self.revision else "")
