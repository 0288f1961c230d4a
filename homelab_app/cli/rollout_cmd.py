"""`homelab rollout`: put a node's llama.cpp containers and Ollama models in the inventory's state."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from homelab.errors import HomelabError
from homelab_app.cli.common import (
    EXIT_FAILED,
    EXIT_INVALID,
    InventoryOption,
    JsonFlag,
    app,
    err,
    fail,
    load_or_exit,
    out,
    shown,
)
from homelab_app.cli.source_options import CacheDirOption, HubEndpointOption, fetcher_for

if TYPE_CHECKING:
    from rich.progress import Progress

    from homelab.docker_ops.apply import StepsReport
    from homelab.docker_ops.connect import Engine
    from homelab.docker_ops.sources import CopyProgress, ProgressCallback
    from homelab.inventory import Inventory, Node
    from homelab.rollout.node import EngineOpener, NodeRolloutReport
    from homelab.rollout.preview import RolloutPreview

__all__ = ["rollout_command"]

_STEP_STYLE = {"done": "green", "rolled back": "yellow", "failed": "red", "not run": "dim"}


def _rollout_progress(progress: Progress) -> ProgressCallback:
    """Turn the core's copy callbacks into rich bars (one per file and phase) with bytes per second."""
    bars: dict[tuple[str, str], Any] = {}

    def update(p: CopyProgress) -> None:
        key = (p.file, p.phase)
        if key not in bars:
            bars[key] = progress.add_task(f"{p.phase} {p.file}", total=p.total_bytes)
        progress.update(bars[key], completed=p.done_bytes)

    return update


def _render_part(report: StepsReport[Any], kind: str) -> None:
    """The plan (dry run) or each step with its outcome, then what was left alone, the VRAM plan."""
    title = f"{kind}{'rollout plan' if report.dry_run else 'rollout'} on {escape(report.node)}"
    table = Table(title=title, title_justify="left")
    for column in ("step",) if report.dry_run else ("step", "status", "seconds", "detail"):
        table.add_column(column)
    for step in report.plan.steps if report.dry_run else []:
        table.add_row(escape(step.summary()))
    for o in report.outcomes:
        style = _STEP_STYLE[o.status.value]
        table.add_row(escape(o.summary), f"[{style}]{o.status}[/]", f"{o.seconds:g}", escape(o.detail))
    out.print(table if report.plan.steps else f"{title}: nothing to do")
    for reason in report.plan.unchanged:
        out.print(f"  [dim]= {escape(reason)}[/]", highlight=False)
    for line in report.vram:
        out.print(f"  [dim]vram: {escape(line)}[/]", highlight=False)


def _failure(message: str | None, log_tail: list[str]) -> None:
    if message:
        err.print(f"[red]✗[/] {escape(message)}", highlight=False, soft_wrap=True)
    for line in log_tail:
        err.print(f"    {escape(line)}", highlight=False, soft_wrap=True)


def _connect(inv: Inventory, vault_block: str | None) -> EngineOpener:
    """Open the node's engine; for ssh:// with the key its cluster-file entry names, as the flow's tasks do."""

    from homelab.docker_ops.connect import engine_url, open_engine
    from homelab_app.stack.prefect_cli import default_prefect_home, prefect_env

    def connect(node: Node) -> Engine:
        if not engine_url(node).startswith("ssh://"):
            return open_engine(node)
        # Imported here: the key is read through Prefect's blocks (blocks/vault.py), and only
        # an ssh:// engine needs it; every other rollout runs without Prefect. Prefect then runs
        # in this process, so it gets what every Prefect homelab starts gets: analytics off and
        # its state (a temporary server's database when no API is configured) under homelab's.
        os.environ.update(prefect_env(os.environ, default_prefect_home()))
        from tasks.access import engine_login

        return open_engine(node, ssh=engine_login(inv, node, vault_block).access(node))

    return connect


def _not_checked(part: str, against: str, why: str | None) -> None:
    if why:
        out.print(f"[yellow]![/] {part}: not checked against {against} ({shown(why)})", highlight=False, soft_wrap=True)


def _from(source: str | None) -> str:
    return f" from {source}" if source else ""


def _render_preview(preview: RolloutPreview) -> None:
    """The rollout from the cluster file: containers in start order with their gates, Ollama models."""
    if preview.containers:
        table = Table(title=f"containers on {escape(preview.node)} ({escape(preview.engine)}), in start order",
                      title_justify="left")  # fmt: skip
        for column in ("#", "container", "model (volume)", "ctx", "GPU layers", "restart", "published"):
            table.add_column(column)
        for c in preview.containers:
            layers = "default" if c.gpu_layers is None else str(c.gpu_layers)
            table.add_row(
                str(c.position), escape(c.name), escape(f"{c.model_file} ({c.volume})" + _from(c.source)),
                str(c.ctx_size),
                escape(f"{layers} ({c.gpu_layers_from})"), c.restart_policy, c.published,
            )  # fmt: skip
        out.print(table)
        for c in preview.containers:
            out.print(f"  run {escape(c.name)}: {shown(c.run_line())}", highlight=False, soft_wrap=True)
            out.print(f"  gate {escape(c.name)}: {escape(c.gate.summary())}", highlight=False, soft_wrap=True)
    for m in preview.ollama:
        parameters = ", ".join(f"{k} {v}" for k, v in m.parameters.items())
        out.print(
            f"  ollama {escape(m.endpoint)} ({escape(m.url)}): {escape(m.model)} from {escape(m.source)}, "
            f"{parameters}, keep_alive {m.keep_alive}", highlight=False, soft_wrap=True,
        )  # fmt: skip


def _render_node(report: NodeRolloutReport) -> None:
    if report.preview is not None:
        _render_preview(report.preview)
    _not_checked("Ollama models", "the Ollama endpoints", report.ollama_not_checked)
    _not_checked("containers", "the engine", report.engine_not_checked)
    if report.ollama is not None:
        _render_part(report.ollama, "Ollama ")
        for check in report.ollama.checks:
            fine = check.matches or (check.loaded and not check.comparable)  # loaded; sizes not comparable
            mark = "[green]✓[/]" if fine else "[yellow]![/]" if check.loaded else "[red]✗[/]"
            out.print(f"  {mark} {escape(check.summary())}", highlight=False)
        _failure(report.ollama.failure, [])
    if report.containers is not None:
        _render_part(report.containers, "")
        tail = [line for o in report.containers.outcomes if o.gate for line in o.gate.log_tail]
        _failure(report.containers.failure, tail if report.containers.failure else [])
    if report.ollama is None and report.containers is None and report.preview is None:
        out.print(
            f"nothing to roll out on {escape(report.node)}: no containers, no Ollama models with a deploy section"
        )
    if report.gateway:
        out.print(f"gateway: {escape(report.gateway)}", highlight=False)


@app.command("rollout")
def rollout_command(
    inventory: InventoryOption,
    node: Annotated[str, typer.Option("--node", help="The node whose containers and Ollama models to roll out.")],
    models_dir: Annotated[
        Path | None, typer.Option("--models-dir", help="Folder here with the GGUF files, by model_file name.")
    ] = None,
    node_models_dir: Annotated[
        str | None, typer.Option("--node-models-dir", help="Or: absolute folder on the node with the GGUF files.")
    ] = None,
    gateway_config: Annotated[
        Path | None,
        typer.Option(
            "--gateway-config", help="The LiteLLM proxy's config file: regenerated after a successful rollout."
        ),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Print the plan (from the file alone if the node is down); change nothing."),
    ] = False,
    prune: Annotated[
        bool,
        typer.Option("--prune", help="Delete Ollama models the cluster file no longer names (else only unloaded)."),
    ] = False,
    helper_image: Annotated[
        str | None,
        # The default is written out: docker_ops loads only when a rollout runs (a test keeps them equal).
        typer.Option(
            "--helper-image",
            help="Image of the short-lived copy helpers [default: busybox:stable].",
            show_default=False,
        ),
    ] = None,
    vault_block: Annotated[
        str | None,
        typer.Option("--vault-block", help="A saved Vault Secrets block: reads an ssh:// node's key, hf:// tokens."),
    ] = None,
    hf_endpoint: HubEndpointOption = "https://huggingface.co",
    cache_dir: CacheDirOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Copy a node's models into named volumes and start its llama.cpp containers one at a time.

    Runs homelab's rollout directly (no Prefect server needed; the `rollout` flow runs the same
    steps as tasks). Exit codes: 0 done (or nothing to do); 1 a step failed and was rolled
    back, or the engine failed; 2 bad input (cluster file, node, model folder, a gateway
    config that cannot be written) or a model that does not fit the node's GPUs (the VRAM plan
    runs first; nothing is changed).

    --dry-run shows the containers in start order with the health gate each must pass, their
    restart policy, model, context and GPU layers, and the Ollama models, from the cluster
    file; then the plan against the node. A node that does not answer is marked "not checked"
    and the dry run still exits 0.

    An ssh:// engine is reached with the key the node's `ssh.key_secret` names (from the
    --vault-block's Vault, or a Prefect Secret block), its host key checked in `known_hosts`.

    A model with a `source:` (a path, https:// with its sha256, hf://OWNER/REPO/FILE.gguf) is
    fetched into the local cache and checked first (also in a dry run), then copied like one
    from --models-dir; the others come from --models-dir or --node-models-dir.

    Ollama endpoints whose models have a `deploy:` section go first: GGUFs from --models-dir
    uploaded, models created with the planned num_ctx/num_gpu, preloaded one at a time and
    checked in /api/ps; models the cluster file no longer names are unloaded (--prune deletes
    them). When that fails, the containers are not touched.
    """
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

    from homelab.docker_ops.helper import HelperSettings
    from homelab.docker_ops.serial import RolloutSettings
    from homelab.rollout.node import DirectRunner, node_inputs, roll_out

    inv = load_or_exit(inventory)
    target = next((n for n in inv.nodes if n.name == node), None)
    if target is None:
        err.print(f"[red]✗[/] no node {escape(node)!r} in {escape(str(inventory))}", highlight=False)
        raise typer.Exit(EXIT_INVALID)
    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn())
    try:
        with Progress(*columns, console=err, transient=True, disable=as_json) as fetching:
            fetcher = fetcher_for(inv, hub_endpoint=hf_endpoint, cache_dir=cache_dir, vault_block=vault_block,
                                  progress=_rollout_progress(fetching))  # fmt: skip
            with fetcher.client:
                inputs = node_inputs(inv, target, models_dir=models_dir, node_models_dir=node_models_dir,
                                     gateway_config=gateway_config, fetcher=fetcher)  # fmt: skip
    except ValueError as exc:  # bad values; a missing model file or a plan that does not fit: the handler's 2
        fail(exc, EXIT_INVALID)
    helper = HelperSettings() if helper_image is None else HelperSettings(image=helper_image)
    settings = RolloutSettings(helper=helper)
    try:
        with Progress(*columns, console=err, transient=True, disable=as_json) as progress:
            runner = DirectRunner(
                inv, target, settings, connect=_connect(inv, vault_block), progress=_rollout_progress(progress)
            )
            report = roll_out(
                inv, target, inputs, settings, runner, dry_run=dry_run, prune=prune, gateway_config=gateway_config
            )
    except (HomelabError, OSError) as exc:  # once the rollout runs, every failure is exit 1
        fail(exc, EXIT_FAILED)
    if as_json:
        print(report.model_dump_json(indent=2))
    else:
        _render_node(report)
    if not report.ok:
        raise typer.Exit(EXIT_FAILED)
