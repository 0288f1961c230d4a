"""The import boundaries of #18: the core stays plain Python with a declared surface, and the
`homelab` command loads no heavy library before a command runs (so `--help` starts in a blink)."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import homelab
from homelab.docker_ops.helper import HelperSettings
from homelab_app.cli import app
from homelab_app.stack import DEFAULT_PORT

CORE_MODULES = sorted(m.name for m in pkgutil.walk_packages(homelab.__path__, "homelab."))


# Packages the core never imports: the Prefect layer's, the application's and the CLI's.
APP_LAYER = ("prefect", "typer", "rich", "homelab_app")
# What `homelab --help` must not load: each takes 0.05-0.3 s to import.
HEAVY = ("prefect", "docker", "paramiko", "numpy", "sqlalchemy", "pandas")


def _loaded_in_fresh_interpreter(code: str) -> dict[str, list[str]]:
    """Run `code` in a new interpreter; it prints a JSON object of findings."""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    found: dict[str, list[str]] = json.loads(result.stdout)
    return found


def test_each_core_module_imports_no_app_layer() -> None:
    """Each module imported in turn in one fresh interpreter; what it pulled in is charged to it.

    httpx is imported first: its own command line (`httpx._main`) imports rich when rich is
    installed, which is httpx's doing, not homelab's. The test below reads the sources for that.
    """
    code = (
        "import importlib, json, sys\n"
        "import httpx\n"
        f"banned = {APP_LAYER!r}\n"
        "def loaded():\n"
        "    return {m for m in sys.modules if m.split('.')[0] in banned}\n"
        "found = {}\n"
        f"for name in {CORE_MODULES!r}:\n"
        "    before = loaded()\n"
        "    importlib.import_module(name)\n"
        "    if new := loaded() - before:\n"
        "        found[name] = sorted({m.split('.')[0] for m in new})\n"
        "print(json.dumps(found))\n"
    )
    found = _loaded_in_fresh_interpreter(code)
    assert found == {}, f"core modules that import the app layer: {found}"


def test_no_core_module_imports_the_app_layer_even_inside_a_function() -> None:
    """Read from the sources: an import inside a function runs only when it is called."""
    found = []
    for name in CORE_MODULES:
        spec = importlib.util.find_spec(name)
        assert spec is not None and spec.origin is not None
        tree = ast.parse(Path(spec.origin).read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module is not None:
                targets = [node.module]
            else:
                continue
            found += [f"{name}:{node.lineno} {t}" for t in targets if t.split(".")[0] in APP_LAYER]
    assert not found, found


def test_the_cli_builds_every_command_without_heavy_libraries() -> None:
    """Importing the app and building every command's options (what --help does) loads none of them."""
    code = (
        "import json, sys\n"
        "import typer.main\n"
        "from homelab_app.cli import app\n"
        "typer.main.get_command(app)\n"
        f"heavy = {HEAVY!r}\n"
        "print(json.dumps({'loaded': sorted({m.split('.')[0] for m in sys.modules} & set(heavy))}))\n"
    )
    assert _loaded_in_fresh_interpreter(code) == {"loaded": []}


@pytest.mark.parametrize(
    ("command", "default"),
    [(["up", "--help"], f"[default: {DEFAULT_PORT}]"), (["rollout", "--help"], f"[default: {HelperSettings().image}]")],
)
def test_defaults_written_in_help_are_the_cores(command: list[str], default: str) -> None:
    """Two defaults are written out in their help (their modules load only when the command runs)."""
    result = CliRunner().invoke(app, command, env={"NO_COLOR": "1", "COLUMNS": "300"})
    assert result.exit_code == 0, result.output
    assert default in " ".join(result.output.split()), result.output


def test_every_core_module_declares_its_exports() -> None:
    for name in CORE_MODULES:
        module = importlib.import_module(name)
        exported = getattr(module, "__all__", None)
        assert exported is not None, f"{name} has no __all__"
        missing = [attr for attr in exported if not hasattr(module, attr)]
        assert not missing, f"{name}.__all__ names what it does not define: {missing}"
