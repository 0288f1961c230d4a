"""`homelab node windows-setup`: the one-time steps for a Windows Docker Desktop node, from the cluster file."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from typer.testing import CliRunner

from homelab.recovery.windows import WINDOWS_RESTART_DOCKER
from homelab_app.cli import app
from tests.inventory_cases import ROOT

THREE_TIER = ROOT / "examples" / "three-tier.yaml"
# The task the restart command runs must be the one the setup creates, in the desktop session.
CREATE_TASK = (
    'schtasks /Create /F /TN homelab-docker-desktop /TR "\\"C:\\Program Files\\Docker\\Docker\\Docker Desktop.exe\\"" '
    "/SC ONLOGON /IT"
)


def _run(*args: str | Path) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


def _windows_file(tmp_path: Path, user: str = "homelab", docker: dict[str, str] | None = None) -> Path:
    node = {"name": "win", "tier": "t", "host": "win.home.arpa", "os": "windows", "ssh": {"user": user, "port": 2222}}
    if docker is not None:
        node["docker"] = docker
    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump({"nodes": [node]}))
    return path


def test_example_windows_node_gets_the_task_and_its_wake() -> None:
    code, stdout, _ = _run("node", "windows-setup", "-i", THREE_TIER, "--node", "mark-ii")
    assert code == 0
    lines = stdout.splitlines()
    assert f"     {CREATE_TASK}" in lines
    assert "homelab-docker-desktop" in WINDOWS_RESTART_DOCKER
    assert "     ssh -p 22 homelab@mark-ii.home.arpa schtasks /Run /TN homelab-docker-desktop" in lines
    assert "(detach: true)" in stdout and "/from-stdin" in stdout


def test_json_lists_the_same_steps() -> None:
    code, stdout, _ = _run("node", "windows-setup", "-i", THREE_TIER, "--node", "mark-ii", "--json")
    assert code == 0
    steps = json.loads(stdout)
    assert [s["commands"] for s in steps if "schtasks /Create" in " ".join(s["commands"])] == [[CREATE_TASK]]
    assert all(set(s) == {"title", "where", "commands", "note"} for s in steps)


def test_node_restart_command_is_said_to_replace_the_task(tmp_path: Path) -> None:
    path = _windows_file(tmp_path, docker={"restart_command": "schtasks /Run /TN my-docker"})
    code, stdout, _ = _run("node", "windows-setup", "-i", path, "--node", "win")
    assert code == 0
    assert "the cluster file's docker.restart_command ('schtasks /Run /TN my-docker') replaces it" in stdout
    assert "ssh -p 2222 homelab@win.home.arpa" in stdout
    assert "give detach: true" not in stdout and "command_secret: NAME, detach: true" in stdout


def test_not_windows_or_not_there_is_exit_2() -> None:
    code, _, stderr = _run("node", "windows-setup", "-i", THREE_TIER, "--node", "mark-i")
    assert code == 2
    assert "node mark-i is os: linux; the Windows setup is for os: windows nodes" in stderr
    code, _, stderr = _run("node", "windows-setup", "-i", THREE_TIER, "--node", "nope")
    assert code == 2
    assert "no node named 'nope' (nodes: mark-i, mark-ii, nas)" in stderr


def test_control_characters_from_the_file_are_not_sent_to_the_terminal(tmp_path: Path) -> None:
    code, stdout, _ = _run("node", "windows-setup", "-i", _windows_file(tmp_path, user="ops\x1b[2J"), "--node", "win")
    assert code == 0
    assert "\x1b" not in stdout and "ops\\x1b[2J" in stdout
