"""Starting the embedded Prefect server and a worker, and knowing when each is ready.

Readiness is asked of the API through Prefect's client, not guessed from log lines: the server
is ready when `/api/health` answers true, a worker when the pool lists it ONLINE (it heartbeats
on start). A process that exits while we wait is reported with the tail of its log.
"""

from __future__ import annotations

import errno
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from homelab.errors import StackError
from homelab_app.stack.deploy_config import WORK_POOL
from homelab_app.stack.prefect_api import api_healthy, worker_online
from homelab_app.stack.prefect_cli import OFFLINE_ENV, PREFECT
from homelab_app.stack.processes import ProcessRecord, is_alive, log_tail, spawn, stop

__all__ = ["LOOPBACK", "check_port_free", "port_free", "start_server", "start_worker", "ui_url_of"]

# The embedded server serves this machine only; other machines use a server of their own
# choosing (docs/scale-out.md).
LOOPBACK = "127.0.0.1"
_POLL_S = 0.25
# Told a process's record as soon as it is spawned, before its readiness wait.
OnSpawn = Callable[[ProcessRecord], None]


def ui_url_of(api_url: str) -> str:
    return api_url.removesuffix("/").removesuffix("/api") + "/"


def _bind_error(port: int) -> OSError | None:
    """Why a server could not listen on `port` of the loopback address now, or None.

    SO_REUSEADDR as uvicorn binds: a port whose last server stopped a moment ago still has
    connections in TIME_WAIT, which block a plain bind for a minute but not the server's.
    """
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((LOOPBACK, port))
        except OSError as exc:
            return exc
    return None


def port_free(port: int) -> bool:
    """Whether a server could listen on `port` of the loopback address now."""
    return _bind_error(port) is None


def check_port_free(port: int) -> None:
    """Raise a StackError that says what holds `port` on the loopback address, if anything does."""
    exc = _bind_error(port)
    if exc is None:
        return
    if exc.errno != errno.EADDRINUSE:
        raise StackError(f"cannot use port {port} on {LOOPBACK}: {exc.strerror}") from exc
    api_url = f"http://{LOOPBACK}:{port}/api"
    if api_healthy(api_url):
        raise StackError(
            f"a Prefect server that this state directory did not start already answers on {LOOPBACK}:{port}; "
            f"use it with `PREFECT_API_URL={api_url} homelab up`, or choose another --port"
        )
    raise StackError(f"port {port} on {LOOPBACK} is in use by another program; choose another with --port")


def _wait(ready: Callable[[], bool], proc: ProcessRecord, what: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not is_alive(proc):
            raise StackError(f"{what} exited while starting; the end of {proc.log}:\n{log_tail(proc.log)}")
        if ready():
            return
        time.sleep(_POLL_S)
    stop(proc, timeout_s=10.0)
    raise StackError(f"{what} was not ready after {timeout_s:.0f} s; the end of {proc.log}:\n{log_tail(proc.log)}")


def start_server(
    port: int, home: Path, env: Mapping[str, str], log: Path, timeout_s: float, on_spawn: OnSpawn
) -> ProcessRecord:
    """`prefect server start` on the loopback address, its SQLite database under `home`.

    A PostgreSQL URL in PREFECT_SERVER_DATABASE_CONNECTION_URL (or the older
    PREFECT_API_DATABASE_CONNECTION_URL) in `env` is honoured: that is the scale-out server.
    `on_spawn` gets the record before the wait, so that a caller killed while the server
    starts has recorded it, and the next `down` stops it.
    """
    check_port_free(port)
    home.mkdir(parents=True, exist_ok=True)
    server_env = {**env, "PREFECT_HOME": str(home), **OFFLINE_ENV}
    server_env.pop("PREFECT_API_URL", None)
    # Links the server builds (the alert messages' `flow_run|ui_url`) need its UI's address;
    # without an API URL to derive it from, Prefect renders them as None.
    server_env.setdefault("PREFECT_UI_URL", f"http://{LOOPBACK}:{port}")
    argv = [*PREFECT, "server", "start", "--host", LOOPBACK, "--port", str(port), "--analytics-off"]
    proc = spawn("server", argv, server_env, home, log)
    on_spawn(proc)
    api_url = f"http://{LOOPBACK}:{port}/api"
    _wait(lambda: api_healthy(api_url), proc, "the Prefect server", timeout_s)
    return proc


def start_worker(
    api_url: str,
    name: str,
    queues: Sequence[str],
    env: Mapping[str, str],
    cwd: Path,
    log: Path,
    timeout_s: float,
    on_spawn: OnSpawn,
) -> ProcessRecord:
    """A process worker on the `homelab` pool: every queue of it, or only `queues` (`on_spawn` as for the server)."""
    argv = [*PREFECT, "worker", "start", "--pool", WORK_POOL, "--type", "process", "--name", name]
    for queue in queues:
        argv += ["--work-queue", queue]
    worker_env = {"PREFECT_LOGGING_EXTRA_LOGGERS": "homelab", **env, **OFFLINE_ENV}
    proc = spawn("worker", argv, worker_env, cwd, log)
    on_spawn(proc)

    _wait(lambda: worker_online(api_url, name), proc, f"the Prefect worker {name!r}", timeout_s)
    return proc
