"""Verifying a copy inside the helper container: SHA-256 of the written file, overlapped with the writing.

The helper's `sha256sum` reads the file back from the volume, which proves what landed there,
not just what was sent. Done after the copy, it doubles the time of a big copy (busybox
hashes at roughly the speed the engine writes). So it starts while the copy is still being
written, once a head start (`HelperSettings.verify_head_start`) of the file is there, and reads
behind the writer. The writer only appends, so every byte the hash reads is final.

Should the hash catch up with the writer, it reaches the end of a file that is not finished
and reports the hash of a prefix, which cannot match the source's; the file is then hashed
again from the start once the copy is complete. A match is therefore always a proof, and a
lost race costs one extra read, never a wrong verdict.
"""

from __future__ import annotations

import logging
import threading

from docker.models.containers import Container

from homelab.docker_ops.connect import Engine
from homelab.docker_ops.helper import run_in
from homelab.errors import DockerOpError

__all__ = ["EarlyHash", "hash_in_helper", "SMALL_FILE_BYTES"]

log = logging.getLogger(__name__)

# Below this, hashing after the copy costs well under a second: no thread, no race.
SMALL_FILE_BYTES = 64 << 20
_STOP = "/tmp/.homelab-stop-hash"
# Prints "SIZE SHA256 PATH" once the file has $2 bytes; gives up (prints nothing) when told to stop.
_EARLY_SCRIPT = (
    'while [ "$(stat -c %s "$1" 2>/dev/null || echo 0)" -lt "$2" ]; do'
    f' if [ -e {_STOP} ]; then exit 0; fi; usleep 20000; done;'
    ' h=$(sha256sum "$1") && echo "$(stat -c %s "$1") $h"'
)
# The size is taken after the hash: for a file still growing, it is the size the hash saw or more.
_HASH_SCRIPT = 'for f in "$@"; do if [ -f "$f" ]; then h=$(sha256sum "$f") && echo "$(stat -c %s "$f") $h"; fi; done'


def hash_in_helper(engine: Engine, box: Container, paths: list[str], doing: str) -> str:
    """`SIZE SHA256 PATH` for each path that is a regular file (missing ones print nothing)."""
    return run_in(engine, box, ["sh", "-c", _HASH_SCRIPT, "sh", *paths], doing)


class EarlyHash:
    """A `sha256sum` of `path` in the helper that starts once `start_bytes` of it are written."""

    def __init__(self, engine: Engine, box: Container, path: str, start_bytes: int) -> None:
        self._engine, self._box, self._path = engine, box, path
        self._argv = ["sh", "-c", _EARLY_SCRIPT, "sh", path, str(max(1, start_bytes))]
        self._output: str | None = None
        self._thread = threading.Thread(target=self._run, name=f"early-hash {path}", daemon=True)

    def _run(self) -> None:
        try:
            self._output = run_in(self._engine, self._box, self._argv, f"hashing {self._path} while it is written")
        except DockerOpError as exc:
            log.info("early hash of %s gave up: %s", self._path, exc)

    def start(self) -> EarlyHash:
        self._thread.start()
        return self

    def result(self) -> str | None:
        """The `SIZE SHA256 PATH` line once the copy is complete, or None if it gave up."""
        self._thread.join()
        return self._output

    def cancel(self) -> None:
        """The copy failed: stop waiting for bytes that will not come."""
        try:
            run_in(self._engine, self._box, ["touch", _STOP], "stopping the early hash")
        except DockerOpError as exc:
            log.warning("could not stop the early hash of %s: %s", self._path, exc)
        self._thread.join()
