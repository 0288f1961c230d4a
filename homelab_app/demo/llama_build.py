"""The llama-server binary for the demo: the cached build, or a build now with its progress reported.

`scripts/build-llama-server.sh` builds llama.cpp's server once into `~/.cache/homelab` and
prints the binary's path; a second run is a stat. The first build takes about 12 minutes on
two cores, so the caller gets every line of the build as it happens, with CMake's percentage
when the line has one, to show something better than a silent wait.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from homelab.errors import BuildFailed

__all__ = ["BUILD_SCRIPT", "BuildLine", "llama_server_binary"]

# The script sits in the repository beside the package (an editable install, as setup.sh makes).
BUILD_SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "build-llama-server.sh"
_PERCENT = re.compile(r"^\[\s*(\d+)%\]")
_TAIL_LINES = 30


class BuildLine(NamedTuple):
    """One line of build output, with CMake's overall percentage when the line gives one."""

    text: str
    percent: int | None


def _usable(path: str | None) -> Path | None:
    if path and os.access(path, os.X_OK) and Path(path).is_file():
        return Path(path)
    return None


def llama_server_binary(on_line: Callable[[BuildLine], None] | None = None, script: Path = BUILD_SCRIPT) -> Path:
    """`$LLAMA_SERVER` when it names an executable, else the build script's binary (built if need be).

    Args:
        on_line: called with each line the build prints (nothing when the build is cached).
        script: the build script.

    Raises:
        BuildFailed: no script, or it failed (the last lines of its output in the message).
    """
    found = _usable(os.environ.get("LLAMA_SERVER"))
    if found is not None:
        return found
    if not script.is_file():
        raise BuildFailed(f"no {script.name} at {script.parent}: set LLAMA_SERVER to a llama-server binary")
    tail: list[str] = []
    with subprocess.Popen(
        ["bash", str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True
    ) as proc:
        assert proc.stderr is not None and proc.stdout is not None
        for raw in proc.stderr:
            line = raw.rstrip()
            tail = [*tail[-_TAIL_LINES + 1 :], line]
            if on_line is not None and line:
                match = _PERCENT.match(line)
                on_line(BuildLine(line, int(match.group(1)) if match else None))
        printed = proc.stdout.read().split()
    if proc.returncode != 0 or not printed:
        raise BuildFailed(f"{script.name} exited {proc.returncode}:\n" + "\n".join(tail))
    binary = _usable(printed[-1])
    if binary is None:
        raise BuildFailed(f"{script.name} printed {printed[-1]}, which is not an executable file")
    return binary
