"""Background processes that `homelab up` starts and `homelab down` stops, and how we know them again.

Each process starts in a session of its own, so its process group (pid == pgid) holds it and
whatever it spawns, and one signal to the group stops all of it. A pid alone is not an identity:
after the process exits the kernel may hand the number to something else. A record therefore
keeps the process's start time and command line as well, and `stop` signals only a group whose
leader still has both.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import psutil
from pydantic import BaseModel, ConfigDict

__all__ = ["ProcessRecord", "is_alive", "log_tail", "spawn", "stop"]

# Start times read back through psutil are floats from the same /proc fields; allow rounding.
_START_TIME_TOLERANCE_S = 0.05
_LOG_TAIL_CHARS = 3000
_EXEC_WAIT_S = 5.0


class ProcessRecord(BaseModel):
    """A process we started: enough to find it again, and to be sure it is still that process."""

    model_config = ConfigDict(frozen=True)

    role: str
    pid: int
    started_at: float
    argv: list[str]
    log: Path


def spawn(role: str, argv: Sequence[str], env: Mapping[str, str], cwd: Path, log: Path) -> ProcessRecord:
    """Start `argv` in a new session with output appended to `log`; return its record."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        proc = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    started_at = _started_at(proc.pid)
    # Popen's object is dropped on purpose: the process outlives this one; is_alive() reaps it.
    return ProcessRecord(role=role, pid=proc.pid, started_at=started_at, argv=list(argv), log=log)


def _started_at(pid: int) -> float:
    """The start time of a just-spawned process, once its exec has finished.

    Popen returns when the exec begins; until the new image is in place /proc shows an empty
    command line, which would make the first identity check fail.
    """
    deadline = time.monotonic() + _EXEC_WAIT_S
    try:
        proc = psutil.Process(pid)
        while not proc.cmdline() and time.monotonic() < deadline:
            time.sleep(0.01)
        return float(proc.create_time())
    except psutil.NoSuchProcess:
        return 0.0  # exited at once; is_alive() says so and the caller shows the log


def _ours(record: ProcessRecord) -> psutil.Process | None:
    """The live process of `record`, or None when it exited or the pid now belongs to another."""
    try:
        proc = psutil.Process(record.pid)
        same = (
            abs(proc.create_time() - record.started_at) < _START_TIME_TOLERANCE_S
            and proc.cmdline() == record.argv
            and os.getpgid(record.pid) == record.pid
            and proc.status() != psutil.STATUS_ZOMBIE
        )
    except (psutil.NoSuchProcess, psutil.AccessDenied, ProcessLookupError):
        return None
    return proc if same else None


def is_alive(record: ProcessRecord) -> bool:
    """True while the recorded process runs (and is the one we started)."""
    _reap(record.pid)
    return _ours(record) is not None


def _reap(pid: int) -> None:
    # A child of this very process (spawned earlier in the same `up`) stays a zombie until waited for.
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def stop(record: ProcessRecord, timeout_s: float) -> bool:
    """SIGTERM the record's process group, SIGKILL it after `timeout_s`; False if it was not running.

    Nothing is signalled unless the group leader is still the process we started.
    """
    if _ours(record) is None:
        return False
    _signal_group(record.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        _reap(record.pid)
        if not _group_alive(record.pid):
            return True
        time.sleep(0.1)
    _signal_group(record.pid, signal.SIGKILL)
    _reap(record.pid)
    return True


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


def _group_alive(pgid: int) -> bool:
    """Whether any process of the group runs; zombies do not count (init reaps orphans late)."""
    for proc in psutil.process_iter():
        try:
            if os.getpgid(proc.pid) == pgid and proc.status() != psutil.STATUS_ZOMBIE:
                return True
        except (psutil.NoSuchProcess, ProcessLookupError):
            continue
    return False


def log_tail(log: Path, chars: int = _LOG_TAIL_CHARS) -> str:
    """The end of a process's log, for error messages."""
    try:
        return log.read_text(errors="replace")[-chars:]
    except FileNotFoundError:
        return ""
