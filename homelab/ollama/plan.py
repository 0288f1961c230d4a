"""The Ollama rollout plan: pure `plan(desired, facts)`, which says what must change on each endpoint and why.

Steps come in the order they run, across the node's endpoints: every transfer first (uploads,
pulls: a failing one stops the rollout before any model changed), then creates, then unloads
of what left the plan (freeing memory for what is in it), deletes when asked, and last the
preloads, one model at a time. A model that is up to date and loaded needs nothing, and says
so; a finished rollout plans nothing.

"Up to date" is read from a marker homelab stores in the model's `license` (which `/api/show`
returns and inference ignores): the source's SHA-256 (or pulled tag) and a hash of parameters
and template. Not from the blob a model is made of: Ollama 0.30+ rewrites an imported GGUF into
a new layer (server/create.go:765 at v0.33.0-rc2), so `/api/show` never names the uploaded blob,
and the uploaded one is pruned when the server restarts. Nor from the template `/api/show`
returns: 0.30+ may return the GGUF's Jinja one.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from homelab.ollama.api import ShownModel
from homelab.ollama.desired import DesiredModel, EndpointDesired, OllamaDesired
from homelab.ollama.facts import EndpointFacts, OllamaFacts, blob_digest

__all__ = [
    "CreateModel",
    "DeleteModel",
    "OllamaPlan",
    "OllamaStep",
    "PreloadModel",
    "PullModel",
    "UnloadModel",
    "UploadBlob",
    "deploy_marker",
    "plan",
]

_MIB = 1 << 20
_MARKER = re.compile(r"^homelab-deploy source=(\S+) config=(\S+)$", re.MULTILINE)


class _Step(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    endpoint: str
    url: str
    reason: str


class UploadBlob(_Step):
    """Stream a GGUF to the endpoint as a blob (safe to retry: the server keeps only a whole, verified body)."""

    kind: Literal["upload_blob"] = "upload_blob"
    file: str
    local_path: str
    digest: str
    size_bytes: int

    def summary(self) -> str:
        return f"upload {self.file} ({self.size_bytes / _MIB:.1f} MiB) to {self.endpoint}: {self.reason}"


class PullModel(_Step):
    """Pull a registry tag (safe to retry: Ollama resumes a pull)."""

    kind: Literal["pull_model"] = "pull_model"
    tag: str

    def summary(self) -> str:
        return f"pull {self.tag} on {self.endpoint}: {self.reason}"


class CreateModel(_Step):
    """Create (or re-create) a model from its blob or pulled tag with the planned parameters."""

    kind: Literal["create_model"] = "create_model"
    model: str
    request: dict[str, Any] = Field(description="the /api/create body")
    described: str

    def summary(self) -> str:
        return f"create {self.model} on {self.endpoint} {self.described}: {self.reason}"


class UnloadModel(_Step):
    """Unload a model that left the plan (`keep_alive: 0`)."""

    kind: Literal["unload_model"] = "unload_model"
    model: str

    def summary(self) -> str:
        return f"unload {self.model} on {self.endpoint}: {self.reason}"


class DeleteModel(_Step):
    """Delete a model that left the plan (only when asked: `prune`)."""

    kind: Literal["delete_model"] = "delete_model"
    model: str

    def summary(self) -> str:
        return f"delete {self.model} on {self.endpoint}: {self.reason}"


class PreloadModel(_Step):
    """Load a model (an empty generate with its keep_alive), then wait until `/api/ps` lists it."""

    kind: Literal["preload_model"] = "preload_model"
    model: str
    keep_alive: int | str

    def summary(self) -> str:
        return f"preload {self.model} on {self.endpoint} (keep_alive {self.keep_alive}): {self.reason}"


OllamaStep = Annotated[
    UploadBlob | PullModel | CreateModel | UnloadModel | DeleteModel | PreloadModel, Field(discriminator="kind")
]


class OllamaPlan(BaseModel):
    """The steps, in the order they must run, and why everything else is left alone."""

    model_config = ConfigDict(frozen=True)

    node: str
    steps: list[OllamaStep]
    unchanged: list[str] = Field(default_factory=list, description="reasons for what needs nothing")

    @property
    def empty(self) -> bool:
        return not self.steps


def _forever(keep_alive: int | str) -> bool:
    return str(keep_alive).strip().startswith("-")


def _forever_until(expires_at: str | None) -> bool:
    """Ollama shows a model kept forever as expiring centuries from now (Go's longest duration)."""
    return expires_at is None or expires_at[:4] > "2200"


def _short(digest: str | None) -> str:
    return digest.removeprefix("sha256:")[:12] if digest else "none"


def deploy_marker(model: DesiredModel, digest: str | None) -> str:
    """The line homelab keeps in a model's license: what it was made from, and a hash of how."""
    source = digest or f"pull:{model.pull}"
    made = json.dumps([model.parameters, model.template], sort_keys=True).encode()
    return f"homelab-deploy source={source} config={hashlib.sha256(made).hexdigest()[:16]}"


def _changes(model: DesiredModel, shown: ShownModel, digest: str | None) -> list[str]:
    """How the model on the endpoint differs from the plan, as `what old -> new`; none: up to date."""
    want = _MARKER.search(deploy_marker(model, digest))
    have = _MARKER.search(shown.license)
    assert want is not None
    if have is None:
        return ["no homelab marker in its license (made by hand, or by an older homelab)"]
    changes = []
    old, new = have.group(1), want.group(1)
    if old != new:
        gguf = old.startswith("sha256:") and new.startswith("sha256:")
        changes.append(f"gguf sha256 {_short(old)} -> {_short(new)}" if gguf else f"made from {old} -> {new}")
    if have.group(2) != want.group(2):
        made = []
        for key in ("num_ctx", "num_gpu"):
            want_value = str(model.parameters[key]) if key in model.parameters else None
            if shown.parameters.get(key) != want_value:
                made.append(f"{key} {shown.parameters.get(key) or 'unset'} -> {want_value or 'unset'}")
        changes += made or ["template differs"]
    return changes


def _create_request(model: DesiredModel, digest: str | None) -> dict[str, Any]:
    source: dict[str, Any] = {"files": {model.gguf: digest}} if model.gguf else {"from": model.pull}
    template = {"template": model.template} if model.template else {}
    marker = deploy_marker(model, digest)
    return {"model": model.name, **source, "parameters": dict(model.parameters), **template, "license": marker}


class _Phases:
    """Steps collected by phase, so the plan runs every upload before any create, and so on."""

    def __init__(self) -> None:
        self.transfers: list[UploadBlob | PullModel] = []
        self.creates: list[CreateModel] = []
        self.unloads: list[UnloadModel] = []
        self.deletes: list[DeleteModel] = []
        self.preloads: list[PreloadModel] = []
        self.unchanged: list[str] = []
        self.fetched: set[tuple[str, str]] = set()  # (endpoint, digest or tag): one transfer each

    def fetch(self, step: UploadBlob | PullModel) -> None:
        key = (step.endpoint, step.digest if isinstance(step, UploadBlob) else step.tag)
        if key not in self.fetched:
            self.fetched.add(key)
            self.transfers.append(step)

    def ordered(self) -> list[OllamaStep]:
        return [*self.transfers, *self.creates, *self.unloads, *self.deletes, *self.preloads]


def _model_steps(e: EndpointDesired, f: EndpointFacts, facts: OllamaFacts, m: DesiredModel, out: _Phases) -> None:
    where = {"endpoint": e.endpoint, "url": e.url}
    digest = blob_digest(facts.sources[m.gguf]) if m.gguf else None
    shown = f.shown.get(m.name)
    changes = ["missing"] if shown is None else _changes(m, shown, digest)
    if changes:
        # Only a model that must be (re)made needs its blob or tag; one up to date holds it already.
        if m.gguf and digest and not f.blobs.get(digest):
            size = facts.sources[m.gguf].size_bytes
            out.fetch(UploadBlob(**where, file=m.gguf, local_path=str(m.local_path), digest=digest, size_bytes=size,
                                 reason="not on the node"))  # fmt: skip
        elif m.gguf and digest and (e.endpoint, digest) not in out.fetched:
            out.fetched.add((e.endpoint, digest))
            out.unchanged.append(f"blob {m.gguf} (sha256 {_short(digest)}) already on {e.endpoint}")
        if m.pull and not f.pulled.get(m.pull):
            out.fetch(PullModel(**where, tag=m.pull, reason="not on the node"))
        request = _create_request(m, digest)
        out.creates.append(
            CreateModel(**where, model=m.name, request=request, described=m.described(), reason="; ".join(changes))
        )
    else:
        out.unchanged.append(f"model {m.name} on {e.endpoint} up to date, {m.described()}")
    if changes:
        why = "just created" if shown is None else "re-created: loads with the new parameters"
        out.preloads.append(PreloadModel(**where, model=m.name, keep_alive=m.keep_alive, reason=why))
    elif m.name not in f.running:
        out.preloads.append(PreloadModel(**where, model=m.name, keep_alive=m.keep_alive, reason="not loaded"))
    elif _forever(m.keep_alive) and not _forever_until(f.running[m.name].expires_at):
        # Loaded by someone's request with Ollama's 5 minute default: it would be gone soon.
        why = f"loaded, but only until {f.running[m.name].expires_at}"
        out.preloads.append(PreloadModel(**where, model=m.name, keep_alive=m.keep_alive, reason=why))
    else:
        out.unchanged.append(f"model {m.name} on {e.endpoint} loaded")


def plan(desired: OllamaDesired, facts: OllamaFacts, *, prune: bool = False) -> OllamaPlan:
    """What must change on the node's Ollama endpoints, in order (see the module docstring).

    Args:
        prune: also delete the models an endpoint has that its inventory entry does not name
            (never one it names); without it they are listed as left alone.
    """
    out = _Phases()
    for e in desired.endpoints:
        f = facts.endpoints[e.endpoint]
        for m in e.models:
            _model_steps(e, f, facts, m, out)
        where = {"endpoint": e.endpoint, "url": e.url}
        for name in f.running:
            if name not in e.listed:
                out.unloads.append(UnloadModel(**where, model=name, reason="loaded but not in the inventory"))
        for name in f.present:
            if name in e.listed:
                continue
            if prune:
                out.deletes.append(DeleteModel(**where, model=name, reason="not in the inventory"))
            else:
                out.unchanged.append(f"model {name} on {e.endpoint} is not in the inventory: kept (prune deletes it)")
    return OllamaPlan(node=desired.node, steps=out.ordered(), unchanged=out.unchanged)
