"""`homelab up` and `homelab down`: the Prefect server, deployments and worker on this machine."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from homelab_app.cli.common import JsonFlag, app, err, out

if TYPE_CHECKING:
    from homelab_app.stack import StackStatus, StopReport

__all__ = ["down_command", "up_command"]

StateDirOption = Annotated[
    Path | None,
    typer.Option(
        "--state-dir", envvar="HOMELAB_STATE_DIR", help="Pids, logs and the embedded database [default: .homelab]."
    ),
]


@app.command("up")
def up_command(
    inventory: Annotated[
        Path | None,
        typer.Option(
            "--inventory",
            "-i",
            envvar="HOMELAB_INVENTORY",
            help="The cluster file [default: ./cluster.yaml if present].",
        ),
    ] = None,
    port: Annotated[
        int | None,
        # The default is written out: the stack's modules load only when `up` runs (a test keeps them equal).
        typer.Option("--port", help="Port of the embedded server on 127.0.0.1 [default: 4200].", show_default=False),
    ] = None,
    state_dir: StateDirOption = None,
    queue: Annotated[
        list[str] | None, typer.Option("--queue", "-q", help="Work queue for the worker (repeat); default every queue.")
    ] = None,
    worker_only: Annotated[
        bool, typer.Option("--worker-only", help="Only a worker, against PREFECT_API_URL (another node).")
    ] = False,
    worker_name: Annotated[str | None, typer.Option("--worker-name", help="Default homelab-HOST[-QUEUES].")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Start Prefect for this cluster: server (unless one is configured), blocks, deployments, a worker.

    Idempotent: what already runs is kept. Exit codes: 0 up; 1 something did not start (the
    message says what, with its log); 2 the cluster file or prefect.yaml is invalid.
    """
    from homelab_app.stack import DEFAULT_PORT, StackOptions, up

    options = StackOptions(
        inventory=inventory,
        port=DEFAULT_PORT if port is None else port,
        state_dir=state_dir,
        queues=tuple(queue or ()),
        worker_only=worker_only,
        worker_name=worker_name,
    )
    with err.status("homelab up") as spinner:

        def progress(step: str) -> None:
            spinner.update(escape(step))
            err.print(f"[dim]· {escape(step)}[/]", highlight=False)

        status = up(options, progress)
    if as_json:
        print(status.model_dump_json(indent=2))
    else:
        _render_up(status)


def _render_alerts(status: StackStatus) -> None:
    """The alert automations kept from notify:, and each block that could not be used (up still succeeded)."""
    alerts = status.alerts
    if alerts is None:
        return
    kept = sorted(alerts.created + alerts.updated)
    if kept or alerts.removed:
        removed = f"; removed {', '.join(alerts.removed)}" if alerts.removed else ""
        out.print(f"alerts      {escape(', '.join(kept) or 'none')}{escape(removed)}", highlight=False)
    for problem in alerts.problems:
        err.print(f"[yellow]![/] {escape(problem)}", highlight=False, soft_wrap=True)


def _render_up(status: StackStatus) -> None:
    def how(role: str) -> str:
        return "reused" if role in status.reused else "started"

    out.print(f"[bold]Prefect UI[/]  {status.ui_url}", highlight=False)
    where = f"embedded server, data in {status.state_dir / 'prefect'}" if status.embedded else "configured server"
    out.print(f"API         {status.api_url}  ({escape(where)})", highlight=False)
    if status.server is not None:
        out.print(f"server      pid {status.server.pid}, {how('server')}; log {status.server.log}", highlight=False)
    out.print(f"worker      pid {status.worker.pid}, {how('worker')}; log {status.worker.log}", highlight=False)
    if status.deployments:
        table = Table("deployment", "queue", "schedule", title="deployments", title_justify="left")
        for d in sorted(status.deployments, key=lambda d: (d.flow, d.name)):
            table.add_row(
                escape(f"{d.flow}/{d.name}"), escape(d.work_queue or ""), escape(", ".join(d.schedules) or "-")
            )
        out.print(table)
    _render_alerts(status)
    if status.embedded:
        out.print(f"Prefect commands in a shell: export PREFECT_API_URL={status.api_url}", highlight=False)
    out.print("Stop it with: homelab down", highlight=False)


@app.command("down")
def down_command(state_dir: StateDirOption = None, as_json: JsonFlag = False) -> None:
    """Stop what `homelab up` started from this state directory (worker, then server), nothing else."""
    from homelab_app.stack import down

    report: StopReport = down(state_dir or Path(".homelab"))
    if as_json:
        print(report.model_dump_json(indent=2))
        return
    for record in report.stopped:
        out.print(f"stopped {record.role} (pid {record.pid})", highlight=False)
    for record in report.not_running:
        out.print(f"{record.role} (pid {record.pid}) was no longer running", highlight=False)
    if not report.stopped and not report.not_running:
        out.print("nothing to stop", highlight=False)
