"""The cluster-file case corpus under tests/cases/inventory/ and the expectations in its headers.

A bad case opens with a comment block saying what `load_inventory` must report:

    # expect-line: 14                       (absent: the problem has no line)
    # expect-path: nodes[1].endpoints[0].url (empty: the whole file)
    # expect-message: port is not a number  (repeatable; each must appear)
    # expect-count: 2                       (optional; the default is 1)

Other comment lines describe the case and are ignored.

Hostile files (tests/cases/hostile/inventory/*.jsonl) are rows: `content` (the file's
text) or `special` (a FIFO, a directory, /dev/zero, a file over the size cap), the exit code of
`homelab validate`, the lines and message parts it must print, and words it must never print.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from homelab.yaml_source import MAX_FILE_BYTES

__all__ = ["BAD", "EXAMPLES", "GOOD", "HOSTILE", "ROOT", "Expected", "hostile_file", "read_expected"]

ROOT = Path(__file__).resolve().parents[1]
CASES = ROOT / "tests" / "cases" / "inventory"
BAD = sorted((CASES / "bad").glob("*.yaml"))
GOOD = sorted((CASES / "good").glob("*.yaml"))
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))
HOSTILE: list[dict[str, Any]] = [
    json.loads(line)
    for table in sorted((ROOT / "tests" / "cases" / "hostile" / "inventory").glob("*.jsonl"))
    for line in table.read_text().splitlines()
    if line.strip()
]


@dataclass(frozen=True)
class Expected:
    """The one problem a bad case must produce, and how many problems it produces in all."""

    line: int | None
    path: str
    messages: tuple[str, ...]
    count: int = 1


def read_expected(case: Path) -> Expected:
    """Parse the `# expect-KEY: value` lines of `case`'s leading comment block.

    The block is read as bytes and decoded line by line, so that a case whose body is
    not UTF-8 (on purpose) still has a readable header.

    Raises:
        ValueError: the header has no expect-path or no expect-message.
    """
    found: dict[str, list[str]] = {}
    for raw in case.read_bytes().splitlines():
        if not raw.startswith(b"#"):
            break
        key, colon, value = raw.decode("utf-8").removeprefix("#").strip().partition(":")
        if colon and key.startswith("expect-"):
            found.setdefault(key.removeprefix("expect-"), []).append(value.strip())
    if "path" not in found or "message" not in found:
        raise ValueError(f"{case}: the header needs expect-path and at least one expect-message")
    line = found.get("line")
    count = found.get("count")
    return Expected(
        line=int(line[0]) if line else None,
        path=found["path"][0],
        messages=tuple(found["message"]),
        count=int(count[0]) if count else 1,
    )


def hostile_file(case: dict[str, Any], folder: Path) -> Path:
    """Put a hostile case where `homelab validate` can be pointed at it."""
    special = case.get("special")
    if special is not None and special.startswith("/"):  # a device that every Linux has
        return Path(special)
    path = folder / f"{case['id']}.yaml"
    if special == "fifo":
        os.mkfifo(path)  # nothing ever writes to it: opening it to read would block forever
    elif special == "directory":
        path.mkdir()
    elif special == "oversize":
        path.write_bytes(b"#" * MAX_FILE_BYTES + b"\n")
    else:
        path.write_text(case["content"], encoding="utf-8")
    return path
