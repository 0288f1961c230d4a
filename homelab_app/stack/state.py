"""The state directory of a stack: what `homelab up` started, so `homelab down` stops exactly that.

Layout of the directory (default `.homelab/` in the working directory):

    stack.json     this module's record: API URL, the server and worker processes
    stack.lock     held while `up` or `down` runs, so two of them never race
    prefect/       PREFECT_HOME of the embedded server (SQLite database `prefect.db`)
    prefect.yaml   the deployments as last deployed (prefect.yaml with the inventory applied)
    server.log, worker.log, deploy.log
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pydantic import BaseModel

from homelab_app.stack.processes import ProcessRecord

__all__ = ["STATE_FILE", "StackState", "load_state", "locked", "save_state"]

STATE_FILE = "stack.json"
_LOCK_FILE = "stack.lock"


class StackState(BaseModel):
    """What one state directory has started, and against which Prefect API."""

    api_url: str | None = None
    server: ProcessRecord | None = None
    worker: ProcessRecord | None = None
    # The worker's API and queues ([] = every queue of the pool), to tell whether it still fits.
    worker_api_url: str | None = None
    worker_queues: list[str] = []


def load_state(state_dir: Path) -> StackState:
    path = state_dir / STATE_FILE
    if not path.exists():
        return StackState()
    return StackState.model_validate_json(path.read_text())


def save_state(state_dir: Path, state: StackState) -> None:
    """Write atomically: a crash mid-write must not lose the pids of running processes."""
    state_dir.mkdir(parents=True, exist_ok=True)
    tmp = state_dir / f".{STATE_FILE}.tmp"
    tmp.write_text(state.model_dump_json(indent=2))
    os.replace(tmp, state_dir / STATE_FILE)


@contextmanager
def locked(state_dir: Path) -> Iterator[None]:
    """Hold the state directory's lock (blocking) for one `up` or `down`."""
    state_dir.mkdir(parents=True, exist_ok=True)
    with (state_dir / _LOCK_FILE).open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
