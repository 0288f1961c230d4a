"""Parts of `homelab demo` that the end-to-end test cannot reach cheaply: build progress, the process table, wake errors."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from homelab.demo.cluster import DemoError, prepare_demo, wake_server
from homelab.demo.llama_build import BuildFailed, BuildLine, llama_server_binary
from homelab.demo.processes import ProcessTable
from homelab.stack.processes import is_alive

# What build-llama-server.sh shows on stderr during a first build, and its one stdout line.
_FAKE_BUILD = """#!/usr/bin/env bash
echo "-- Configuring done" >&2
echo "[  3%] Building C object ggml/src/CMakeFiles/ggml-base.dir/ggml.c.o" >&2
echo "[ 51%] Building CXX object tools/server/CMakeFiles/llama-server.dir/server.cpp.o" >&2
echo "[100%] Linking CXX executable bin/llama-server" >&2
echo "{binary}"
"""


def test_a_first_build_reports_each_line_with_its_percentage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LLAMA_SERVER", raising=False)
    script = tmp_path / "build.sh"
    script.write_text(_FAKE_BUILD.format(binary="/bin/true"))
    lines: list[BuildLine] = []
    assert llama_server_binary(lines.append, script=script) == Path("/bin/true")
    assert [line.percent for line in lines] == [None, 3, 51, 100]
    assert lines[-1].text.endswith("bin/llama-server")


def test_a_failed_build_says_how_it_ended(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LLAMA_SERVER", raising=False)
    script = tmp_path / "build.sh"
    script.write_text("echo 'cmake: no C compiler found' >&2\nexit 3\n")
    with pytest.raises(BuildFailed, match="exited 3:\ncmake: no C compiler found"):
        llama_server_binary(script=script)


def test_llama_server_from_the_environment_needs_no_build(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LLAMA_SERVER", "/bin/true")
    assert llama_server_binary(script=tmp_path / "absent.sh") == Path("/bin/true")


def test_process_table_stops_what_it_started_and_only_that(tmp_path: Path) -> None:
    table = ProcessTable(tmp_path)
    argv = [sys.executable, "-c", "import time; print('up', flush=True); time.sleep(60)"]
    first = table.start("sleeper", argv, env=dict(os.environ), cwd=tmp_path)
    other = table.start("other", argv, env=dict(os.environ), cwd=tmp_path)
    # Starting a name again replaces the running process of that name.
    second = table.start("sleeper", argv, env=dict(os.environ), cwd=tmp_path)
    assert not is_alive(first) and is_alive(second)
    assert [r.role for r in table.running()] == ["other", "sleeper"]
    assert [r.pid for r in table.stop(["sleeper"])] == [second.pid]
    assert not is_alive(second) and is_alive(other)
    assert [r.role for r in table.stop()] == ["other"]
    assert table.records() == [] and not is_alive(other)


def test_wake_refuses_what_it_cannot_wake(tmp_path: Path) -> None:
    with pytest.raises(DemoError, match="no demo in"):
        wake_server(tmp_path, "nas")
    prepare_demo(tmp_path, Path("/bin/true"), None)
    with pytest.raises(DemoError, match="wakes only node nas, not 'desk'"):
        wake_server(tmp_path, "desk")
