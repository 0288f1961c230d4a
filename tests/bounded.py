"""Run a body under a time and an address-space cap, so that a runaway parser fails its test
instead of hanging the suite or exhausting the machine (the fuzzers and the hostile-file tables)."""

from __future__ import annotations

import resource
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

__all__ = ["RanTooLong", "capped"]


class RanTooLong(BaseException):
    """The capped body ran past its time. A BaseException (not TimeoutError, an OSError): code
    under test that catches OSError or Exception must not turn a hang into a pass."""


def _timed_out(signum: int, frame: FrameType | None) -> None:
    raise RanTooLong("the capped body ran past its time limit")


@contextmanager
def capped(*, seconds: float, extra_bytes: int) -> Iterator[None]:
    """Raise RanTooLong after `seconds`, MemoryError once the process maps `extra_bytes` more.

    RLIMIT_AS is set to the address space in use now plus `extra_bytes` and restored afterwards;
    SIGALRM interrupts a pure-Python loop. Main thread only (signals are delivered there).
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    in_use = int(Path("/proc/self/statm").read_text().split()[0]) * resource.getpagesize()
    limit = in_use + extra_bytes if hard == resource.RLIM_INFINITY else min(hard, in_use + extra_bytes)
    previous = signal.signal(signal.SIGALRM, _timed_out)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
