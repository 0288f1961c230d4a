"""Hostile inputs and outputs for `gateway config`, `gateway import` and `rollout --gateway-config` via the real CLI.

Each case is one YAML file under `tests/cases/hostile/gateway/`: what to lay out in a fresh
folder (`files`, `fifos`, `dirs`, `sparse` files of a given size, `symlinks`, `hardlinks`, `copies`
from the repository), the command (`argv`, where `{dir}` is that folder), and what must come
out (`exit`, a `stderr` substring, at most `stderr_max_chars`, none of `stderr_never`). A refused command must leave
every file in the folder as it was and add none. A new case needs no code.
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.inventory_cases import ROOT
from tests.test_cli_validate import homelab

CASES = sorted((ROOT / "tests" / "cases" / "hostile" / "gateway").glob("*.yaml"))
EXIT_OK = 0


def lay_out(case: dict[str, Any], folder: Path) -> None:
    """Create what the case asks for in `folder`."""
    for name, content in case.get("files", {}).items():
        data = content if isinstance(content, bytes) else str(content).encode()
        (folder / name).write_bytes(data)
    for name, source in case.get("copies", {}).items():
        shutil.copyfile(ROOT / source, folder / name)
    for name in case.get("fifos", []):
        os.mkfifo(folder / name)
    for name in case.get("dirs", []):
        (folder / name).mkdir()
    for name, size in case.get("sparse", {}).items():
        with (folder / name).open("wb") as fh:
            fh.truncate(int(size))
    for name, target in case.get("symlinks", {}).items():
        (folder / name).symlink_to(str(target).format(dir=folder))
    for name, target in case.get("hardlinks", {}).items():
        (folder / name).hardlink_to(folder / target)


def snapshot(folder: Path) -> dict[str, object]:
    """Each entry's kind, and a regular file's bytes (a FIFO is never opened)."""
    found: dict[str, object] = {}
    for path in sorted(folder.rglob("*")):
        mode = path.lstat().st_mode
        if stat.S_ISREG(mode):
            found[str(path.relative_to(folder))] = path.read_bytes()
        else:
            found[str(path.relative_to(folder))] = stat.S_IFMT(mode)
    return found


@pytest.mark.parametrize("case_file", CASES, ids=[c.stem for c in CASES])
def test_hostile_gateway_case(case_file: Path, tmp_path: Path) -> None:
    case = yaml.safe_load(case_file.read_text(encoding="utf-8"))
    lay_out(case, tmp_path)
    before = snapshot(tmp_path)

    result = homelab(*(str(arg).format(dir=tmp_path) for arg in case["argv"]))

    assert result.returncode == case["exit"], result.stderr
    assert "Traceback" not in result.stderr
    assert "\x1b" not in result.stderr, "no escape sequence from the input reaches the terminal"
    assert case["stderr"].format(dir=tmp_path) in result.stderr
    assert len(result.stderr) <= case.get("stderr_max_chars", 2000), "a message stays short, whatever the input"
    for secret in case.get("stderr_never", []):
        assert secret not in result.stdout + result.stderr
    if case["exit"] != EXIT_OK:
        assert snapshot(tmp_path) == before, "a refused command changes nothing"
