"""The demo's servers, recorded in its state folder so a later command (or a wake) can find and stop them.

`homelab demo` starts servers that outlive it (llama-servers, the Ollama stand-in, a LiteLLM
proxy), and the demo's wake command starts one more from inside a Prefect flow run. Each is
started and stopped as `homelab up` does its server and worker (`homelab_app.stack.processes`: a
session of its own, identity by pid, start time and command line); this module keeps their
records in `processes.json`, rewritten under an exclusive lock because the wake command, run
by a worker, may record a process while the demo command records its own.
"""

from __future__ import annotations

import fcntl
import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from homelab_app.stack.processes import ProcessRecord, is_alive, spawn, stop

__all__ = ["STOP_TIMEOUT_S", "ProcessTable"]

STOP_TIMEOUT_S = 10.0


class ProcessTable:
    """The processes recorded in `folder/processes.json`, by name (the record's role)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.path = folder / "processes.json"

    @contextmanager
    def _locked(self) -> Iterator[list[ProcessRecord]]:
        """The records, for reading and changing; written back when the block ends."""
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.folder / ".processes.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                records = [ProcessRecord.model_validate(r) for r in json.loads(self.path.read_text())]
            except FileNotFoundError:
                records = []
            before = list(records)
            yield records
            if records != before:
                tmp = self.path.with_suffix(".tmp")
                tmp.write_text(json.dumps([r.model_dump(mode="json") for r in records], indent=2))
                tmp.replace(self.path)

    def records(self) -> list[ProcessRecord]:
        """Every recorded process, running or not."""
        with self._locked() as records:
            return list(records)

    def running(self) -> list[ProcessRecord]:
        """The recorded processes that still run."""
        return [r for r in self.records() if is_alive(r)]

    def start(self, name: str, argv: Sequence[str], *, env: Mapping[str, str], cwd: Path) -> ProcessRecord:
        """Start `argv` in the background, its output in `folder/logs/NAME.log`, and record it.

        A process of the same name that still runs is stopped first. Secrets go in `env`,
        which is never recorded; `argv` is recorded, and visible to every user of the machine.
        """
        self.stop([name])
        record = spawn(name, argv, env, cwd, self.folder / "logs" / f"{name}.log")
        with self._locked() as records:
            records[:] = [r for r in records if r.role != name] + [record]
        return record

    def stop(self, names: Sequence[str] | None = None, timeout_s: float = STOP_TIMEOUT_S) -> list[ProcessRecord]:
        """Stop the named processes (all when None) and forget them; returns those that were running."""
        with self._locked() as records:
            chosen = [r for r in records if names is None or r.role in names]
            records[:] = [r for r in records if r not in chosen]
        return [r for r in chosen if stop(r, timeout_s)]
