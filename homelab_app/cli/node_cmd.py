"""`homelab node`: what to do once on a node so that homelab can look after it (`node windows-setup`)."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from homelab_app.cli.common import EXIT_INVALID, InventoryOption, JsonFlag, app, fail, load_or_exit, out, shown

__all__ = ["windows_setup_command"]

node_app = typer.Typer(help="One-time setup of a node.", no_args_is_help=True, rich_markup_mode=None)
app.add_typer(node_app, name="node")


@node_app.command("windows-setup")
def windows_setup_command(
    inventory: InventoryOption,
    node: Annotated[str, typer.Option("--node", "-n", help="The os: windows node of the cluster file.")],
    json_output: JsonFlag = False,
) -> None:
    """Print what to run once on a Windows Docker Desktop node: OpenSSH, the key, the task that
    starts Docker Desktop, RDP.

    Nothing is run: the steps are for the machine's owner, at its keyboard. Exit code 2 when
    the cluster file is invalid, has no such node, or the node is not `os: windows`.
    """
    from homelab.recovery.windows import windows_setup

    nodes = load_or_exit(inventory).nodes
    target = next((n for n in nodes if n.name == node), None)
    if target is None:
        fail(f"{inventory}: no node named {node!r} (nodes: {', '.join(n.name for n in nodes)})", EXIT_INVALID)
    try:
        steps = windows_setup(target)
    except ValueError as exc:
        fail(f"{inventory}: {exc}", EXIT_INVALID)
    if json_output:
        print(json.dumps([s.model_dump() for s in steps], indent=2))
        return
    for number, step in enumerate(steps, start=1):
        out.print(f"{number}. {shown(step.title)}  ({shown(step.where)})", highlight=False, soft_wrap=True)
        for command in step.commands:
            out.print(f"     {shown(command)}", highlight=False, soft_wrap=True)
        if step.note:
            out.print(f"   {shown(step.note)}", highlight=False, soft_wrap=True)
