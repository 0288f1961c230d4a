"""llama.cpp server containers: the spec an inventory endpoint asks for, the state a node has (a fact), and the moves.

A managed container carries labels that say what it was made from: the whole spec as JSON,
its digest, and the SHA-256 of the model file it serves. A re-run compares those with what
the inventory and the sources ask for now, so it knows what changed (and says which field)
without guessing from the engine's own view of the container.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import json
import logging
from collections.abc import Mapping
from datetime import datetime
from urllib.parse import urlsplit

import docker.errors
import docker.types
from docker.models.containers import Container
from pydantic import BaseModel, ConfigDict, Field

from homelab.docker_ops.connect import Engine
from homelab.docker_ops.volumes import VOLUME_MOUNT
from homelab.errors import DockerOpError
from homelab.inventory import Container as ContainerSection
from homelab.inventory import Endpoint, Node
from homelab.inventory.container import PLANNED_FLAGS, RestartPolicy, flag_values

__all__ = [
    "CONTAINER_PORT",
    "DEFAULT_CONTAINER_SETTINGS",
    "LABEL_CONFIG",
    "LABEL_CONFIG_SHA",
    "LABEL_ENDPOINT",
    "LABEL_MANAGED",
    "LABEL_MODEL_SHA",
    "ContainerSettings",
    "ContainerSpec",
    "ContainerState",
    "container_name",
    "container_spec",
    "container_state",
    "create_container",
    "desired_containers",
    "image_id",
    "log_tail",
    "managed_containers",
    "previous_container_name",
    "remove_container",
    "rename_container",
    "restart_policy_for",
    "start_container",
    "stop_container",
    "update_restart_policy",
]

log = logging.getLogger(__name__)

# llama-server listens here inside the container unless the cluster file's `container_port`
# says otherwise; the endpoint URL's port is the host side.
CONTAINER_PORT = 8080
LABEL_MANAGED = "homelab.managed"
LABEL_NODE = "homelab.node"
LABEL_ENDPOINT = "homelab.endpoint"
LABEL_CONFIG = "homelab.config"
LABEL_CONFIG_SHA = "homelab.config.sha256"
LABEL_MODEL_SHA = "homelab.model.sha256"
_PREVIOUS_SUFFIX = "-previous"


class ContainerSettings(BaseModel):
    """How every managed container is made, beyond what the inventory says per endpoint."""

    model_config = ConfigDict(frozen=True)

    name_prefix: str = "homelab-"
    restart_policy: RestartPolicy | None = Field(
        None, description="for every container whose section sets none; unset: per node (`restart_policy_for`)"
    )
    extra_args: tuple[str, ...] = Field(
        (), description="appended to every llama-server command line homelab writes (not to a section's `command`)"
    )
    stop_timeout_s: int = Field(10, ge=0, description="seconds between SIGTERM and SIGKILL on stop")


DEFAULT_CONTAINER_SETTINGS = ContainerSettings()


class ContainerSpec(BaseModel):
    """Everything a llama.cpp server container is made from; equal specs make equal containers.

    Fields added after labels were first written have defaults that mean "as before", so a
    label without them compares equal (see `homelab.docker_ops.plan`).
    """

    model_config = ConfigDict(frozen=True)

    name: str
    endpoint: str
    start_order: int
    image: str
    volume: str
    model_file: str
    ctx_size: int
    gpu_layers: int | None
    parallel: int
    alias: str | None
    host_ip: str
    host_port: int
    gpus: bool = Field(description="asks for the node's GPUs")
    restart_policy: RestartPolicy
    extra_args: tuple[str, ...] = ()
    container_port: int = CONTAINER_PORT
    env: dict[str, str] = Field(default_factory=dict)
    args: tuple[str, ...] = Field((), description="the section's extra llama-server options")
    command: tuple[str, ...] | None = Field(None, description="replaces homelab's arguments; (): the image's CMD")
    entrypoint: tuple[str, ...] | None = None
    gpu_ids: tuple[int, ...] = Field((), description="CUDA indexes the container gets; (): all (when `gpus`)")

    def cmd(self) -> list[str] | None:
        """The container's command: llama-server's arguments (the image's entrypoint is llama-server),
        the section's own `command`, or None for the image's own CMD."""
        if self.command is not None:
            return list(self.command) or None
        words = ["-m", f"{VOLUME_MOUNT}/{self.model_file}", "--host", "0.0.0.0", "--port", str(self.container_port)]
        for field, value in (("ctx_size", self.ctx_size), ("parallel", self.parallel), ("gpu_layers", self.gpu_layers)):
            # A value in `args` is the same number (the schema checks), given once: llama-server
            # takes the last of two, and a reader of `docker inspect` should not have to know that.
            if value is not None and not flag_values(list(self.args), PLANNED_FLAGS[field]):
                words += [PLANNED_FLAGS[field][0], str(value)]
        if self.alias:
            words += ["--alias", self.alias]
        return [*words, *self.extra_args, *self.args]

    def device_requests(self) -> list[docker.types.DeviceRequest] | None:
        """What `docker run --gpus all` (or `--gpus '"device=0,2"'`) asks for; None on a node without GPUs."""
        if not self.gpus:
            return None
        if self.gpu_ids:
            return [docker.types.DeviceRequest(device_ids=[str(i) for i in self.gpu_ids], capabilities=[["gpu"]])]
        return [docker.types.DeviceRequest(count=-1, capabilities=[["gpu"]])]

    def config(self) -> dict[str, object]:
        """What the labels record and a re-run compares (name and order are not part of it)."""
        return self.model_dump(mode="json", exclude={"name", "start_order"})

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.config(), sort_keys=True).encode()).hexdigest()


class ContainerState(BaseModel):
    """Fact: one container as the engine sees it, with what its labels recorded."""

    model_config = ConfigDict(frozen=True)

    name: str
    id: str
    status: str = Field(description="created, running, exited, ...")
    image_id: str
    managed: bool
    config: dict[str, object] | None = None
    config_sha256: str | None = None
    model_sha256: str | None = None
    started_at: datetime | None = None
    exit_code: int = 0
    restart_count: int = Field(0, description="restarts by the engine's restart policy since creation")
    restart_policy: str | None = Field(
        None, description="the engine's own (HostConfig; `update` changes it after the label): None: unknown"
    )

    @property
    def running(self) -> bool:
        return self.status == "running"


def container_name(endpoint: str, settings: ContainerSettings = DEFAULT_CONTAINER_SETTINGS) -> str:
    return f"{settings.name_prefix}{endpoint}"


def previous_container_name(name: str) -> str:
    """Where the old container waits, stopped, while its replacement proves itself."""
    return f"{name}{_PREVIOUS_SUFFIX}"


def _bind_ip(url: str) -> str:
    """Publish on the URL's address when it is an IP (127.0.0.1 stays private); a name means every interface."""
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return "127.0.0.1"
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return "0.0.0.0"


def restart_policy_for(node: Node, box: ContainerSection, settings: ContainerSettings) -> RestartPolicy:
    """The section's restart policy, else the settings' override, else "no" on a GPU node, "unless-stopped" elsewhere.

    The engine starts every `unless-stopped` or `always` container at once when it comes up
    (after a reboot or a daemon restart). On a GPU node that is several CUDA initialisations
    racing for VRAM, which has deadlocked drivers: there homelab's recovery starts the
    containers itself, one at a time in `start_order` behind the health gate.
    """
    if box.restart_policy is not None:
        return box.restart_policy
    if settings.restart_policy is not None:
        return settings.restart_policy
    return "no" if node.gpus else "unless-stopped"


def container_spec(
    node: Node, endpoint: Endpoint, settings: ContainerSettings, planned_gpu_layers: int | None = None
) -> ContainerSpec:
    """The container an endpoint asks for.

    Args:
        node: the endpoint's node (GPUs there mean the container asks for them).
        endpoint: a `llamacpp` endpoint with a `container` section.
        settings: name prefix, restart policy, extra arguments.
        planned_gpu_layers: GPU layers from a VRAM plan, used when the inventory leaves
            `gpu_layers` unset. With neither, a GPU node gets llama-server's default and a
            CPU node gets 0.
    """
    box = endpoint.container
    if box is None:
        raise ValueError(f"endpoint {endpoint.name} has no container section")
    layers = box.gpu_layers if box.gpu_layers is not None else planned_gpu_layers
    if layers is None and not node.gpus:
        layers = 0
    return ContainerSpec(
        name=container_name(endpoint.name, settings),
        endpoint=endpoint.name,
        start_order=box.start_order,
        image=box.image,
        volume=box.volume,
        model_file=box.model_file,
        ctx_size=box.ctx_size,
        gpu_layers=layers,
        parallel=box.parallel,
        alias=endpoint.models[0].name if endpoint.models else None,
        host_ip=_bind_ip(endpoint.url),
        host_port=endpoint.port,
        gpus=bool(node.gpus),
        restart_policy=restart_policy_for(node, box, settings),
        # A section's own command is the whole command line: homelab adds nothing to it.
        extra_args=settings.extra_args if box.command is None else (),
        container_port=box.container_port,
        env=box.env,
        args=tuple(box.args),
        command=None if box.command is None else tuple(box.command),
        entrypoint=None if box.entrypoint is None else tuple(box.entrypoint),
        gpu_ids=tuple(box.gpus or ()),
    )


def desired_containers(
    node: Node, settings: ContainerSettings, gpu_layers: Mapping[str, int] | None = None
) -> list[ContainerSpec]:
    """Every container of the node in start order (ties keep file order).

    Args:
        gpu_layers: per endpoint name, layers from a VRAM plan (the seam for `homelab.vram`).
    """
    specs = [container_spec(node, e, settings, (gpu_layers or {}).get(e.name)) for e in node.endpoints if e.container]
    return sorted(specs, key=lambda s: s.start_order)


# The label homelab writes is a few hundred bytes of flat JSON. Anything else found on a
# container of that name (made by hand or by another tool) is "no recorded config", so the
# plan replaces the container rather than crashing on the label.
_CONFIG_LABEL_MAX_CHARS = 64 << 10


def _recorded_config(label: str | None) -> dict[str, object] | None:
    if not label or len(label) > _CONFIG_LABEL_MAX_CHARS:
        return None
    try:
        value = json.loads(label)
    except (ValueError, RecursionError):  # not JSON, or nested past the parser's stack
        return None
    return value if isinstance(value, dict) else None


def _state(container: Container) -> ContainerState:
    attrs = container.attrs
    labels = attrs.get("Config", {}).get("Labels") or {}
    started = attrs.get("State", {}).get("StartedAt") or ""
    return ContainerState(
        name=container.name,
        id=container.id,
        status=attrs.get("State", {}).get("Status", "unknown"),
        image_id=attrs.get("Image", ""),
        managed=LABEL_MANAGED in labels,
        config=_recorded_config(labels.get(LABEL_CONFIG)),
        config_sha256=labels.get(LABEL_CONFIG_SHA),
        model_sha256=labels.get(LABEL_MODEL_SHA),
        started_at=None if started.startswith("0001-") or not started else _parse_time(started),
        exit_code=attrs.get("State", {}).get("ExitCode", 0),
        restart_count=attrs.get("RestartCount", 0),
        # The engine reports "" for a container created without a policy: that is "no".
        restart_policy=(attrs.get("HostConfig", {}).get("RestartPolicy") or {}).get("Name") or "no",
    )


def _parse_time(value: str) -> datetime:
    """Docker's times are UTC with nanoseconds (`...T04:20:11.123456789Z`); Python reads microseconds."""
    head, _, fraction = value.rstrip("Z").partition(".")
    return datetime.fromisoformat(f"{head}.{(fraction + '000000')[:6]}+00:00")


def container_state(engine: Engine, name: str) -> ContainerState | None:
    """Fact: the container called `name`, or None when the node has none."""
    with engine.errors(f"inspecting container {name}"):
        try:
            return _state(engine.client.containers.get(name))
        except docker.errors.NotFound:
            return None


def managed_containers(engine: Engine) -> list[str]:
    """Fact: names of every container homelab manages on the node."""
    with engine.errors("listing managed containers"):
        return sorted(c.name for c in engine.client.containers.list(all=True, filters={"label": LABEL_MANAGED}))


def image_id(engine: Engine, image: str) -> str | None:
    """Fact: the id the node's copy of `image` has now (None when it has none)."""
    with engine.errors(f"looking up image {image}"):
        try:
            return str(engine.client.images.get(image).id)
        except docker.errors.ImageNotFound:
            return None


def create_container(engine: Engine, spec: ContainerSpec, model_sha256: str, node: str) -> ContainerState:
    """Operation: a created (not started) container for `spec`, labelled with its config and model hash."""
    labels = {
        LABEL_MANAGED: "rollout",
        LABEL_NODE: node,
        LABEL_ENDPOINT: spec.endpoint,
        LABEL_CONFIG: json.dumps(spec.config(), sort_keys=True),
        LABEL_CONFIG_SHA: spec.digest(),
        LABEL_MODEL_SHA: model_sha256,
    }
    with engine.errors(f"creating container {spec.name} ({spec.image})"):
        container = engine.client.containers.create(
            spec.image,
            spec.cmd(),
            name=spec.name,
            labels=labels,
            entrypoint=None if spec.entrypoint is None else list(spec.entrypoint),
            environment=spec.env or None,
            # A named volume, never a bind mount: see homelab.docker_ops.volumes.
            volumes={spec.volume: {"bind": VOLUME_MOUNT, "mode": "ro"}},
            ports={f"{spec.container_port}/tcp": (spec.host_ip, spec.host_port)},
            device_requests=spec.device_requests(),
            restart_policy={"Name": spec.restart_policy},
        )
        return _state(container)


def _get(engine: Engine, name: str) -> Container:
    try:
        return engine.client.containers.get(name)
    except docker.errors.NotFound as exc:
        raise DockerOpError(f"node {engine.node}: container {name} does not exist") from exc


def start_container(engine: Engine, name: str) -> None:
    with engine.errors(f"starting container {name}"):
        _get(engine, name).start()


def stop_container(engine: Engine, name: str, timeout_s: int) -> None:
    with engine.errors(f"stopping container {name}"):
        _get(engine, name).stop(timeout=timeout_s)


def update_restart_policy(engine: Engine, name: str, policy: RestartPolicy) -> None:
    """Operation: the engine's restart policy of `name`, changed in place (a running server keeps running)."""
    with engine.errors(f"updating the restart policy of container {name}"):
        _get(engine, name).update(restart_policy={"Name": policy})


def rename_container(engine: Engine, name: str, new_name: str) -> None:
    with engine.errors(f"renaming container {name} to {new_name}"):
        _get(engine, name).rename(new_name)


def remove_container(engine: Engine, name: str) -> None:
    """Operation: no container called `name` (absent already is fine)."""
    with engine.errors(f"removing container {name}"), contextlib.suppress(docker.errors.NotFound):
        engine.client.containers.get(name).remove(force=True)


# The engine keeps a long line as 16 KiB pieces, each a "line" to `tail`: a server that prints
# megabytes without a newline would fill a failure report with 20 pieces of it.
_LOG_LINE_MAX_CHARS = 500


def log_tail(engine: Engine, name: str, lines: int = 20) -> list[str]:
    """The container's last log lines (stdout and stderr), each cut to a readable length, for failure reports."""
    with engine.errors(f"reading logs of container {name}"):
        raw = _get(engine, name).logs(tail=lines, stdout=True, stderr=True)
    return [line[:_LOG_LINE_MAX_CHARS] for line in raw.decode(errors="replace").splitlines()[-lines:]]
