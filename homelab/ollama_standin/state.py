"""The stand-in's state: its models, what is loaded, its blobs, its options, and a record of what it was asked.

The records (`requests`, `uploads`, `loads`, `created`) are for tests: they show what reached
the server and when, which a client cannot see (a second rollout that uploads nothing, loads
that never overlapped).
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from homelab.ollama_standin.blobs import BlobStore
from homelab.ollama_standin.models import ModelSpec, full_name

__all__ = ["LoadRecord", "StandInOptions", "StandInState", "UploadRecord"]

_FOREVER = datetime(9999, 1, 1, tzinfo=UTC)


class StandInOptions(BaseModel):
    """How a stand-in behaves beyond the API: faults for tests, a registry, figures to report."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    create_error: str | None = Field(None, description="test-only fault: every /api/create answers 500 with this")
    registry: tuple[ModelSpec, ...] = Field((), description="what /api/pull can fetch; empty: no registry reachable")
    vram_bytes: dict[str, int] = Field(default_factory=dict, description="model -> size_vram to report in /api/ps")
    load_delay_s: float = Field(0.0, ge=0, description="how long loading a model takes")
    blobs_dir: Path | None = Field(None, description="where blobs are kept; default: a fresh temporary folder")


@dataclass(frozen=True)
class LoadRecord:
    """One model load: when the request to load it arrived and when the model was resident (monotonic s)."""

    model: str
    started: float
    finished: float


@dataclass(frozen=True)
class UploadRecord:
    """One blob upload: the digest in the URL, the bytes that arrived, the status answered (0: client gone)."""

    digest: str
    received_bytes: int
    status: int


class StandInState:
    """Pulled and created models, loaded models with their expiry, blobs, and the records."""

    def __init__(self, models: Sequence[ModelSpec], options: StandInOptions) -> None:
        self.options = options
        self.models: dict[str, ModelSpec] = {m.full_name: m for m in models}
        self.registry: dict[str, ModelSpec] = {m.full_name: m for m in options.registry}
        self.loaded: dict[str, datetime] = {}  # full name -> expires_at
        self.modified_at = datetime.now(UTC)
        if options.blobs_dir is None:
            self._blobs_tmp = tempfile.TemporaryDirectory(prefix="ollama-standin-blobs-")
        self.blobs = BlobStore(options.blobs_dir or Path(self._blobs_tmp.name))
        self.requests: list[tuple[str, str]] = []  # (method, path), in arrival order
        self.uploads: list[UploadRecord] = []
        self.loads: list[LoadRecord] = []
        self.created: list[str] = []  # full names, in the order /api/create made them

    def load(self, name: str, keep_alive_s: float) -> None:
        """Mark a model resident until its keep-alive runs out (0 unloads it)."""
        if keep_alive_s == 0:
            self.loaded.pop(name, None)
        elif keep_alive_s == float("inf"):
            self.loaded[name] = _FOREVER
        else:
            self.loaded[name] = datetime.now(UTC) + timedelta(seconds=keep_alive_s)

    def resident(self) -> dict[str, datetime]:
        """Loaded models whose keep-alive has not run out, dropping the rest."""
        now = datetime.now(UTC)
        self.loaded = {name: until for name, until in self.loaded.items() if until > now}
        return dict(self.loaded)

    def size_vram(self, model: ModelSpec) -> int:
        """What `/api/ps` reports on the GPU for a loaded model (see `ModelSpec.vram`)."""
        override = self.options.vram_bytes.get(model.full_name, self.options.vram_bytes.get(model.name))
        return model.vram(override)

    def find(self, name: str) -> ModelSpec | None:
        return self.models.get(full_name(name))
