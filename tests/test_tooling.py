"""The tooling people run by hand passes in CI too: ruff (lint and format) and mypy over the tree.

Each runs as its own subprocess from the test environment's interpreter, with the settings of
pyproject.toml, and a failure shows the tool's own report. mypy keeps its incremental cache
in `.mypy_cache/` (ignored by git), so a second run takes seconds.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
# A cold mypy run over the tree takes about a minute on two busy cores; a warm one seconds.
TOOL_TIMEOUT_S = 600

CHECKS = {
    "ruff-check": ["ruff", "check", "--output-format=concise", "."],
    "ruff-format": ["ruff", "format", "--check", "."],
    # What to check (`files`) and how strictly comes from [tool.mypy].
    "mypy": ["mypy"],
}


def _run(args: list[str], cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=cwd, capture_output=True, text=True, timeout=TOOL_TIMEOUT_S, check=False
    )


@pytest.mark.parametrize("args", CHECKS.values(), ids=CHECKS.keys())
def test_the_tree_passes(args: list[str]) -> None:
    result = _run(args)
    assert result.returncode == 0, f"{' '.join(args)} failed:\n{result.stdout}{result.stderr}"


def test_ruff_holds_lines_to_120_characters(tmp_path: Path) -> None:
    """The limit the tree is checked against is the configured one, and it is enforced."""
    (tmp_path / "long.py").write_text(f'TEXT = "{"x" * 112}"\n')  # 121 characters
    (tmp_path / "fits.py").write_text(f'TEXT = "{"x" * 111}"\n')  # 120
    config = str(ROOT / "pyproject.toml")
    result = _run(["ruff", "check", "--config", config, "--output-format=concise", "."], cwd=tmp_path)
    assert result.returncode == 1
    assert result.stdout.splitlines()[0] == "long.py:1:121: E501 Line too long (121 > 120)", result.stdout
    assert "fits.py" not in result.stdout
