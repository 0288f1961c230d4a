"""Parts of `homelab demo` that the end-to-end test cannot reach cheaply: build progress, the process table,
wake errors, a busy Prefect API."""

from __future__ import annotations

import itertools
import json
import os
import socket
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from prefect.settings import PREFECT_CLIENT_MAX_RETRIES, temporary_settings

from homelab.errors import BuildFailed, DemoError, PrefectApiError
from homelab_app.demo.cluster import prepare_demo, wake_server
from homelab_app.demo.llama_build import BuildLine, llama_server_binary
from homelab_app.demo.processes import ProcessTable
from homelab_app.demo.runs import open_api
from homelab_app.stack.processes import is_alive
from tests.fixtures.fault_servers import FaultServer, Handler, Route, canned, http_response, json_route, reset

StartServer = Callable[[Handler], FaultServer]

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


_RUN_ID = "7c1a1f0e-0000-4000-8000-000000000001"
_RUN = {
    "id": _RUN_ID,
    "name": "able-fox",
    "flow_id": "7c1a1f0e-0000-4000-8000-000000000002",
    "state": {"type": "COMPLETED", "name": "Completed"},
    "created": "2026-01-01T00:00:00Z",
}
_ANSWER = canned({f"/api/flow_runs/{_RUN_ID}": json_route(_RUN)})


def _answer(status: int) -> Handler:
    """What a Prefect server under load answers (on busy SQLite "database is locked" becomes 503).
    Retry-After 0 keeps the test fast; Prefect's client honours it."""
    busy = http_response(Route(status, json.dumps({"detail": "busy"}).encode(), headers={"Retry-After": "0"}))

    def handle(conn: socket.socket, server: FaultServer) -> None:
        server.read_request(conn)
        server.send(conn, busy)

    return handle


def _in_turn(faults: list[Handler]) -> Handler:
    """One good answer (the client has connected once), then a connection per fault, then good answers."""
    seen = itertools.count()

    def handle(conn: socket.socket, server: FaultServer) -> None:
        turn = next(seen)
        (faults[turn - 1] if 0 < turn <= len(faults) else _ANSWER)(conn, server)

    return handle


@pytest.mark.parametrize(
    "faults",
    [
        pytest.param([_answer(503)] * 3, id="503-three-times"),
        pytest.param([_answer(429)], id="429"),
        pytest.param([_answer(502), _answer(503)], id="502-then-503"),
        pytest.param([reset, reset], id="connection-reset-twice"),
    ],
)
def test_the_demo_rides_out_a_busy_prefect_api(faults: list[Handler], fault_server: StartServer) -> None:
    server = fault_server(_in_turn(faults))
    with open_api(f"{server.url}/api") as api:
        runs = [api.flow_run(_RUN_ID), api.flow_run(_RUN_ID)]
    assert [(r.name, r.state_type) for r in runs] == [("able-fox", "COMPLETED")] * 2
    assert server.connections == 2 + len(faults)


def test_a_prefect_api_busy_for_good_is_an_error_naming_the_call(fault_server: StartServer) -> None:
    server = fault_server(_answer(503))
    named = f"reading flow run {_RUN_ID} at {server.url}/api/: HTTP 503"
    with (
        temporary_settings({PREFECT_CLIENT_MAX_RETRIES: 2}),
        open_api(f"{server.url}/api") as api,
        pytest.raises(PrefectApiError, match=named),
    ):
        api.flow_run(_RUN_ID)
    assert server.connections == 3  # the first try and two retries, then it gives up
