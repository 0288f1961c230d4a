"""`homelab demo`: a three-tier cluster on this machine, run by Prefect, one node down on purpose."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from homelab.errors import HomelabError, InventoryError
from homelab_app.cli.common import EXIT_FAILED, EXIT_INVALID, JsonFlag, app, err, out, print_error

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

    from homelab_app.demo.layout import DemoState
    from homelab_app.demo.llama_build import BuildLine
    from homelab_app.demo.receiver import Message
    from homelab_app.demo.tour import DemoSummary, Server

__all__ = ["demo_command"]

GIB = 2**30
ALERTS_WAIT_S = 30.0  # after the tour, for the recovered message (the recovery has ended by then)
_BUILD_NOTE_EVERY = 10  # percent, when stderr is not a terminal


class _Show:
    """Progress on stderr: a line per step, a spinner meanwhile, a bar while llama-server builds."""

    def __init__(self) -> None:
        self.status = err.status("homelab demo")
        self.build: Progress | None = None
        self.task: TaskID | None = None
        self.noted = -_BUILD_NOTE_EVERY

    def __enter__(self) -> _Show:
        self.status.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.status.stop()
        if self.build is not None:
            self.build.stop()

    def step(self, text: str) -> None:
        self.status.update(escape(text))
        err.print(f"[dim]· {escape(text)}[/]", highlight=False, soft_wrap=True)

    def alert(self, message: Message) -> None:
        """What the alert receiver got, as it arrives (called from the receiver's thread)."""
        lines = message.text().splitlines() or [""]
        err.print(f"[bold]alert received[/] {escape(lines[0])}", highlight=False, soft_wrap=True)
        for line in lines[1:]:
            err.print(f"    {escape(line)}", highlight=False, soft_wrap=True)

    def build_line(self, line: BuildLine) -> None:
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        if self.build is None:
            self.status.stop()
            err.print("building llama-server from source once (about 12 minutes on 2 cores; cached afterwards)")
            self.build = Progress(
                TextColumn("llama-server"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                TimeElapsedColumn(), TextColumn("[dim]{task.description}"), console=err, transient=True,
            )  # fmt: skip
            self.task = self.build.add_task("", total=100)
            self.build.start()
        assert self.task is not None
        self.build.update(self.task, description=escape(line.text[-60:]), completed=line.percent or None)
        if not err.is_terminal and line.percent is not None and line.percent >= self.noted + _BUILD_NOTE_EVERY:
            self.noted = line.percent
            err.print(f"building llama-server: {line.percent}%", highlight=False)

    def build_done(self) -> None:
        if self.build is not None:
            self.build.stop()
            self.build = None
            self.status.start()


def _gateway_command(wanted: bool | None) -> Path | None:
    litellm = Path(sys.executable).with_name("litellm")
    if wanted is False:
        return None
    if not litellm.exists():
        if wanted:
            err.print("[red]✗[/] --gateway needs LiteLLM: pip install -e '.[gateway]'", highlight=False)
            raise typer.Exit(EXIT_INVALID)
        return None
    return litellm


def _stop(folder: Path, as_json: bool) -> None:
    from homelab_app.demo.cluster import stop_demo
    from homelab_app.demo.tour import take_down_prefect

    # Prefect first: a recovery still running would otherwise wake a server after the servers stop.
    stack = take_down_prefect(folder)
    servers = stop_demo(folder)
    if as_json:
        stopped = [{"name": r.role, "pid": r.pid} for r in [*servers, *stack.stopped]]
        print(json.dumps({"folder": str(folder), "stopped": stopped}, indent=2))
        return
    for record in [*servers, *stack.stopped]:
        out.print(f"stopped {record.role} (pid {record.pid})", highlight=False)
    if not servers and not stack.stopped:
        out.print(f"no demo runs from {folder}", highlight=False)


def _servers(state: DemoState) -> list[Server]:
    from homelab_app.demo.layout import DemoProcess
    from homelab_app.demo.processes import ProcessTable
    from homelab_app.demo.tour import Server
    from homelab_app.stack.processes import is_alive

    pids = {r.role: r.pid for r in ProcessTable(Path(state.folder)).records() if is_alive(r)}

    def server(p: DemoProcess, down: bool = False) -> Server:
        return Server(endpoint=p.endpoint, what=p.what, url=p.url, pid=pids.get(p.name), down_on_purpose=down)

    return [*(server(p) for p in state.processes), server(state.down, down=True)]


def _tour(state: DemoState, api_url: str, ui_url: str, begun: datetime, show: _Show) -> DemoSummary:
    from homelab.inventory import load_inventory
    from homelab_app.demo.cluster import default_folder
    from homelab_app.demo.runs import open_api
    from homelab_app.demo.tour import (
        DemoSummary,
        TourTimeouts,
        run_plan,
        run_report,
        run_route,
        run_sweep,
        wait_recovery,
    )

    folder, inventory = Path(state.folder), Path(state.inventory)
    inv = load_inventory(inventory)
    timeouts = TourTimeouts()
    with open_api(api_url) as api:
        show.step("health sweep: running the health-sweep deployment on the worker")
        sweep = run_sweep(api, inv, folder, ui_url, timeouts, show.step)
        show.step(f"health sweep: {sweep.prognosis}; routing a request and planning VRAM meanwhile")
        route = run_route(inventory, timeouts)
        plan = run_plan(inventory, timeouts)
        recovery = wait_recovery(api, begun, ui_url, timeouts, show.step)
        show.step(f"recovery: {recovery.flow_run.state_name}; running the daily-report deployment")
        report = run_report(api, ui_url, timeouts, show.step)
    return DemoSummary(
        folder=folder, inventory=inventory, ui_url=ui_url, api_url=api_url, deployments_url=f"{ui_url}deployments",
        servers=_servers(state), down_node=state.down_node, gateway_url=state.gateway_url,
        master_key_file=state.master_key_file, sweep=sweep, route=route, plan=plan, recovery=recovery, report=report,
        stop_command="homelab demo --stop" + ("" if folder == default_folder() else f" --dir {folder}"),
    )  # fmt: skip


@app.command("demo")
def demo_command(
    stop: Annotated[bool, typer.Option("--stop", help="Stop the demo's servers, Prefect server and worker.")] = False,
    folder: Annotated[
        Path | None,
        typer.Option(
            "--dir", envvar="HOMELAB_DEMO_DIR", help="The demo's files [default: ~/.local/state/homelab/demo]."
        ),
    ] = None,
    port: Annotated[
        int | None, typer.Option("--port", help="The Prefect UI's port [default: 4200, else a free one].")
    ] = None,
    gateway: Annotated[
        bool | None, typer.Option("--gateway/--no-gateway", help="Run a LiteLLM proxy [default: when installed].")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Start a demo cluster on 127.0.0.1 and show homelab at work through Prefect; leave it running.

    Three tiers on this machine: real llama.cpp servers with a tiny random-weight model, the
    Ollama stand-in (not Ollama), a LiteLLM proxy when the gateway extra is installed, and a
    `nas` node left down on purpose. Prefect (its own server and worker, as `homelab up`)
    then runs a health sweep (DEGRADED), Prefect's automation starts the recovery of `nas` on
    the sweep's event, `homelab route` and `homelab plan` run, and the daily report follows.
    Everything keeps running for the Prefect UI; `homelab demo --stop` ends it. The first run
    builds llama-server (about 12 minutes on two cores). Exit codes: 0 done; 1 a step failed.
    """
    from homelab_app.demo.alerts import save_demo_block, wait_for_alerts
    from homelab_app.demo.cluster import default_folder, prepare_demo, start_servers, wait_ready
    from homelab_app.demo.llama_build import llama_server_binary
    from homelab_app.demo.receiver import running_receiver
    from homelab_app.demo.tour import bring_up_prefect, start_afresh

    folder = (folder or default_folder()).expanduser().resolve()
    if stop:
        _stop(folder, as_json)
        return
    try:
        with _Show() as show, running_receiver(show.alert) as receiver:
            binary = llama_server_binary(show.build_line)
            show.build_done()
            show.step(f"llama-server: {binary}")
            begun = datetime.now(UTC)
            stopped = start_afresh(folder)
            if stopped:
                show.step(
                    f"stopped the previous demo's {len(stopped)} processes: " + ", ".join(r.role for r in stopped)
                )
            state = prepare_demo(folder, binary, _gateway_command(gateway))
            show.step(f"cluster file: {state.inventory} ({state.down.endpoint} stays down on purpose)")
            started = start_servers(state)
            show.step(f"starting {len(started)} servers: " + ", ".join(p.endpoint for p in state.processes))
            show.step(f"alerts: a webhook block will post to the receiver at {receiver.url}")
            stack = bring_up_prefect(
                folder, Path(state.inventory), port, show.step, lambda api: save_demo_block(api, receiver)
            )
            wait_ready(state, started, lambda p, s: show.step(f"{p.endpoint} serves ({p.what}), after {s:.0f} s"))
            summary = _tour(state, stack.api_url, stack.ui_url, begun, show)
            summary.alerts = wait_for_alerts(receiver, _down_and_back(state.down_node), ALERTS_WAIT_S)
            summary.alerts_url = receiver.url
    except InventoryError:
        raise  # the CLI's handler: each problem, exit 2
    except HomelabError as exc:
        print_error(exc)
        err.print(
            f"What runs is left running for a look; stop it with: homelab demo --stop --dir {folder}", highlight=False
        )
        raise typer.Exit(EXIT_FAILED) from None
    if as_json:
        print(summary.model_dump_json(indent=2))
    else:
        _render(summary)


def _down_and_back(node: str) -> Callable[[list[Message]], bool]:
    """Whether the messages hold the node's down message and its recovered message."""

    def complete(messages: list[Message]) -> bool:
        texts = [m.text() for m in messages]
        return any(f"node {node} is down" in t for t in texts) and any(f"node {node} recovered" in t for t in texts)

    return complete


def _say(text: str = "") -> None:
    out.print(text, highlight=False, soft_wrap=True)


def _render_servers(s: DemoSummary, home: str) -> None:
    _say(f"\n[bold]homelab demo[/]: cluster file {escape(str(s.inventory).replace(home, '~', 1))}\n")
    for srv in s.servers:
        if srv.down_on_purpose:
            state = (
                "[red]down on purpose[/]"
                if srv.pid is None
                else f"[green]down on purpose, woken by the recovery[/] (pid {srv.pid})"
            )
        else:
            state = f"pid {srv.pid}" if srv.pid is not None else "[red]not running[/]"
        _say(f"  {srv.endpoint:<16} {escape(srv.url):<24} {escape(srv.what):<38} {state}")


def _render_plan(plan: dict[str, Any]) -> None:
    for gpu in plan.get("gpus", []):
        parts = [
            f"{p['model']} {p['estimate']['gpu_total_bytes'] / GIB:.1f} GiB "
            + (
                "all layers"
                if p["whole"]
                else f"{p['estimate']['n_gpu_layers']}/{p['estimate']['n_layers_total']} layers"
            )
            for p in gpu["placements"]
        ]
        slot = gpu["slot"]
        where = f"{slot['node']} {slot['name']} ({slot['vram_bytes'] / GIB:.0f} GiB)"
        _say(f"    {escape(where)}: {escape('; '.join(parts))}; {gpu['used_percent']:.0f}% used")
    for cpu in plan.get("cpu_only", []):
        _say(f"    {escape(cpu['model'])}: CPU only ({escape(cpu['reason'])})")
    _say("    (sized from the model names in the cluster file; the demo declares this GPU, it has none)")


def _render(s: DemoSummary) -> None:
    """The summary for people: servers, the five steps, where to look in the UI."""
    home = str(Path.home())
    _render_servers(s, home)
    sweep = s.sweep
    style = {"OPERATIONAL": "green", "DEGRADED": "yellow", "CRITICAL": "bold red"}[sweep.prognosis]
    _say(
        f"\n[bold]1 health sweep[/]  [{style}]{sweep.prognosis}[/]  "
        f"flow run {sweep.flow_run.name} (deployment health-sweep)"
    )
    for reason in sweep.reasons:
        _say(f"    - {escape(reason)}")
    d = s.route.decision
    _say(f"[bold]2 routing[/]       $ {escape(s.route.command)}")
    _say(
        f"    {d.category} ({d.confidence or 0:.2f}) -> {escape(d.model or 'nothing')} "
        f"at {escape(d.url or '-')} ({d.node}/{d.endpoint})"
    )
    _say(f"    {escape(d.reason)}")
    _say(f"[bold]3 VRAM plan[/]     $ {escape(s.plan.command)}")
    _render_plan(s.plan.plan)
    rec = s.recovery.flow_run
    _say(
        f"[bold]4 recovery[/]      {rec.state_name}  flow run {rec.name}, "
        f"started by the automation {escape(rec.created_by_name or '?')}"
    )
    _say(f"    {escape(rec.message or '')}")
    rep = s.report
    _say(f"[bold]5 report[/]        {rep.flow_run.state_name}  flow run {rep.flow_run.name} (deployment daily-report)")
    _say(f"[bold]6 alerts[/]        {len(s.alerts)} received by the webhook receiver at {s.alerts_url}")
    for message in s.alerts:
        _say(f"    {message.at:%H:%M:%S} " + escape(message.text()).replace("\n", "\n      "))
    _say(f"\n[bold]Where to look[/]: the Prefect UI at {s.ui_url}")
    looks = [
        ("deployments", s.deployments_url),
        ("the sweep's table", s.sweep.artifact_urls.get("health-sweep", s.sweep.url)),
        ("the recovery run", s.recovery.url),
        ("the report", rep.artifact_urls.get("health-report", rep.url)),
        ("automations", f"{s.ui_url}automations"),
    ]
    for label, url in looks:
        _say(f"  {label:<18} {url}")
    _say(f"\nTry: homelab sweep -i {escape(str(s.inventory).replace(home, '~', 1))}")
    if s.gateway_url:
        key = str(s.master_key_file).replace(home, "~", 1)
        _say(f"     the gateway at {s.gateway_url}/v1 (model 'auto'); its master key is in {escape(key)}")
    _say("It keeps running: a health sweep every 5 minutes, VRAM samples every minute.")
    _say(f"Stop it all with: {s.stop_command}")
