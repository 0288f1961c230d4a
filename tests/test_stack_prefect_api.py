"""The stack's in-process Prefect calls against real HTTP servers: readiness probes and the configured API.

What `homelab up` once asked of `python -c` children and `curl`-like GETs it now asks of
Prefect's own client in its own process; these are the answers that decide whether it starts a
server, waits for one, or names what holds its port.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from homelab_app.stack.prefect_api import api_healthy, configured_api_url, worker_online
from tests.fixtures.fault_servers import FaultServer, Handler, Route, canned, json_route

StartServer = Callable[[Handler], FaultServer]

_POOL_ID = "9e0c0b7a-0000-4000-8000-000000000001"
_WORKERS = "/api/work_pools/homelab/workers/filter"
# What Prefect's server answers a client's CSRF token question before its first POST, unless
# the server's CSRF protection is on (it is off by default).
_NO_CSRF = Route(422, b'{"detail": "CSRF protection is disabled."}')


@pytest.mark.parametrize(
    ("route", "healthy"),
    [
        pytest.param(json_route(True), True, id="prefect-true"),
        pytest.param(Route(401, b'{"detail": "Unauthorized"}'), True, id="behind-basic-auth"),
        pytest.param(json_route(False), False, id="prefect-false"),
        pytest.param(Route(200, b"<html>a router's page</html>", "text/html"), False, id="another-program"),
        pytest.param(Route(404, b"404 page not found", "text/plain"), False, id="no-health-path"),
    ],
)
def test_health_is_prefects_true_or_a_door_locked_by_auth(
    route: Route, healthy: bool, fault_server: StartServer
) -> None:
    server = fault_server(canned({"/api/health": route}))
    assert api_healthy(f"{server.url}/api") is healthy
    assert server.connections == 1  # a probe asks once: no retries, whatever the answer


def test_nothing_listening_is_not_healthy(fault_server: StartServer) -> None:
    server = fault_server(canned({}))
    url = server.url
    server.stop()
    assert api_healthy(f"{url}/api") is False


def _worker(name: str, status: str) -> dict[str, str]:
    return {"name": name, "status": status, "work_pool_id": _POOL_ID}


@pytest.mark.parametrize(
    ("route", "online"),
    [
        pytest.param(json_route([_worker("other", "ONLINE"), _worker("w1", "ONLINE")]), True, id="listed-online"),
        pytest.param(json_route([_worker("w1", "OFFLINE")]), False, id="listed-offline"),
        pytest.param(json_route([_worker("other", "ONLINE")]), False, id="not-listed"),
        pytest.param(Route(404, b'{"detail": "Work pool not found."}'), False, id="no-pool-yet"),
        pytest.param(Route(503, b'{"detail": "busy"}'), False, id="busy"),
    ],
)
def test_a_worker_is_online_when_its_pool_lists_it_so(route: Route, online: bool, fault_server: StartServer) -> None:
    server = fault_server(canned({_WORKERS: route, "/api/csrf-token": _NO_CSRF}))
    assert worker_online(f"{server.url}/api", "w1") is online
    assert server.connections == 2  # the token question, then the pool's workers once: no retries


def _no_prefect_settings(monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    for name in [n for n in os.environ if n.startswith("PREFECT_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("PREFECT_HOME", str(home))


def test_the_configured_api_is_read_from_the_stacks_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """prefect.toml and .env count where `up` works, not where this process happens to be."""
    _no_prefect_settings(monkeypatch, tmp_path / "home")
    workdir = tmp_path / "cluster"
    workdir.mkdir()
    (workdir / "prefect.toml").write_text('[api]\nurl = "http://127.0.0.1:9/api"\n')
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / ".env").write_text("PREFECT_API_URL=http://127.0.0.1:8/api\n")
    monkeypatch.chdir(elsewhere)
    assert configured_api_url(workdir) == "http://127.0.0.1:9/api"
    assert configured_api_url(elsewhere) == "http://127.0.0.1:8/api"
    assert configured_api_url(tmp_path) is None
    assert Path.cwd() == elsewhere


def test_the_environment_wins_over_the_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _no_prefect_settings(monkeypatch, tmp_path / "home")
    (tmp_path / "prefect.toml").write_text('[api]\nurl = "http://127.0.0.1:9/api"\n')
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:7/api")
    assert configured_api_url(tmp_path) == "http://127.0.0.1:7/api"
