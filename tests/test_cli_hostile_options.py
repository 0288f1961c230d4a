"""Numbers, durations and arguments no run can use: `homelab` exits 2 naming the option, at once.

The cases are rows of tests/cases/hostile/options/*.jsonl (`args`, with `{example}` for the
example cluster file, and the `message` stderr must hold); a new case needs no new code. Once,
`--fit-gib inf` and `report --since 99999999999d` were OverflowError tracebacks and
`recover -- --help` exited 0 having recovered nothing. The app runs in this process (typer's
runner: the same parsing and output as the console script, without a 3-5 s start per case).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from homelab_app.cli import app

ROOT = Path(__file__).resolve().parents[1]
CASES = [
    json.loads(line)
    for path in sorted((ROOT / "tests" / "cases" / "hostile" / "options").glob("*.jsonl"))
    for line in path.read_text().splitlines()
    if line.strip()
]
EXAMPLE = ROOT / "examples" / "three-tier.yaml"


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_hostile_option_exits_2_naming_it(case: dict[str, Any]) -> None:
    args = [a.replace("{example}", str(EXAMPLE)) for a in case["args"]]
    result = CliRunner(env={"NO_COLOR": "1", "COLUMNS": "300", "HOMELAB_INVENTORY": None}).invoke(app, args)

    assert result.exit_code == 2, result.output
    assert case["message"] in result.stderr
    assert isinstance(result.exception, SystemExit)  # no other exception escaped
    assert not (ROOT / "examples" / "homelab-history.db").exists()
