"""The demo's tour once the cluster and Prefect run: a sweep, a route, a plan, the recovery, a report.

Each step is what a user would do by hand, through the same doors: the sweep and the report
are runs of their deployments, picked up by the worker `homelab up` started; the recovery is
the run Prefect's automation starts on the sweep's `homelab.node.down` event (nothing here
starts it); the route and the plan are the `homelab route` and `homelab plan` commands. The
results come back as one `DemoSummary`, which `homelab demo --json` prints.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from homelab.errors import TourError
from homelab.health.probe import ProbeResult
from homelab.health.sweep import Prognosis
from homelab.history import open_history
from homelab.inventory import Inventory
from homelab.router import Decision
from homelab_app.demo.cluster import stop_demo
from homelab_app.demo.layout import DOWN_NODE, HISTORY_FILE, ROUTE_PROMPT, free_port
from homelab_app.demo.receiver import Message
from homelab_app.demo.runs import Artifact, FlowRun, PrefectApi
from homelab_app.stack import (
    DEFAULT_PORT,
    OFFLINE_ENV,
    StackOptions,
    StackStatus,
    StopReport,
    down,
    recover_deployment_name,
    up,
)
from homelab_app.stack.processes import ProcessRecord
from homelab_app.stack.services import port_free

__all__ = [
    "CommandStep",
    "DemoSummary",
    "PlanStep",
    "RouteStep",
    "RunStep",
    "Server",
    "SweepStep",
    "TourTimeouts",
    "bring_up_prefect",
    "cli_argv",
    "run_plan",
    "run_report",
    "run_route",
    "run_sweep",
    "stack_dir",
    "start_afresh",
    "take_down_prefect",
    "wait_recovery",
]

Progress = Callable[[str], None]


class TourTimeouts(BaseModel):
    """How long each run may take, from creation to its end (the worker polls, then starts a process)."""

    model_config = ConfigDict(frozen=True)

    sweep_s: float = 240.0
    recovery_s: float = 240.0
    report_s: float = 240.0
    command_s: float = 120.0


class RunStep(BaseModel):
    """A flow run the tour started or waited for, with where to see it."""

    flow_run: FlowRun
    url: str
    artifacts: list[Artifact] = Field(default_factory=list)
    artifact_urls: dict[str, str] = Field(default_factory=dict, description="artifact key -> its page")


class SweepStep(RunStep):
    """The sweep's run, and its findings as the history stored them."""

    prognosis: Prognosis
    reasons: list[str]
    endpoints: list[ProbeResult]


class CommandStep(BaseModel):
    """A `homelab` command the tour ran, as the user would type it, and its JSON answer."""

    command: str
    exit_code: int


class RouteStep(CommandStep):
    decision: Decision


class PlanStep(CommandStep):
    plan: dict[str, Any] = Field(
        description="`homelab plan --json`: GPUs with placements (and their use), CPU-only models"
    )


class Server(BaseModel):
    """A demo server as the summary lists it."""

    endpoint: str
    what: str
    url: str
    pid: int | None = Field(None, description="None while it is down")
    down_on_purpose: bool = False


class DemoSummary(BaseModel):
    """What `homelab demo` did and where to look: printed as a table, or as JSON with --json."""

    folder: Path
    inventory: Path
    ui_url: str
    api_url: str
    deployments_url: str
    servers: list[Server]
    down_node: str
    gateway_url: str | None
    master_key_file: str | None = Field(None, description="the LiteLLM master key's file (mode 0600), never the key")
    sweep: SweepStep
    route: RouteStep
    plan: PlanStep
    recovery: RunStep
    report: RunStep
    alerts: list[Message] = Field(default_factory=list, description="what the demo's alert receiver got")
    alerts_url: str | None = Field(None, description="the receiver's page, while `homelab demo` runs")
    stop_command: str = "homelab demo --stop"


def stack_dir(folder: Path) -> Path:
    """The demo's own Prefect stack state (server database, worker, logs)."""
    return folder / "stack"


def bring_up_prefect(
    folder: Path,
    inventory: Path,
    port: int | None,
    progress: Progress,
    before_deploy: Callable[[str], None] | None = None,
) -> StackStatus:
    """`homelab up` for the demo: its own embedded server (never a configured one), the demo's deployments.

    The demo must not deploy its cluster file onto a Prefect server the user configured for a
    real cluster, so PREFECT_API_URL is dropped and PREFECT_HOME points into the demo's folder
    (this process's environment, which `up` hands to the server and worker). Its worker polls
    every 2 s instead of 10, so the tour's runs start promptly. `before_deploy` is `up`'s.
    """
    home = stack_dir(folder) / "prefect"
    os.environ.pop("PREFECT_API_URL", None)
    os.environ.update({"PREFECT_HOME": str(home), **OFFLINE_ENV})
    os.environ.setdefault("PREFECT_WORKER_QUERY_SECONDS", "2")
    if port is None:
        port = DEFAULT_PORT if port_free(DEFAULT_PORT) else free_port()
    options = StackOptions(workdir=folder, state_dir=stack_dir(folder), inventory=inventory, port=port)
    return up(options, progress, before_deploy)


def take_down_prefect(folder: Path) -> StopReport:
    """Stop the demo's Prefect server and worker (its database stays)."""
    return down(stack_dir(folder))


# SQLite's own companions of the history database, which go with it.
_HISTORY_FILES = (HISTORY_FILE, f"{HISTORY_FILE}-wal", f"{HISTORY_FILE}-shm", f"{HISTORY_FILE}-journal")


def start_afresh(folder: Path) -> list[ProcessRecord]:
    """Stop what an earlier demo in `folder` left running and remove its Prefect database and history.

    An earlier demo, stopped or killed at any point, leaves state that would change this one's
    ending: its cooldown variable and a concurrency slot held by a recovery cut short (this
    demo's recovery would be SKIPPED), scheduled sweeps gone late (run at once by the new
    worker, their recoveries racing this one's), an open incident in the history. All of it is
    the demo's own, so it goes, and a rerun starts as the first run did. Prefect goes first, so
    that no flow run of its worker starts a server after the servers are stopped; each process
    is signalled only if it is still the one recorded (`homelab_app.stack.processes`).

    Returns:
        The processes that were running and are stopped now.
    """
    stack = take_down_prefect(folder)
    servers = stop_demo(folder)
    shutil.rmtree(stack_dir(folder) / "prefect", ignore_errors=True)
    for name in _HISTORY_FILES:
        (folder / name).unlink(missing_ok=True)
    return [*stack.stopped, *servers]


def _run_page(ui_url: str, run: FlowRun) -> str:
    return f"{ui_url}runs/flow-run/{run.id}"


def _with_artifacts(api: PrefectApi, ui_url: str, run: FlowRun) -> RunStep:
    artifacts = api.artifacts(run.id)
    urls = {a.key: f"{ui_url}artifacts/artifact/{a.id}" for a in artifacts if a.key}
    return RunStep(flow_run=run, url=_run_page(ui_url, run), artifacts=artifacts, artifact_urls=urls)


def _finished(api: PrefectApi, run: FlowRun, what: str, timeout_s: float, progress: Progress) -> FlowRun:
    done = api.wait(run.id, timeout_s, lambda r: progress(f"{what}: flow run {r.name} {r.state_name}"))
    if done.state_type != "COMPLETED":
        raise TourError(f"{what}: flow run {done.name} ended {done.state_name}: {done.message or 'no message'}")
    return done


def run_sweep(
    api: PrefectApi, inv: Inventory, folder: Path, ui_url: str, timeouts: TourTimeouts, progress: Progress
) -> SweepStep:
    """Run the health-sweep deployment and read what it stored."""
    run = _finished(api, api.run_deployment("health-sweep", "health-sweep"), "health sweep", timeouts.sweep_s, progress)
    step = _with_artifacts(api, ui_url, run)
    with open_history(inv.history.url, relative_to=folder) as history:
        # The sweep this run stored (a scheduled sweep or a `homelab route` may store others).
        start = (run.start_time or run.created) - timedelta(seconds=1)
        stored = [s for s in history.recent_sweeps(10) if s.started_at.replace(tzinfo=start.tzinfo) >= start]
        if not stored:
            raise TourError(f"health sweep: flow run {run.name} completed but stored no sweep in {inv.history.url}")
        sweep = stored[-1]
        results = history.sweep_results(sweep.id)
    return SweepStep(**step.model_dump(), prognosis=sweep.prognosis, reasons=sweep.reasons, endpoints=results)


def cli_argv(*args: str) -> list[str]:
    """The `homelab` command next to this Python (the console script), with `args`."""
    script = Path(sys.executable).with_name("homelab")
    if script.exists():
        return [str(script), *args]
    return [sys.executable, "-c", "from homelab_app.cli import app; app()", *args]


def _command(args: list[str], timeout_s: float) -> tuple[str, int, str]:
    """Run `homelab ARGS --json`; the command as shown to the user (no --json), its exit code, its stdout."""
    shown = " ".join(["homelab", *(json.dumps(a) if " " in a else a for a in args)])
    try:
        done = subprocess.run(cli_argv(*args, "--json"), capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired as exc:
        raise TourError(f"`{shown}` did not finish in {timeout_s:.0f} s") from exc
    if not done.stdout.strip():
        raise TourError(f"`{shown}` exited {done.returncode} without an answer: {done.stderr[-1500:]}")
    return shown, done.returncode, done.stdout


def run_route(inventory: Path, timeouts: TourTimeouts) -> RouteStep:
    """`homelab route PROMPT -i CLUSTER`: routed on the sweep just stored (fresher than its --ttl)."""
    shown, code, stdout = _command(["route", ROUTE_PROMPT, "-i", str(inventory), "--ttl", "300"], timeouts.command_s)
    return RouteStep(command=shown, exit_code=code, decision=Decision.model_validate_json(stdout))


def run_plan(inventory: Path, timeouts: TourTimeouts) -> PlanStep:
    """`homelab plan -i CLUSTER`: the declared GPU's lineup."""
    shown, code, stdout = _command(["plan", "-i", str(inventory)], timeouts.command_s)
    if code != 0:
        raise TourError(f"`{shown}` exited {code}")
    return PlanStep(command=shown, exit_code=code, plan=json.loads(stdout))


def _acted(run: FlowRun) -> bool:
    """A recovery that did something: not one skipped (lock, cooldown) or one that found the node back."""
    return not any(word in (run.message or "") for word in (": SKIPPED:", ": FLAP:"))


def wait_recovery(api: PrefectApi, since: datetime, ui_url: str, timeouts: TourTimeouts, progress: Progress) -> RunStep:
    """The recovery run that Prefect's automation started for the down node since the demo began.

    Any of them counts, not only the one the tour's sweep caused: a scheduled sweep may have
    reported the node first, and then its recovery woke the node while the tour's was SKIPPED.
    """
    progress(f"recovery: waiting for the run the homelab.node.down event starts for {DOWN_NODE}")
    deployment = api.deployment_id("recover-node", recover_deployment_name(DOWN_NODE))
    run = api.wait_for_automation_run(deployment, since, timeouts.recovery_s, _acted)
    return _with_artifacts(api, ui_url, run)


def run_report(api: PrefectApi, ui_url: str, timeouts: TourTimeouts, progress: Progress) -> RunStep:
    """Run the daily-report deployment (incidents, roll-ups, the health report artifacts)."""
    run = _finished(api, api.run_deployment("daily-report", "daily-report"), "report", timeouts.report_s, progress)
    return _with_artifacts(api, ui_url, run)
