"""The `homelab` console script as a user runs it: exit codes, stdout and stderr."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


from homelab.errors import Problem
from tests.inventory_cases import BAD, EXAMPLES, ROOT, read_expected

# The installed entry point, not `python -m`: cli.py has no __main__ guard, and the
# script is what users run.
HOMELAB = Path(sys.executable).parent / "homelab"
EXIT_INVALID = 2


def homelab(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """Run the CLI from the repository root, without colour, and capture its output."""
    env = {k: v for k, v in os.environ.items() if k not in {"FORCE_COLOR", "COLUMNS"}} | {"NO_COLOR": "1"}
    return subprocess.run(
        [str(HOMELAB), *map(str, args)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False
    )


def relative(paths: list[Path]) -> list[str]:
    return [p.relative_to(ROOT).as_posix() for p in paths]


def test_version() -> None:
    result = homelab("--version")

    assert result.returncode == 0
    assert result.stdout.strip() == "homelab 0.1.0"


def test_help_lists_the_commands() -> None:
    result = homelab("--help")

    assert result.returncode == 0
    assert "validate" in result.stdout and "schema" in result.stdout


def test_validate_examples() -> None:
    result = homelab("validate", *relative(EXAMPLES))

    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert "examples/three-tier.yaml: 3 nodes in 3 tiers, 6 endpoints, 9 models" in result.stdout
    assert "examples/minimal.yaml: 1 nodes in 1 tiers" in result.stdout


def test_validate_prints_every_bad_file_as_file_line_path_message() -> None:
    files = relative(BAD)

    result = homelab("validate", *files)

    assert result.returncode == EXIT_INVALID
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    for name, case in zip(files, BAD, strict=True):
        expected = read_expected(case)
        where = f"{name}:{expected.line}" if expected.line else name
        lead = f"{where}: {expected.path}: " if expected.path else f"{where}: "
        lines = [line for line in result.stderr.splitlines() if lead in line]
        assert any(all(m in line for m in expected.messages) for line in lines), f"{lead}... not in stderr"


def test_validate_reports_bad_and_missing_files_and_still_checks_the_good() -> None:
    bad = "tests/cases/inventory/bad/url-port-70000.yaml"

    result = homelab("validate", "examples/minimal.yaml", bad, "no-such-cluster.yaml")

    assert result.returncode == EXIT_INVALID
    assert "examples/minimal.yaml: 1 nodes" in result.stdout
    assert result.stderr.splitlines() == [
        f"✗ {bad}:12: nodes[0].endpoints[0].url: port is not a number in the range 1-65535: "
        "'http://mark-i.home.arpa:70000'",
        "✗ no-such-cluster.yaml: file not found",
    ]


def test_validate_json() -> None:
    bad = "tests/cases/inventory/bad/duplicate-node-names.yaml"

    result = homelab("validate", "--json", "examples/minimal.yaml", bad)

    assert result.returncode == EXIT_INVALID
    assert result.stderr == ""
    good_result, bad_result = json.loads(result.stdout)
    assert good_result["valid"] is True
    assert good_result["summary"] == {
        "name": "homelab",
        "nodes": 1,
        "tiers": ["local"],
        "endpoints": 1,
        "models": 1,
        "experts": ["chat"],
    }
    assert bad_result["file"] == bad and bad_result["valid"] is False
    assert [Problem(**p) for p in bad_result["problems"]] == [
        Problem(bad, 10, "nodes[1].name", "duplicate node name 'mark-i' (first at line 7)")
    ]


def test_schema_is_json_with_definitions() -> None:
    result = homelab("schema")

    assert result.returncode == 0
    schema = json.loads(result.stdout)
    assert "$defs" in schema and "Node" in schema["$defs"]
    assert "nodes" in schema["required"]


def test_validate_prints_brackets_in_messages_verbatim(tmp_path: Path) -> None:
    cluster = tmp_path / "cluster.yaml"
    cluster.write_text("nodes:\n  - name: mark-i\n    tier: primary\n    host: h\n    '[red]': x\n    '[/x]': y\n")

    result = homelab("validate", cluster)

    assert result.returncode == EXIT_INVALID
    assert "Traceback" not in result.stderr
    assert f"{cluster}:5: nodes[0].[red]: unknown key '[red]'" in result.stderr
    assert f"{cluster}:6: nodes[0].[/x]: unknown key '[/x]'" in result.stderr
