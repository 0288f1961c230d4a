"""The stand-in's state: its models, what is loaded, its blobs, its options, and a record of what it was asked.

The records (`requests`, `uploads`, `loads`, `created`) are for tests: they show what reached
the server and when, which a client cannot see (a second rollout that uploads nothing, loads
that never overlapped).
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from homelab_app.ollama_standin.blobs import BlobStore
from homelab_app.ollama_standin.models import DEFAULT_KEEP_ALIVE_S, ModelSpec, full_name
from homelab_app.ollama_standin.versions import NEWEST_VERSION, OllamaBehaviour, behaviour
from homelab_app.ollama_standin.vram import size_vram

__all__ = ["LoadRecord", "StandInOptions", "StandInState", "UploadRecord"]

_FOREVER = datetime(9999, 1, 1, tzinfo=UTC)


class StandInOptions(BaseModel):
    """How a stand-in behaves beyond the API: the Ollama version it plays, faults for tests, a registry, figures."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    ollama_version: str = Field(
        NEWEST_VERSION, description="the Ollama release whose behaviour to follow (versions.py)"
    )
    create_error: str | None = Field(None, description="test-only fault: every /api/create answers 500 with this")
    registry: tuple[ModelSpec, ...] = Field((), description="what /api/pull can fetch; empty: no registry reachable")
    vram_bytes: dict[str, int] = Field(default_factory=dict, description="model -> size_vram to report in /api/ps")
    load_delay_s: float = Field(0.0, ge=0, description="how long loading a model takes")
    num_parallel: int = Field(1, gt=0, le=256, description="OLLAMA_NUM_PARALLEL: a model runs with num_ctx x this")
    models_dir: Path | None = Field(
        None, description="OLLAMA_MODELS: blobs/ and manifests/ kept across restarts; default: a fresh temporary folder"
    )

    @field_validator("ollama_version")
    @classmethod
    def _modelled(cls, version: str) -> str:
        behaviour(version)
        return version

    @property
    def behaviour(self) -> OllamaBehaviour:
        return behaviour(self.ollama_version)


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
    """Pulled and created models, loaded models with their expiry, blobs, and the records.

    With a `models_dir`, created and pulled models are kept as manifests there and a new
    stand-in on the same folder has them again: a restart. Starting prunes the blobs no model
    references, as Ollama does (see `versions.py`).
    """

    def __init__(self, models: Sequence[ModelSpec], options: StandInOptions) -> None:
        self.options = options
        self.behaviour = options.behaviour
        if options.models_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="ollama-standin-models-")
        root = options.models_dir or Path(self._tmp.name)
        self.blobs = BlobStore(root / "blobs")
        self.manifests = root / "manifests"
        self.manifests.mkdir(parents=True, exist_ok=True)
        self.models: dict[str, ModelSpec] = {m.full_name: m for m in [*models, *self._saved()]}
        self.registry: dict[str, ModelSpec] = {m.full_name: m for m in options.registry}
        self.loaded: dict[str, datetime] = {}  # full name -> expires_at
        self.sessions: dict[str, float] = {}  # full name -> its keep-alive in seconds (Ollama's sessionDuration)
        self.modified_at = datetime.now(UTC)
        self.pruned = self.blobs.prune({m.blob for m in self.models.values() if m.blob}, self.behaviour.prune_grace_s)
        self.requests: list[tuple[str, str]] = []  # (method, path), in arrival order
        self.uploads: list[UploadRecord] = []
        self.loads: list[LoadRecord] = []
        self.created: list[str] = []  # full names, in the order /api/create made them

    def _manifest(self, name: str) -> Path:
        return self.manifests / f"{hashlib.sha256(name.encode()).hexdigest()[:32]}.json"

    def _saved(self) -> list[ModelSpec]:
        return [ModelSpec.model_validate_json(path.read_bytes()) for path in sorted(self.manifests.glob("*.json"))]

    def save(self, model: ModelSpec) -> None:
        """The model's manifest is written: it is there, also after a restart."""
        self.models[model.full_name] = model
        self._manifest(model.full_name).write_text(model.model_dump_json())

    def remove(self, name: str) -> ModelSpec | None:
        self._manifest(name).unlink(missing_ok=True)
        self.loaded.pop(name, None)
        return self.models.pop(name, None)

    def load(self, name: str, keep_alive_s: float | None) -> None:
        """Mark a model resident until its keep-alive runs out (0 unloads it).

        A request without `keep_alive` keeps a loaded model's own (server/sched.go:483-485,
        `useLoadedRunner`, at v0.33.0-rc2) and loads a new one for the default 5 minutes
        (:512-514). Ollama keys a runner by the model's file (`schedulerModelKey`, :110), so
        loading a model evicts another one made from the same blob.
        """
        if keep_alive_s is None:
            resident = name in self.resident()
            keep_alive_s = self.sessions.get(name, DEFAULT_KEEP_ALIVE_S) if resident else DEFAULT_KEEP_ALIVE_S
        if keep_alive_s == 0:
            self.loaded.pop(name, None)
            self.sessions.pop(name, None)
            return
        blob = self.models[name].blob if name in self.models else None
        for other in [n for n in self.loaded if n != name and blob and self.models[n].blob == blob]:
            self.loaded.pop(other)
        self.sessions[name] = keep_alive_s
        forever = keep_alive_s == float("inf")
        self.loaded[name] = _FOREVER if forever else datetime.now(UTC) + timedelta(seconds=keep_alive_s)

    def resident(self) -> dict[str, datetime]:
        """Loaded models whose keep-alive has not run out, dropping the rest."""
        now = datetime.now(UTC)
        self.loaded = {name: until for name, until in self.loaded.items() if until > now}
        return dict(self.loaded)

    def size_vram(self, model: ModelSpec) -> int:
        """What `/api/ps` reports on the GPU for a loaded model (see `vram.size_vram`)."""
        override = self.options.vram_bytes.get(model.full_name, self.options.vram_bytes.get(model.name))
        path = self.blobs.path(model.blob) if model.blob and self.blobs.has(model.blob) else None
        return size_vram(model, path, self.behaviour, self.options.num_parallel, override)

    def find(self, name: str) -> ModelSpec | None:
        return self.models.get(full_name(name))
