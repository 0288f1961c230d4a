"""One error tree, one CLI handler: every HomelabError lives in homelab/errors.py, its drawing there
is the tree and the exit codes the `homelab` command gives, and an error ends a command in one line."""

from __future__ import annotations

import importlib
import os
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

import homelab.errors as errors
from homelab.errors import HomelabError
from homelab_app.cli import app
from homelab_app.cli.common import EXIT_FAILED, EXIT_INVALID, exit_code

HOMELAB = Path(sys.executable).with_name("homelab")
PACKAGES = ["homelab", "homelab_app", "tasks", "flows", "blocks"]
# One drawn line: the branch, the name, its builtin mix-ins, the exit code.
_DRAWN = re.compile(r"^ {4}(?P<branch>(?:[│ ] {3})*[├└]── )(?P<name>\w+)(?: \([\w, ]+\))? +(?P<code>[12]) {2}\S")


def _all_subclasses(cls: type) -> set[type]:
    found: set[type] = set()
    pending = [cls]
    while pending:
        for sub in pending.pop().__subclasses__():
            if sub not in found:
                found.add(sub)
                pending.append(sub)
    return found


def test_every_homelab_error_is_defined_in_homelab_errors() -> None:
    for package in PACKAGES:
        root = importlib.import_module(package)
        for info in pkgutil.walk_packages(root.__path__, f"{package}."):
            if not info.name.endswith("__main__"):
                importlib.import_module(info.name)
    ours = [c for c in _all_subclasses(HomelabError) if c.__module__.split(".")[0] in PACKAGES]
    stray = sorted(f"{c.__module__}.{c.__qualname__}" for c in ours if c.__module__ != "homelab.errors")
    assert not stray, f"HomelabError subclasses outside homelab/errors.py: {stray}"
    public = {c.__name__ for c in ours if not c.__name__.startswith("_")}
    assert public <= set(errors.__all__)


def test_the_drawn_tree_is_the_class_tree_with_the_cli_exit_codes() -> None:
    assert errors.__doc__ is not None
    drawn: dict[str, tuple[str, int]] = {}
    parents = ["HomelabError"]
    for line in errors.__doc__.splitlines():
        match = _DRAWN.match(line)
        if match is None:
            continue
        depth = len(match["branch"]) // 4
        del parents[depth:]
        drawn[match["name"]] = (parents[-1], int(match["code"]))
        parents.append(match["name"])
    classes = {
        name: cls
        for name in errors.__all__
        if isinstance(cls := getattr(errors, name), type) and issubclass(cls, HomelabError) and cls is not HomelabError
    }
    assert set(drawn) == set(classes), "the docstring draws other classes than the module defines"
    for name, (parent, code) in drawn.items():
        cls = classes[name]
        homelab_bases = [b.__name__ for b in cls.__bases__ if issubclass(b, HomelabError)]
        assert homelab_bases == [parent], f"{name} is drawn under {parent}, defined under {homelab_bases}"
        assert _code_of(cls) == code, f"{name}: drawn with exit {code}, the CLI gives {_code_of(cls)}"


def _code_of(cls: type[HomelabError]) -> int:
    """The exit code the CLI's handler gives an instance (built without running its __init__)."""
    return exit_code(cls.__new__(cls))


def _one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert "Traceback" not in stderr
    assert len(lines) == 1, stderr
    assert lines[0].startswith("✗ "), stderr
    return lines[0]


def test_bad_input_is_one_line_and_exit_2(tmp_path: Path) -> None:
    not_gguf = tmp_path / "model.gguf"
    not_gguf.write_bytes(b"not a GGUF file at all")
    result = CliRunner().invoke(app, ["plan", "estimate", str(not_gguf)], env={"NO_COLOR": "1", "COLUMNS": "300"})
    assert result.exit_code == EXIT_INVALID, result.output
    assert str(not_gguf) in _one_error_line(result.stderr)


def test_a_cluster_file_error_lists_each_problem_and_exits_2(tmp_path: Path) -> None:
    config = tmp_path / "litellm.yaml"
    config.write_text("model_list:\n  - model_name: a\n  - model_name: b\n")
    result = CliRunner().invoke(app, ["gateway", "import", str(config)], env={"NO_COLOR": "1", "COLUMNS": "300"})
    assert result.exit_code == EXIT_INVALID, result.output
    lines = result.stderr.splitlines()
    assert len(lines) >= 2 and all(line.startswith("✗ ") and str(config) in line for line in lines), result.stderr
    assert "Traceback" not in result.output


def test_a_system_that_fails_is_one_line_and_exit_1(tmp_path: Path) -> None:
    """A worker without a server to join: StackError before anything starts, through the console script."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")} | {
        "NO_COLOR": "1",
        "COLUMNS": "300",
        "HOME": str(tmp_path),
    }
    result = subprocess.run(
        [str(HOMELAB), "up", "--worker-only", "--state-dir", str(tmp_path / "state")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == EXIT_FAILED, result.stderr
    errors_shown = [line for line in result.stderr.splitlines() if line.startswith("✗ ")]
    assert errors_shown == ["✗ --worker-only needs a Prefect server: set PREFECT_API_URL to the main machine's API"]
    assert "Traceback" not in result.stderr
