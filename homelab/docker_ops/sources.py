"""Where a rollout's GGUF files come from, and the facts about them (size, SHA-256).

The inventory names only the file (`Container.model_file`); the rollout is told where to find
it: a folder on the machine running the rollout (`--models-dir`), whose files are streamed to
the node, or a folder already on the node (`--node-models-dir`), copied there by a helper.
"""

from __future__ import annotations

import hashlib
import posixpath
from collections.abc import Callable
from pathlib import Path

from pydantic import Field, model_validator

from homelab.errors import ModelSourceMissing
from homelab.frozen import Frozen

__all__ = [
    "READ_CHUNK_BYTES",
    "CopyProgress",
    "ModelSource",
    "ProgressCallback",
    "SourceFile",
    "hash_local_file",
    "model_sources",
]

# Big reads keep Python's share of a copy small: a 1 GiB file is 256 calls, not 131072.
READ_CHUNK_BYTES = 4 << 20


class CopyProgress(Frozen):
    """How far a copy (or a hash) of one file has got; `cli.py` turns these into a progress bar."""

    file: str
    phase: str = Field(description="'hash source', 'copy' or 'verify'")
    done_bytes: int
    total_bytes: int


ProgressCallback = Callable[[CopyProgress], None]


class ModelSource(Frozen):
    """One GGUF file: on this machine (`local_path`) or already on the node (`node_path`)."""

    model_file: str
    local_path: Path | None = None
    node_path: str | None = Field(None, description="absolute path on the node")
    checked: SourceFile | None = Field(
        None, description="size and SHA-256 a fetch already checked (`homelab.sources`): not hashed again"
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> ModelSource:
        if (self.local_path is None) == (self.node_path is None):
            raise ValueError("give exactly one of local_path or node_path")
        if self.node_path is not None and not posixpath.isabs(self.node_path):
            raise ValueError(f"node_path must be absolute: {self.node_path!r}")
        return self

    @property
    def where(self) -> str:
        """For messages: the path, and on which side it is."""
        return f"{self.local_path} (local)" if self.local_path else f"{self.node_path} (on the node)"


class SourceFile(Frozen):
    """What a source file holds: its size and SHA-256, the identity a rollout compares."""

    model_file: str
    sha256: str
    size_bytes: int


def model_sources(
    model_files: list[str], *, models_dir: Path | None = None, node_models_dir: str | None = None
) -> dict[str, ModelSource]:
    """The source of each model file, from one of the two folders.

    Raises:
        ModelSourceMissing: a local folder lacks a file (every missing one is named).
        ValueError: neither or both folders given.
    """
    if (models_dir is None) == (node_models_dir is None):
        raise ValueError("give exactly one of models_dir (local) or node_models_dir (on the node)")
    if node_models_dir is not None:
        return {f: ModelSource(model_file=f, node_path=posixpath.join(node_models_dir, f)) for f in model_files}
    assert models_dir is not None
    missing = [f for f in model_files if not (models_dir / f).is_file()]
    if missing:
        raise ModelSourceMissing(f"not in {models_dir}: {', '.join(sorted(set(missing)))}")
    return {f: ModelSource(model_file=f, local_path=models_dir / f) for f in model_files}


def hash_local_file(path: Path, model_file: str, progress: ProgressCallback | None = None) -> SourceFile:
    """SHA-256 and size of a local file, read once in big chunks (OpenSSL's hash, over 1 GB/s)."""
    digest = hashlib.sha256()
    total = path.stat().st_size
    done = 0
    with path.open("rb", buffering=0) as fh:
        while chunk := fh.read(READ_CHUNK_BYTES):
            digest.update(chunk)
            done += len(chunk)
            if progress is not None:
                progress(CopyProgress(file=model_file, phase="hash source", done_bytes=done, total_bytes=total))
    return SourceFile(model_file=model_file, sha256=digest.hexdigest(), size_bytes=done)
