"""The rollout plan: pure `plan(desired, facts)`, which says what must change on a node and why.

Nothing here talks to an engine. The facts (which volumes exist, what the volume files and
the sources hash to, which containers run with which labels) are gathered first; the plan
compares them with the desired state and yields steps, each with its reason, plus the
reasons nothing needed doing elsewhere ("volume models holds qwen.gguf, sha256 ok"). An
empty plan is a finished rollout: running it again changes nothing.
"""

from __future__ import annotations

import hashlib
from typing import Annotated, Literal

from pydantic import Field
from pydantic_core import to_jsonable_python

from homelab.docker_ops.containers import ContainerSpec, ContainerState, previous_container_name
from homelab.docker_ops.sources import ModelSource, SourceFile
from homelab.docker_ops.volumes import VolumeFile
from homelab.frozen import Frozen

__all__ = [
    "ContainerStep",
    "CopyModel",
    "CreateContainer",
    "DesiredState",
    "EnsureVolume",
    "Facts",
    "Plan",
    "ReplaceContainer",
    "StartContainer",
    "Step",
    "UpdateRestartPolicy",
    "plan",
]


class DesiredState(Frozen):
    """What the node should run: containers in start order, and where their model files come from."""

    node: str
    containers: list[ContainerSpec]
    sources: dict[str, ModelSource] = Field(description="model file name -> where to copy it from")
    parts: dict[str, list[str]] = Field(
        default_factory=dict, description="a split GGUF's first part -> its other parts, copied and moved in with it"
    )

    def volumes(self) -> list[str]:
        return list(dict.fromkeys(spec.volume for spec in self.containers))

    def models(self) -> list[tuple[str, str]]:
        """(volume, model file) pairs, a split's parts after its first, in start order, each once."""
        files = ((s.volume, f) for s in self.containers for f in [s.model_file, *self.parts.get(s.model_file, [])])
        return list(dict.fromkeys(files))

    def identity(self, model_file: str, facts: Facts) -> str:
        """The SHA-256 a container's label records for its model: a split's is that of its parts' digests."""
        files = [model_file, *self.parts.get(model_file, [])]
        if len(files) == 1:
            return facts.sources[model_file].sha256
        return hashlib.sha256(",".join(facts.sources[f].sha256 for f in files).encode()).hexdigest()


class Facts(Frozen):
    """What the node and the sources hold now (gathered by `rollout.gather_facts`)."""

    volumes: list[str] = Field(description="those of the desired volumes that exist")
    files: dict[str, dict[str, VolumeFile]] = Field(description="volume -> model file -> what it holds")
    sources: dict[str, SourceFile]
    containers: dict[str, ContainerState] = Field(description="desired container name -> its state, if it exists")
    images: dict[str, str | None] = Field(description="image reference -> id on the node (None: not there)")
    managed: list[str] = Field(default_factory=list, description="every managed container on the node")


class EnsureVolume(Frozen):
    """Create a named volume (idempotent: safe to retry)."""

    kind: Literal["ensure_volume"] = "ensure_volume"
    volume: str
    reason: str

    def summary(self) -> str:
        return f"create volume {self.volume}: {self.reason}"


class CopyModel(Frozen):
    """Copy a model file into a volume as a verified temporary file (idempotent: safe to retry)."""

    kind: Literal["copy_model"] = "copy_model"
    volume: str
    source: ModelSource
    expected: SourceFile
    reason: str

    def summary(self) -> str:
        return f"copy {self.source.model_file} into volume {self.volume}: {self.reason}"


class CreateContainer(Frozen):
    """Create and start a container that does not exist yet, then wait for its health gate."""

    kind: Literal["create_container"] = "create_container"
    spec: ContainerSpec
    model_sha256: str
    activate_model: bool = Field(description="move the verified copy over the model file first")
    activate_parts: list[str] = Field(default_factory=list, description="a split's other parts, moved in too")
    reason: str

    def summary(self) -> str:
        return f"create {self.spec.name}: {self.reason}"


class ReplaceContainer(Frozen):
    """Stop and set aside the old container, start a new one, keep it only if it passes the gate."""

    kind: Literal["replace_container"] = "replace_container"
    spec: ContainerSpec
    model_sha256: str
    activate_model: bool
    activate_parts: list[str] = Field(default_factory=list, description="a split's other parts, moved in too")
    reason: str

    def summary(self) -> str:
        return f"replace {self.spec.name}: {self.reason}"


class StartContainer(Frozen):
    """Start an up-to-date container that is not running, then wait for its gate."""

    kind: Literal["start_container"] = "start_container"
    spec: ContainerSpec
    reason: str

    def summary(self) -> str:
        return f"start {self.spec.name}: {self.reason}"


class UpdateRestartPolicy(Frozen):
    """Change an up-to-date container's restart policy in place (a running server is not restarted),
    start it if it is stopped, then wait for its gate."""

    kind: Literal["update_restart_policy"] = "update_restart_policy"
    spec: ContainerSpec
    reason: str

    def summary(self) -> str:
        return f"update restart policy of {self.spec.name}: {self.reason}"


ContainerStep = CreateContainer | ReplaceContainer | StartContainer | UpdateRestartPolicy
Step = Annotated[EnsureVolume | CopyModel | ContainerStep, Field(discriminator="kind")]


class Plan(Frozen):
    """The steps, in the order they must run, and why everything else is left alone."""

    node: str
    steps: list[Step]
    unchanged: list[str] = Field(default_factory=list, description="reasons for what needs nothing")

    @property
    def empty(self) -> bool:
        return not self.steps


def _short(digest: str | None) -> str:
    return digest.removeprefix("sha256:")[:12] if digest else "none"


def _volume_steps(desired: DesiredState, facts: Facts) -> tuple[list[Step], list[str]]:
    steps: list[Step] = []
    unchanged: list[str] = []
    for volume in desired.volumes():
        if volume in facts.volumes:
            unchanged.append(f"volume {volume} exists")
        else:
            steps.append(EnsureVolume(volume=volume, reason="missing"))
    for volume, model_file in desired.models():
        source = facts.sources[model_file]
        held = facts.files.get(volume, {}).get(model_file)
        if held is not None and held.sha256 == source.sha256:
            unchanged.append(f"volume {volume} holds {model_file}, sha256 ok")
            continue
        reason = (
            "not in the volume"
            if held is None
            else f"sha256 differs (volume {_short(held.sha256)}, source {_short(source.sha256)})"
        )
        steps.append(CopyModel(volume=volume, source=desired.sources[model_file], expected=source, reason=reason))
    return steps, unchanged


# Changed in place by `UpdateRestartPolicy`, judged by the engine's own value: the label keeps
# what the container was created with.
_IN_PLACE = {"restart_policy"}


def _recorded(config: dict[str, object], key: str) -> object:
    """The label's value of `key`; a label written before the field existed recorded its default."""
    if key in config:
        return config[key]
    field = ContainerSpec.model_fields[key]
    return None if field.is_required() else to_jsonable_python(field.get_default(call_default_factory=True))


def _config_changes(spec: ContainerSpec, state: ContainerState) -> list[str]:
    """Which fields of the recorded config differ, as `field old -> new`."""
    if state.config is None:
        return ["not made by homelab (no recorded config)"]
    want = spec.config()
    return [
        f"{key} {_recorded(state.config, key)!r} -> {want[key]!r}"
        for key in want
        if key not in _IN_PLACE and _recorded(state.config, key) != want[key]
    ]


def _container_step(
    spec: ContainerSpec, facts: Facts, model_sha: str, activate: bool, parts: list[str]
) -> ContainerStep | str:
    """The step one container needs, or the reason it needs none."""
    state = facts.containers.get(spec.name)
    moves = {"model_sha256": model_sha, "activate_model": activate, "activate_parts": parts}
    if state is None:
        return CreateContainer(spec=spec, **moves, reason="missing")
    changes = _config_changes(spec, state)
    if state.model_sha256 != model_sha:
        changes.append(f"model {spec.model_file} {_short(state.model_sha256)} -> {_short(model_sha)}")
    elif activate or parts:
        changes.append(f"volume {spec.volume} holds another {spec.model_file} than the one it was started with")
    wanted_image = facts.images.get(spec.image)
    if wanted_image is not None and state.image_id != wanted_image:
        changes.append(f"image {spec.image} updated ({_short(state.image_id)} -> {_short(wanted_image)})")
    if changes:
        return ReplaceContainer(spec=spec, **moves, reason="; ".join(changes))
    if state.restart_policy not in (None, spec.restart_policy):
        stopped = "" if state.running else f"; then start it ({state.status})"
        return UpdateRestartPolicy(spec=spec, reason=f"{state.restart_policy} -> {spec.restart_policy}{stopped}")
    if not state.running:
        return StartContainer(spec=spec, reason=f"up to date but {state.status}")
    return f"container {spec.name} up to date"


def plan(desired: DesiredState, facts: Facts) -> Plan:
    """What must change on the node, in order: volumes, copies, then containers in start order.

    A copied model is moved over its final name by the first container step that uses it,
    right before that container starts, so the old file stays in place until then and comes
    back if the new container fails its gate.
    """
    steps, unchanged = _volume_steps(desired, facts)
    copied = {(s.volume, s.source.model_file) for s in steps if isinstance(s, CopyModel)}
    for spec in desired.containers:
        key = (spec.volume, spec.model_file)
        parts = [p for p in desired.parts.get(spec.model_file, []) if (spec.volume, p) in copied]
        step = _container_step(spec, facts, desired.identity(spec.model_file, facts), key in copied, parts)
        if isinstance(step, str):
            unchanged.append(step)
            continue
        copied -= {key, *((spec.volume, p) for p in parts)}  # the first user activates; later ones find them
        steps.append(step)
    wanted = {spec.name for spec in desired.containers}
    wanted |= {previous_container_name(name) for name in wanted}
    for name in facts.managed:
        if name not in wanted:
            unchanged.append(f"container {name} is managed but not in the inventory: left alone")
    return Plan(node=desired.node, steps=steps, unchanged=unchanged)
