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
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

__all__ = ["DIGEST_PATTERN", "BlobStore", "valid_digest"]

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
