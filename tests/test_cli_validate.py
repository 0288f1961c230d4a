"""The `homelab` console script as a user runs it: exit codes, stdout and stderr."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from homelab.errors import Problem
from homelab_app.cli import app
from tests.inventory_cases import BAD, EXAMPLES, HOSTILE, ROOT, hostile_file, read_expected

# The installed entry point, not `python -m`: cli.py has no __main__ guard, and the
# script is what users run.
HOMELAB = Path(sys.executable).parent / "homelab"
EXIT_INVALID = 2


# Address space for one `homelab validate` of every hostile file. Measured (Dec 2026): validating
# examples/three-tier.yaml runs within 256 MiB (about 100 MB resident); the alias bomb, before
# its limits, grew to 3 GB and ended in a MemoryError.
VALIDATE_ADDRESS_SPACE = 512 * 1024 * 1024


def homelab(*args: str | Path, address_space: int | None = None) -> subprocess.CompletedProcess[str]:
    """Run the CLI from the repository root, without colour, and capture its output."""
    env = {k: v for k, v in os.environ.items() if k not in {"FORCE_COLOR", "COLUMNS"}} | {"NO_COLOR": "1"}

    def cap() -> None:
        if address_space is not None:
            resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))

    return subprocess.run(
        [str(HOMELAB), *map(str, args)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        preexec_fn=cap,
    )


def expected_lines(case: dict[str, Any], path: Path | str) -> list[tuple[str, str]]:
    """(line prefix, message part) pairs a hostile case must print on stderr."""
    return [(f"✗ {path}:{e['line']}: " if e["line"] else f"✗ {path}: ", e["text"]) for e in case["expect"]]


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


@pytest.mark.parametrize("case", HOSTILE, ids=[c["id"] for c in HOSTILE])
def test_hostile_file_is_refused_with_its_line(case: dict[str, Any], tmp_path: Path) -> None:
    path = hostile_file(case, tmp_path)

    started = time.process_time()  # CPU, not wall time: a bound on the work, steady on a loaded machine
    result = CliRunner().invoke(app, ["validate", str(path)], env={"NO_COLOR": "1"})
    cpu_s = time.process_time() - started

    assert result.exit_code == case["exit"], result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    lines = result.stderr.splitlines()
    for prefix, text in expected_lines(case, path):
        found = any(line.startswith(prefix) and text in line for line in lines)
        assert found, f"{prefix}...{text} not in:\n{result.stderr}"
    for secret in case.get("absent", []):
        assert secret not in result.output
    assert cpu_s < 2.0, f"{cpu_s:.2f} CPU s"


def test_every_hostile_file_at_once_within_a_memory_cap(tmp_path: Path) -> None:
    paths = [hostile_file(case, tmp_path) for case in HOSTILE]

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = homelab("validate", *paths, address_space=VALIDATE_ADDRESS_SPACE)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_s = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)

    assert result.returncode == EXIT_INVALID, result.stderr[-2000:]
    assert "Traceback" not in result.stderr and "MemoryError" not in result.stderr
    for case, path in zip(HOSTILE, paths, strict=True):
        for prefix, text in expected_lines(case, path):
            assert any(line.startswith(prefix) and text in line for line in result.stderr.splitlines()), case["id"]
    assert cpu_s < 30, f"{cpu_s:.1f} CPU s"


API_PATHS_CLUSTER = """\
nodes:
  - name: mark-i
    tier: primary
    host: mark-i.home.arpa
    endpoints:
      - {name: ollama, kind: ollama, url: "http://mark-i.home.arpa:11434"}
  - name: mark-ii
    tier: remote
    host: mark-ii.home.arpa
    endpoints:
      - name: coder
        kind: llamacpp
        url: http://mark-ii.home.arpa:3009/v1
        models: [{name: qwen2.5-coder, alias: coder}]
      - {name: gateway, kind: litellm, url: "http://mark-ii.home.arpa:4000/health"}
"""


def test_validate_notes_an_endpoint_url_written_with_an_api_path(tmp_path: Path) -> None:
    cluster = tmp_path / "cluster.yaml"
    cluster.write_text(API_PATHS_CLUSTER)

    result = homelab("validate", cluster)

    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [
        f"ℹ {cluster}:13: nodes[1].endpoints[0].url: 'http://mark-ii.home.arpa:3009/v1' is read as "
        "'http://mark-ii.home.arpa:3009' (homelab adds /v1 itself)",
        f"ℹ {cluster}:15: nodes[1].endpoints[1].url: 'http://mark-ii.home.arpa:4000/health' is read as "
        "'http://mark-ii.home.arpa:4000': homelab probes http://mark-ii.home.arpa:4000/health/liveliness, "
        "because LiteLLM answers /health by calling every model behind it and waits on a dead one",
    ]
    assert f"{cluster}: 2 nodes in 2 tiers, 3 endpoints, 1 models" in result.stdout


def test_validate_json_carries_the_notes(tmp_path: Path) -> None:
    cluster = tmp_path / "cluster.yaml"
    cluster.write_text(API_PATHS_CLUSTER)

    result = homelab("validate", "--json", cluster)

    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    (file_result,) = json.loads(result.stdout)
    notes = [Problem(**n) for n in file_result["notes"]]
    assert [(n.file, n.line, n.path) for n in notes] == [
        (str(cluster), 13, "nodes[1].endpoints[0].url"),
        (str(cluster), 15, "nodes[1].endpoints[1].url"),
    ]


def test_other_commands_read_the_base_url_without_the_note(tmp_path: Path) -> None:
    """The note is validate's: a command run every minute does not repeat it."""
    cluster = tmp_path / "cluster.yaml"
    cluster.write_text(API_PATHS_CLUSTER)

    result = homelab("gateway", "config", "--no-autoroute", "-i", cluster)

    assert result.returncode == 0, result.stderr
    assert "is read as" not in result.stderr
    assert "api_base: http://mark-ii.home.arpa:3009/v1\n" in result.stdout
