"""The stand-in's blob store: uploaded files kept by SHA-256, as Ollama keeps `blobs/sha256-<hex>`.

An upload is written to a hidden temporary file and hashed on the way in; only a complete body
whose digest is the one in the URL is renamed to its blob name. A body cut short (the client
went away) or one with another digest leaves nothing behind, so a later HEAD still answers 404
and the next upload starts clean.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

__all__ = ["DIGEST_PATTERN", "REWRITE_MARK", "BlobStore", "valid_digest"]

# What the stand-in appends when it plays llama-quantize's COPY (see versions.py): the bytes
# change, so the digest does, as the real rewrite changes them.
REWRITE_MARK = b"\nhomelab ollama stand-in: rewritten as llama-quantize COPY would\n"
_COPY_CHUNK = 1 << 20
DIGEST_PATTERN = re.compile(r"sha256[:-]([0-9a-f]{64})")


def valid_digest(digest: str) -> str | None:
    """The 64 hex digits of a `sha256:<hex>` digest (Ollama also takes `sha256-`), or None."""
    match = DIGEST_PATTERN.fullmatch(digest)
    return match.group(1) if match else None


class BlobStore:
    """Blobs in one folder, named `sha256-<hex>` like Ollama's."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def path(self, digest: str) -> Path:
        hex_digest = valid_digest(digest)
        if hex_digest is None:
            raise ValueError(f"invalid digest format {digest!r}")
        return self.root / f"sha256-{hex_digest}"

    def has(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def prune(self, referenced: set[str], grace_s: float) -> list[str]:
        """Delete blobs no model references and partial uploads, older than `grace_s`; the digests deleted.

        Ollama's `PruneLayers` at server start (server/images.go:874-925 at v0.33.0-rc2; the
        hour's grace, :897, since v0.21; none at v0.12.11, :490).
        """
        keep = {valid_digest(d) for d in referenced}
        deleted = []
        for path in sorted(self.root.iterdir()):
            if not path.is_file() or time.time() - path.stat().st_mtime < grace_s:
                continue
            hex_digest = valid_digest(path.name)
            if hex_digest is None or hex_digest not in keep:
                path.unlink()
                deleted.append(f"sha256:{hex_digest}" if hex_digest else path.name)
        return deleted

    def rewrite(self, digest: str) -> str:
        """A copy of blob `digest` with other bytes, stored as its own blob; its digest."""
        incoming = self.root / f".incoming-{uuid.uuid4().hex}"
        sha = hashlib.sha256()
        try:
            with self.path(digest).open("rb") as source, incoming.open("wb") as target:
                while chunk := source.read(_COPY_CHUNK):
                    sha.update(chunk)
                    target.write(chunk)
                sha.update(REWRITE_MARK)
                target.write(REWRITE_MARK)
            rewritten = f"sha256:{sha.hexdigest()}"
            os.replace(incoming, self.path(rewritten))
            return rewritten
        finally:
            incoming.unlink(missing_ok=True)

    def leftovers(self) -> list[Path]:
        """Temporary files of uploads in progress (or, after a crash, never cleaned up)."""
        return sorted(self.root.glob(".incoming-*"))

    async def receive(self, digest: str, body: AsyncIterator[bytes]) -> tuple[str, int]:
        """Store a streamed body as the blob `digest` when it hashes to it.

        Returns:
            The digest the body actually had (`sha256:<hex>`) and its size; the blob exists
            afterwards only when that digest is `digest`.

        Raises:
            Whatever the body's iterator raises (a client that disconnected); nothing is kept.
        """
        target = self.path(digest)
        incoming = self.root / f".incoming-{uuid.uuid4().hex}"
        sha = hashlib.sha256()
        size = 0
        try:
            with incoming.open("wb") as file:
                async for chunk in body:
                    sha.update(chunk)
                    file.write(chunk)
                    size += len(chunk)
            actual = f"sha256:{sha.hexdigest()}"
            if actual == f"sha256:{valid_digest(digest)}":
                os.replace(incoming, target)
            return actual, size
        finally:
            incoming.unlink(missing_ok=True)
