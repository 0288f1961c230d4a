"""Short-lived helper containers: a busybox that mounts a volume so files in it can be written and checked.

A named volume has no path the client can reach on a remote node; a helper container that
mounts it is the portable way in. The helper sleeps while commands are exec'd in it and is
removed at the end. Should the rollout die first, it removes itself when its sleep runs out
(`auto_remove`), so a killed run leaves nothing behind for long.
"""

from __future__ import annotations

import contextlib
import logging
import shlex
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

import docker.errors
import docker.types
from docker.models.containers import Container
from pydantic import BaseModel, ConfigDict, Field

from homelab.docker_ops.connect import Engine
from homelab.errors import DockerOpError

__all__ = [
    "DEFAULT_HELPER_SETTINGS",
    "HELPER_LABEL",
    "HelperSettings",
    "Mount",
    "ensure_image",
    "helper_container",
    "run_in",
]

log = logging.getLogger(__name__)

HELPER_LABEL = "homelab.helper"


class HelperSettings(BaseModel):
    """Which image the helpers run and how long an abandoned one may live."""

    model_config = ConfigDict(frozen=True)

    image: str = Field("busybox:stable", min_length=1, description="needs sh, sha256sum, cp, mv, ln, stat")
    lifetime_s: int = Field(6 * 3600, gt=0, description="seconds an abandoned helper lives before removing itself")


DEFAULT_HELPER_SETTINGS = HelperSettings()


class Mount(BaseModel):
    """A volume (by name) or a node path mounted into a helper."""

    model_config = ConfigDict(frozen=True)

    source: str = Field(description="volume name, or an absolute path on the node")
    target: str
    mode: Literal["ro", "rw"] = "rw"


def _mount_spec(mount: Mount) -> docker.types.Mount:
    """The API's structured mount, never a `source:target:mode` string a `:` in a path could bend.

    A bind of a missing node folder is refused by the engine rather than created as root.
    """
    kind = "bind" if mount.source.startswith("/") else "volume"
    return docker.types.Mount(mount.target, mount.source, type=kind, read_only=mount.mode == "ro")


def ensure_image(engine: Engine, image: str) -> None:
    """Pull `image` only when the node lacks it (an offline node with the image never pulls)."""
    with engine.errors(f"looking up image {image}"):
        try:
            engine.client.images.get(image)
            return
        except docker.errors.ImageNotFound:
            pass
    log.info("node %s: pulling %s", engine.node, image)
    with engine.errors(f"pulling image {image}"):
        engine.client.images.pull(image)


@contextmanager
def helper_container(
    engine: Engine, mounts: list[Mount], settings: HelperSettings, purpose: str
) -> Iterator[Container]:
    """A running helper with `mounts`; force-removed on exit, whatever happened inside.

    Args:
        engine: the node's engine.
        mounts: volumes and node paths to mount (volumes must exist: Docker would create them).
        settings: image and lifetime.
        purpose: a word for its name and the messages ("copy", "hash").
    """
    ensure_image(engine, settings.image)
    name = f"homelab-helper-{purpose}-{uuid.uuid4().hex[:8]}"
    with engine.errors(f"starting helper container {name} ({settings.image})"):
        container = engine.client.containers.run(
            settings.image,
            ["sleep", str(settings.lifetime_s)],
            name=name,
            detach=True,
            auto_remove=True,
            network_mode="none",
            labels={HELPER_LABEL: purpose},
            mounts=[_mount_spec(m) for m in mounts],
        )
    try:
        yield container
    finally:
        with engine.errors(f"removing helper container {name}"), contextlib.suppress(docker.errors.NotFound):
            container.remove(force=True)


def run_in(engine: Engine, container: Container, argv: list[str], doing: str) -> str:
    """Run `argv` in the helper and return its output; a non-zero exit is a `DockerOpError`.

    Raises:
        DockerOpError: the command failed; the message carries its output (say, "No space left").
    """
    with engine.errors(doing):
        result = container.exec_run(argv, demux=False)
    # Not stripped: a file name may end in a space, and callers read the output line by line.
    output = (result.output or b"").decode(errors="replace")
    if result.exit_code != 0:
        raise DockerOpError(
            f"node {engine.node}: {doing}: `{shlex.join(argv)}` exited {result.exit_code}: {output.strip()[-500:]}"
        )
    return output
