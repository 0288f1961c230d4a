"""`up` and `down`: the Prefect side of homelab running on this machine, and stopped again.

`up` is idempotent. With no Prefect API configured (PREFECT_API_URL in the environment, the
active profile, prefect.toml or .env) it starts the embedded server on 127.0.0.1 with SQLite in
the state directory, or reuses the one this state directory started; with one configured it
starts no server. Then it registers the blocks, creates the `homelab` process pool, deploys
prefect.yaml fitted to the cluster file (deploy_config.py), keeps the alert automations in step
with the cluster file's `notify:` (alerts.py), and starts a worker, or keeps the one running.
Every pid it starts is recorded in the state directory, and `down` stops those process groups
(after checking each is still the process we started), nothing else.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field

import homelab
from homelab.errors import StackError
from homelab.inventory import load_inventory
from homelab_app.stack.alerts import AlertSync, sync_alerts
from homelab_app.stack.deploy_config import RECOVER_DEPLOYMENT, fit_to_inventory, load_deploy_config
from homelab_app.stack.prefect_api import (
    DeployedDeployment,
    api_healthy,
    configured_api_url,
    delete_deployment,
    deployments,
    ensure_work_pool,
    open_client,
    register_blocks,
)
from homelab_app.stack.prefect_cli import deploy_all, use_prefect_env
from homelab_app.stack.processes import ProcessRecord, is_alive, stop
from homelab_app.stack.services import LOOPBACK, start_server, start_worker, ui_url_of
from homelab_app.stack.state import StackState, load_state, locked, save_state

__all__ = [
    "DEFAULT_PORT",
    "DEFAULT_STACK_TIMEOUTS",
    "PROJECT_DIR",
    "StackOptions",
    "StackStatus",
    "StackTimeouts",
    "StopReport",
    "down",
    "up",
]

DEFAULT_PORT = 4200  # Prefect's own default, so `prefect` commands and docs line up
# The checkout: deployments run the flows from here (an editable install of this repository).
PROJECT_DIR = Path(homelab.__file__).resolve().parents[1]

Progress = Callable[[str], None]


class StackTimeouts(BaseModel):
    """How long `up` and `down` wait; two busy cores need a minute for a fresh server."""

    model_config = ConfigDict(frozen=True)

    server_start_s: float = Field(180.0, gt=0, description="until /api/health answers")
    worker_start_s: float = Field(90.0, gt=0, description="until the pool lists the worker online")
    command_s: float = Field(300.0, gt=0, description="for `prefect deploy` (it imports every flow)")
    stop_s: float = Field(20.0, gt=0, description="after SIGTERM, before SIGKILL")


DEFAULT_STACK_TIMEOUTS = StackTimeouts()


class StackOptions(BaseModel):
    """What to bring up, and where.

    Attributes:
        workdir: relative paths start here; the default state directory is `workdir/.homelab`.
        state_dir: where the pids, logs and the embedded server's database live.
        inventory: the cluster file the deployments read (default `workdir/cluster.yaml` if it
            exists); with one, recovery gets a deployment and a work queue per node.
        port: of the embedded server on 127.0.0.1.
        queues: the worker's work queues; empty means every queue of the pool.
        worker_only: start only a worker against the configured server (another node's `up`).
        worker_name: default `homelab-HOST[-QUEUES]`.
        project_dir: the checkout holding prefect.yaml and the flows.
    """

    model_config = ConfigDict(frozen=True)

    workdir: Path = Field(default_factory=Path.cwd)
    state_dir: Path | None = None
    inventory: Path | None = None
    port: int = Field(DEFAULT_PORT, gt=0, lt=65536)
    queues: tuple[str, ...] = ()
    worker_only: bool = False
    worker_name: str | None = None
    project_dir: Path = PROJECT_DIR
    timeouts: StackTimeouts = DEFAULT_STACK_TIMEOUTS

    def resolved_state_dir(self) -> Path:
        return (self.workdir / (self.state_dir or ".homelab")).resolve()

    def resolved_inventory(self) -> Path | None:
        if self.inventory is not None:
            return (self.workdir / self.inventory).resolve()
        default = self.workdir / "cluster.yaml"
        return default.resolve() if default.exists() else None

    def resolved_worker_name(self) -> str:
        return self.worker_name or "-".join(["homelab", socket.gethostname(), *self.queues])


class StackStatus(BaseModel):
    """What `up` left running: where the UI is, the processes, the deployments."""

    api_url: str
    ui_url: str
    embedded: bool
    state_dir: Path
    inventory: Path | None
    server: ProcessRecord | None
    worker: ProcessRecord
    started: list[str] = Field(description="roles started by this call: server, worker")
    reused: list[str] = Field(description="roles found running and kept")
    deployments: list[DeployedDeployment]
    alerts: AlertSync | None = Field(None, description="the alert automations kept from the cluster file's notify:")


class StopReport(BaseModel):
    """What `down` did: processes stopped, and recorded ones that were no longer running."""

    stopped: list[ProcessRecord]
    not_running: list[ProcessRecord]


def _quiet(_: str) -> None:
    pass


def up(
    options: StackOptions | None = None,
    progress: Progress = _quiet,
    before_deploy: Callable[[str], None] | None = None,
) -> StackStatus:
    """Bring the stack up (or find it up) and return where it is.

    Args:
        options: what and where; the defaults bring up everything for the working directory.
        progress: told, in a few words, each slow step as it starts.
        before_deploy: called with the API URL once it answers, before anything is deployed and
            before the worker starts (the demo saves its alert block there, for the automations).

    Raises:
        StackError: a port is taken, the server or worker did not start (with its log tail),
            `prefect deploy` or a call to the API failed, or the configured API does not answer.
        InventoryError: the cluster file is invalid (DeployConfigError: prefect.yaml is).
    """
    options = options or StackOptions()
    state_dir = options.resolved_state_dir()
    with locked(state_dir):
        state = load_state(state_dir)
        started: list[str] = []
        reused: list[str] = []
        # A broken prefect.yaml or cluster file fails before anything is started.
        config = None if options.worker_only else _deploy_config(options)
        # Before anything imports Prefect here; the server, `prefect deploy` and the worker inherit it.
        use_prefect_env(state_dir / "prefect")
        api_url, embedded = _ensure_api(options, state, state_dir, progress, started, reused)
        env = _child_env(api_url, state_dir, embedded)
        if before_deploy is not None:
            before_deploy(api_url)
        deployed = [] if config is None else _deploy(config, options, api_url, env, state_dir, progress)
        alerts = None if config is None else _sync_alerts(options, api_url, progress)
        worker = _ensure_worker(options, state, state_dir, api_url, env, progress, started, reused)
        return StackStatus(
            api_url=api_url,
            ui_url=ui_url_of(api_url),
            embedded=embedded,
            state_dir=state_dir,
            inventory=None if config is None else options.resolved_inventory(),
            server=state.server,
            worker=worker,
            started=started,
            reused=reused,
            deployments=deployed,
            alerts=alerts,
        )


def _ensure_api(
    options: StackOptions, state: StackState, state_dir: Path, progress: Progress, started: list[str], reused: list[str]
) -> tuple[str, bool]:
    """The API to use, and whether it is our embedded server (started now or found running)."""
    ours = state.server is not None and is_alive(state.server) and state.api_url is not None
    progress("reading the Prefect settings")
    configured = os.environ.get("PREFECT_API_URL") or configured_api_url(options.workdir)
    if ours and state.api_url is not None and configured in (None, state.api_url):
        reused.append("server")
        return state.api_url, True
    if ours:
        raise StackError(
            f"this state directory runs a Prefect server at {state.api_url}, but PREFECT_API_URL is "
            f"{configured}; run `homelab down` first, or unset PREFECT_API_URL"
        )
    if configured is not None:
        if not api_healthy(configured):
            raise StackError(f"the configured Prefect API {configured} does not answer {configured}/health")
        state.api_url, state.server = configured, None
        save_state(state_dir, state)
        return configured, False
    if options.worker_only:
        raise StackError("--worker-only needs a Prefect server: set PREFECT_API_URL to the main machine's API")
    home = state_dir / "prefect"
    progress(f"starting the Prefect server on {LOOPBACK}:{options.port} (database in {home})")
    api_url = f"http://{LOOPBACK}:{options.port}/api"

    def record(server: ProcessRecord) -> None:
        state.api_url, state.server = api_url, server
        save_state(state_dir, state)

    start_server(options.port, home, os.environ, state_dir / "server.log", options.timeouts.server_start_s, record)
    started.append("server")
    return api_url, True


def _child_env(api_url: str, state_dir: Path, embedded: bool) -> dict[str, str]:
    env = {**os.environ, "PREFECT_API_URL": api_url}
    if embedded:
        # The embedded stack keeps its Prefect home (profiles, local storage) apart from ~/.prefect.
        env["PREFECT_HOME"] = str(state_dir / "prefect")
    return env


def _deploy_config(options: StackOptions) -> dict[str, Any]:
    config = load_deploy_config(options.project_dir / "prefect.yaml")
    inventory_path = options.resolved_inventory()
    if inventory_path is not None:
        config = fit_to_inventory(config, inventory_path, load_inventory(inventory_path))
    return config


@contextmanager
def _api_errors(api_url: str) -> Iterator[None]:
    """Prefect's client errors, once its retries are spent, as a StackError (the call's URL is in the message)."""
    import httpx
    from prefect.exceptions import PrefectException

    try:
        yield
    except (httpx.HTTPError, PrefectException) as exc:
        raise StackError(f"the Prefect API {api_url} failed a call: {exc}") from exc


def _deploy(
    config: dict[str, Any],
    options: StackOptions,
    api_url: str,
    env: dict[str, str],
    state_dir: Path,
    progress: Progress,
) -> list[DeployedDeployment]:
    """Blocks, pool, deployments; then drop recovery deployments this deploy no longer has."""
    prefect_file = state_dir / "prefect.yaml"
    prefect_file.write_text(yaml.safe_dump(config, sort_keys=False))
    with _api_errors(api_url), open_client(api_url) as client:
        progress("registering the blocks")
        register_blocks()
        progress("creating the homelab work pool")
        ensure_work_pool(client)
        progress(f"deploying {len(config['deployments'])} deployments (imports every flow)")
        deploy_all(prefect_file, env, options.project_dir, state_dir / "deploy.log", options.timeouts.command_s)
        wanted = {d["name"] for d in config["deployments"]}
        deployed = deployments(client)
        # A per-node deployment of a node gone from the inventory, or the catch-all one after
        # per-node ones replaced it, would start a second recovery for the same event.
        for stale in (d for d in deployed if d.flow == RECOVER_DEPLOYMENT and d.name not in wanted):
            progress(f"removing the stale deployment {stale.flow}/{stale.name}")
            delete_deployment(client, stale.id)
    return [d for d in deployed if not (d.flow == RECOVER_DEPLOYMENT and d.name not in wanted)]


def _sync_alerts(options: StackOptions, api_url: str, progress: Progress) -> AlertSync | None:
    """The alert automations of the cluster file's `notify:` (none without one); None without a cluster file."""
    path = options.resolved_inventory()
    if path is None:
        return None
    progress("keeping the alert automations in step with notify:")
    with _api_errors(api_url), open_client(api_url) as client:
        return sync_alerts(client, load_inventory(path).notify, str(path))


def _ensure_worker(
    options: StackOptions,
    state: StackState,
    state_dir: Path,
    api_url: str,
    env: dict[str, str],
    progress: Progress,
    started: list[str],
    reused: list[str],
) -> ProcessRecord:
    queues = list(options.queues)
    if state.worker is not None and is_alive(state.worker):
        if state.worker_api_url == api_url and state.worker_queues == queues:
            reused.append("worker")
            return state.worker
        progress("stopping the worker that serves other queues or another server")
        stop(state.worker, options.timeouts.stop_s)
    name = options.resolved_worker_name()
    progress(f"starting the worker {name}")

    def record(worker: ProcessRecord) -> None:
        state.worker, state.worker_api_url, state.worker_queues = worker, api_url, queues
        save_state(state_dir, state)

    worker = start_worker(
        api_url,
        name,
        queues,
        env,
        options.project_dir,
        state_dir / "worker.log",
        options.timeouts.worker_start_s,
        record,
    )
    started.append("worker")
    return worker


def down(state_dir: Path | str = ".homelab", timeout_s: float = DEFAULT_STACK_TIMEOUTS.stop_s) -> StopReport:
    """Stop what `up` started from `state_dir`: the worker, then the server. The database stays."""
    state_dir = Path(state_dir).resolve()
    with locked(state_dir):
        state = load_state(state_dir)
        report = StopReport(stopped=[], not_running=[])
        for record in (state.worker, state.server):
            if record is None:
                continue
            (report.stopped if stop(record, timeout_s) else report.not_running).append(record)
        state.worker = state.server = state.worker_api_url = None
        state.worker_queues = []
        save_state(state_dir, state)
        return report
