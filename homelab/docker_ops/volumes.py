"""Models in named volumes: the volume, what it holds (a fact), and a verified, atomic copy-in (an operation).

Why named volumes and never bind mounts: on Docker Desktop for Windows a bind-mounted host
folder is served to the Linux VM over a file-sharing protocol, and llama.cpp loading a
multi-GB GGUF through it stalls GPU loading (the server hangs at "loading model"); on Linux
and macOS bind mounts of big files from slow or network disks crawl too. A named volume lives
on the engine's own disk, inside the VM on Windows, and loads at disk speed.

A copy never touches the file at the final name until the new one is proven: it is written
as `.NAME.incoming`, its SHA-256 computed inside the helper container and compared with the
source's, and only then moved over `NAME` by `activate_model` (a rename within the volume,
so a reader sees the old file or the new one, never half of either). The old file is kept as
`.NAME.previous` (a hard link) until the container using the new one is healthy.
"""

from __future__ import annotations

import logging
import posixpath
import shlex
import tarfile
import time
from collections.abc import Iterator

from docker.models.containers import Container
from pydantic import BaseModel, ConfigDict

from homelab.docker_ops.connect import Engine
from homelab.docker_ops.helper import HelperSettings, Mount, helper_container, run_in
from homelab.docker_ops.sources import READ_CHUNK_BYTES, CopyProgress, ModelSource, ProgressCallback, SourceFile
from homelab.errors import DockerOpError

__all__ = [
    "VOLUME_MOUNT",
    "VolumeFile",
    "activate_model",
    "copy_into_volume",
    "ensure_volume",
    "forget_previous",
    "incoming_name",
    "node_source_file",
    "previous_name",
    "restore_model",
    "volume_exists",
    "volume_files",
]

log = logging.getLogger(__name__)

VOLUME_MOUNT = "/models"
_SOURCE_MOUNT = "/src"
_POLL_S = 0.5
_NO_SPACE = "no space left on device"


class VolumeFile(BaseModel):
    """A model file found in a volume, identified by its content."""

    model_config = ConfigDict(frozen=True)

    volume: str
    model_file: str
    sha256: str
    size_bytes: int


def _plain(name: str) -> str:
    """`name` when it is one plain file name, else a `DockerOpError`.

    The cluster file checks model file names too; this is the second wall, for callers that
    bypass it: a `/` or `..` would reach outside the folder, and a newline or other control
    character would split the helper's one-name-a-line answers.
    """
    if not name or name in {".", ".."} or "/" in name or any(ord(c) < 0x20 or c == "\x7f" for c in name):
        raise DockerOpError(f"{name!r} is not a plain file name (no '/', control characters, '.' or '..')")
    return name


def incoming_name(model_file: str) -> str:
    """Where a copy is written until it is verified (hidden, never the final name)."""
    return f".{_plain(model_file)}.incoming"


def previous_name(model_file: str) -> str:
    """Where the replaced file is kept until its replacement has proven itself."""
    return f".{_plain(model_file)}.previous"


def _in(folder: str, name: str) -> str:
    return posixpath.join(folder, _plain(name))


def _in_volume(name: str) -> str:
    return _in(VOLUME_MOUNT, name)


def volume_exists(engine: Engine, volume: str) -> bool:
    """Fact: does the node have this named volume?"""
    with engine.errors(f"listing volume {volume}"):
        return any(v.name == volume for v in engine.client.volumes.list(filters={"name": volume}))


def ensure_volume(engine: Engine, volume: str, driver_opts: dict[str, str] | None = None) -> bool:
    """Operation: the named volume exists afterwards; returns True when it had to be created."""
    if volume_exists(engine, volume):
        return False
    with engine.errors(f"creating volume {volume}"):
        engine.client.volumes.create(name=volume, driver="local", driver_opts=driver_opts or {})
    log.info("node %s: created volume %s", engine.node, volume)
    return True


# Helper scripts are constants; every value (a file name from the cluster file) reaches them
# as a positional argument ("$1"), never spliced into the script, so no name is ever run.
# Prints the arguments that are regular files, one a line.
_EXISTING = 'for f in "$@"; do if [ -f "$f" ]; then echo "$f"; fi; done'
# The size of "$1" so far, or 0 before the copy has created it.
_SIZE_OR_ZERO = 'stat -c %s "$1" 2>/dev/null || echo 0'


def _hash_files(engine: Engine, box: Container, volume: str, paths: list[str], doing: str) -> dict[str, VolumeFile]:
    """Size and SHA-256 of each path that is a regular file, computed inside the helper.

    `sha256sum` is exec'd by the container's PATH, never from a busybox shell: busybox's sh
    runs its own applet for a name it knows, which would bypass a faster `sha256sum` that the
    helper image puts first on its PATH. The sizes are taken after the hashes.
    """
    existing = run_in(engine, box, ["sh", "-c", _EXISTING, "sh", *paths], doing).splitlines()
    if not existing:
        return {}
    digests = {}
    for line in run_in(engine, box, ["sha256sum", *existing], doing).splitlines():
        digest, path = line.split(maxsplit=1)
        digests[path.lstrip("*")] = digest  # `*path`: binary mode, as OpenSSL's -r prints it
    found: dict[str, VolumeFile] = {}
    for line in run_in(engine, box, ["stat", "-c", "%s %n", *existing], doing).splitlines():
        size, path = line.split(maxsplit=1)
        name = posixpath.basename(path)
        found[name] = VolumeFile(volume=volume, model_file=name, sha256=digests[path], size_bytes=int(size))
    return found


def volume_files(engine: Engine, volume: str, model_files: list[str], helper: HelperSettings) -> dict[str, VolumeFile]:
    """Fact: size and SHA-256 of each named file present in the volume (absent ones are left out).

    The volume is mounted read-only: looking never changes it. Hashing reads every byte,
    which for big models takes a while; that is the price of knowing rather than guessing.
    """
    if not model_files:
        return {}
    mounts = [Mount(source=volume, target=VOLUME_MOUNT, mode="ro")]
    with helper_container(engine, mounts, helper, "hash") as box:
        paths = [_in_volume(f) for f in model_files]
        return _hash_files(engine, box, volume, paths, f"hashing files in volume {volume}")


def node_source_file(engine: Engine, source: ModelSource, helper: HelperSettings) -> SourceFile:
    """Fact: size and SHA-256 of a model file already on the node (read-only mount of its folder)."""
    assert source.node_path is not None
    folder, name = posixpath.split(source.node_path)
    path = _in(_SOURCE_MOUNT, name)
    with helper_container(engine, [Mount(source=folder, target=_SOURCE_MOUNT, mode="ro")], helper, "hash") as box:
        found = _hash_files(engine, box, "", [path], f"hashing {source.node_path}").get(name)
    if found is None:
        raise DockerOpError(f"node {engine.node}: model source {source.node_path} is not a file on the node")
    return SourceFile(model_file=source.model_file, sha256=found.sha256, size_bytes=found.size_bytes)


def _tar_stream(source: ModelSource, expected: SourceFile, progress: ProgressCallback | None) -> Iterator[bytes]:
    """A one-member tar of the source, built while it is sent: never more than one chunk in memory.

    Raises:
        DockerOpError: the source changed size while it was read.
    """
    assert source.local_path is not None
    info = tarfile.TarInfo(incoming_name(source.model_file))
    info.size, info.mode, info.mtime = expected.size_bytes, 0o644, int(time.time())
    yield info.tobuf(format=tarfile.GNU_FORMAT)
    sent = 0
    with source.local_path.open("rb", buffering=0) as fh:
        while sent < expected.size_bytes and (chunk := fh.read(min(READ_CHUNK_BYTES, expected.size_bytes - sent))):
            sent += len(chunk)
            yield chunk
            if progress is not None:
                progress(CopyProgress(file=source.model_file, phase="copy", done_bytes=sent, total_bytes=info.size))
    if sent != expected.size_bytes:
        raise DockerOpError(f"{source.local_path} shrank while it was copied ({sent} of {expected.size_bytes} bytes)")
    # The member is padded to a 512-byte block; two zero blocks end the archive.
    yield b"\0" * ((-sent) % tarfile.BLOCKSIZE + 2 * tarfile.BLOCKSIZE)


def _stream_local(
    engine: Engine,
    box_id: str,
    source: ModelSource,
    expected: SourceFile,
    progress: ProgressCallback | None,
    volume: str,
) -> None:
    with engine.errors(f"copying {source.model_file} into volume {volume}"):
        engine.client.api.put_archive(box_id, VOLUME_MOUNT, _tar_stream(source, expected, progress))


def _copy_on_node(
    engine: Engine,
    box_id: str,
    source: ModelSource,
    expected: SourceFile,
    progress: ProgressCallback | None,
    volume: str,
) -> None:
    """`cp` inside the helper, with the growing file's size polled for progress."""
    temp = _in_volume(incoming_name(source.model_file))
    src = _in(_SOURCE_MOUNT, posixpath.basename(source.node_path or ""))
    doing = f"copying {source.node_path} into volume {volume}"
    api = engine.client.api
    with engine.errors(doing):
        exec_id = api.exec_create(box_id, ["cp", src, temp])["Id"]
        api.exec_start(exec_id, detach=True)
        while (state := api.exec_inspect(exec_id))["Running"]:
            time.sleep(_POLL_S)
            if progress is not None:
                done = api.exec_start(api.exec_create(box_id, ["sh", "-c", _SIZE_OR_ZERO, "sh", temp])["Id"])
                size = int((done or b"0").split()[0] or 0)
                progress(
                    CopyProgress(file=source.model_file, phase="copy", done_bytes=size, total_bytes=expected.size_bytes)
                )
    if state["ExitCode"] != 0:
        raise DockerOpError(f"node {engine.node}: {doing}: cp exited {state['ExitCode']}")
    if progress is not None:
        size = expected.size_bytes
        progress(CopyProgress(file=source.model_file, phase="copy", done_bytes=size, total_bytes=size))


def _verify(
    engine: Engine, box: Container, volume: str, expected: SourceFile, progress: ProgressCallback | None
) -> VolumeFile:
    """Hash the written copy inside the helper (reading it back from the volume) and compare with the source.

    After the copy, not during it: a hash that reads behind a file the engine is still
    extracting ran several times slower than one afterwards (benchmarks/copy_bench.py).
    """
    name = incoming_name(expected.model_file)
    if progress is not None:
        progress(CopyProgress(file=expected.model_file, phase="verify", done_bytes=0, total_bytes=expected.size_bytes))
    got = _hash_files(engine, box, volume, [_in_volume(name)], f"verifying {name} in volume {volume}").get(name)
    if got is None or got.sha256 != expected.sha256 or got.size_bytes != expected.size_bytes:
        seen = f"sha256 {got.sha256[:12]}, {got.size_bytes} bytes" if got else "no file"
        raise DockerOpError(
            f"node {engine.node}: copy of {expected.model_file} into volume {volume} did not verify: "
            f"{seen}, source sha256 {expected.sha256[:12]}, {expected.size_bytes} bytes"
        )
    if progress is not None:
        progress(
            CopyProgress(
                file=expected.model_file, phase="verify", done_bytes=got.size_bytes, total_bytes=got.size_bytes
            )
        )
    return VolumeFile(volume=volume, model_file=expected.model_file, sha256=got.sha256, size_bytes=got.size_bytes)


def copy_into_volume(
    engine: Engine,
    volume: str,
    source: ModelSource,
    expected: SourceFile,
    helper: HelperSettings,
    progress: ProgressCallback | None = None,
) -> VolumeFile:
    """Operation: a verified copy of the source sits in the volume as `.NAME.incoming`.

    Safe to retry: each attempt starts from an empty temporary file, and the file at the final
    name is never written. On any failure the temporary file is removed.

    Args:
        engine: the node's engine.
        volume: the named volume (it must exist).
        source: a local file (streamed as a tar built on the fly, via put_archive) or a file on
            the node (copied by `cp` in a helper that mounts its folder read-only).
        expected: the source's size and SHA-256, taken when the rollout was planned; a source
            that changed since fails verification.
        helper: the helper image.
        progress: called as bytes are sent and when verification starts and ends.

    Raises:
        DockerOpError: the copy failed (a full volume is named as such) or did not verify.
    """
    mounts = [Mount(source=volume, target=VOLUME_MOUNT)]
    if source.node_path is not None:
        mounts.append(Mount(source=posixpath.dirname(source.node_path), target=_SOURCE_MOUNT, mode="ro"))
    temp = _in_volume(incoming_name(source.model_file))
    started = time.perf_counter()
    with helper_container(engine, mounts, helper, "copy") as box:
        run_in(engine, box, ["rm", "-f", temp], f"clearing {temp} in volume {volume}")
        try:
            copy = _stream_local if source.local_path is not None else _copy_on_node
            copy(engine, box.id, source, expected, progress, volume)
            written = time.perf_counter()
            copied = _verify(engine, box, volume, expected, progress)
        except DockerOpError as exc:
            _remove_quietly(engine, box, temp)
            raise _with_space_hint(exc, engine, volume) from exc.__cause__
    done = time.perf_counter()
    log.info(
        "node %s: %s copied into %s in %.1f s and verified %.1f s later (%.1f MB/s)",
        engine.node,
        source.model_file,
        volume,
        written - started,
        done - written,
        expected.size_bytes / 1e6 / max(done - started, 1e-9),
    )
    return copied


def _remove_quietly(engine: Engine, box: Container, path: str) -> None:
    """Best effort after a failure: the original error is the one to report."""
    try:
        run_in(engine, box, ["rm", "-f", path], f"removing {path}")
    except DockerOpError as exc:
        log.warning("could not remove %s after a failed copy: %s", path, exc)


def _with_space_hint(exc: DockerOpError, engine: Engine, volume: str) -> DockerOpError:
    if _NO_SPACE not in str(exc).lower():
        return exc
    return DockerOpError(
        f"node {engine.node}: volume {volume} is full (no space left on device); nothing was replaced. {exc}"
    )


# Keep the file at the final name as .previous (a second name for the same bytes), then move
# the verified copy over the final name: rename(2) replaces it in one step. The arguments are
# absolute paths, so a name starting with "-" is never read as an option.
_ACTIVATE = 'set -e; if [ -f "$1" ]; then ln -f "$1" "$2"; fi; mv -f "$3" "$1"'
_RESTORE = 'set -e; if [ -f "$2" ]; then mv -f "$2" "$1"; fi'


def activate_model(engine: Engine, volume: str, model_file: str, helper: HelperSettings) -> None:
    """Operation: the verified `.NAME.incoming` becomes `NAME`; the old `NAME` is kept as `.NAME.previous`."""
    args = [_in_volume(model_file), _in_volume(previous_name(model_file)), _in_volume(incoming_name(model_file))]
    with helper_container(engine, [Mount(source=volume, target=VOLUME_MOUNT)], helper, "activate") as box:
        run_in(engine, box, ["sh", "-c", _ACTIVATE, "sh", *args], f"activating {model_file} in volume {volume}")


def restore_model(engine: Engine, volume: str, model_file: str, helper: HelperSettings) -> None:
    """Operation (rollback): `.NAME.previous`, if kept, becomes `NAME` again."""
    args = [_in_volume(model_file), _in_volume(previous_name(model_file))]
    with helper_container(engine, [Mount(source=volume, target=VOLUME_MOUNT)], helper, "restore") as box:
        run_in(engine, box, ["sh", "-c", _RESTORE, "sh", *args], f"restoring {model_file} in volume {volume}")


def forget_previous(engine: Engine, volume: str, model_file: str, helper: HelperSettings) -> None:
    """Operation: drop `.NAME.previous` once its replacement is healthy (frees its space)."""
    path = _in_volume(previous_name(model_file))
    with helper_container(engine, [Mount(source=volume, target=VOLUME_MOUNT)], helper, "cleanup") as box:
        run_in(engine, box, ["rm", "-f", path], f"removing {shlex.quote(path)} in volume {volume}")
