"""`homelab recover`: the recovery loop for one node, run here with plain steps (no Prefect)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from homelab_app.cli.common import (
    EXIT_INVALID,
    InventoryOption,
    app,
    fail,
    load_or_exit,
)

if TYPE_CHECKING:
    from pydantic import SecretStr

    from homelab.inventory import Inventory
    from homelab.recovery.runner import SecretReader

__all__ = ["recover_command"]


@app.command("recover")
def recover_command(
    node: Annotated[str, typer.Argument(help="The node to recover.")],
    inventory: InventoryOption,
    vault_block: Annotated[str | None, typer.Option("--vault-block", help="A saved Vault Secrets block.")] = None,
    restart_command: Annotated[
        str | None,
        typer.Option(
            "--restart-command", help="For this run, replaces the node's docker.restart_command and the OS default."
        ),
    ] = None,
) -> None:
    """Recover a down node now: restart Docker over SSH or wake it, then its containers one at a time.

    Runs the recovery loop in this process, as the `recover-node` flow does but without
    Prefect: no flow run, no lock and no cooldown (a person asked for this run now). It
    prints the incident and stores it in the history. Exit code 0 when the node serves
    again (or was only flapping), 1 when it could not be recovered, 2 when the cluster file
    is invalid or has no such node.
    """
    import logging

    from homelab.recovery.loop import log as loop_log
    from homelab.recovery.loop import recover
    from homelab.recovery.plan import Outcome, RecoveryPolicy
    from homelab.recovery.record import store_incident
    from homelab.recovery.runner import DirectRunner

    inv = load_or_exit(inventory)
    target = next((n for n in inv.nodes if n.name == node), None)
    if target is None:
        fail(f"{inventory}: no node named {node!r} (nodes: {', '.join(n.name for n in inv.nodes)})", EXIT_INVALID)
    # Each round's decision on stderr, as the flow run's log shows it.
    shown = logging.StreamHandler()
    shown.setFormatter(logging.Formatter("%(message)s"))
    loop_log.addHandler(shown)
    loop_log.setLevel(logging.INFO)
    try:
        runner = DirectRunner(inv, _secret_reader(inv, vault_block))
        incident = recover(target, runner, RecoveryPolicy(restart_command=restart_command))
    finally:
        loop_log.removeHandler(shown)
    store_incident(incident, inv.history.url, Path(inventory).resolve().parent)
    typer.echo(incident.markdown())
    raise typer.Exit(1 if incident.outcome is Outcome.FAILED else 0)


def _secret_reader(inv: Inventory, vault_block: str | None) -> SecretReader:
    """Reads the file's secrets when a step first needs one; Prefect is imported only then.

    The secrets store is Prefect's (a Vault Secrets block, or Prefect Secret blocks), so a
    node whose entry names no secret is recovered without Prefect. Prefect in this process
    gets what every Prefect homelab starts gets: analytics off, its state under homelab's.
    """
    read: SecretReader | None = None

    def first(name: str) -> SecretStr | None:
        nonlocal read
        if read is None:
            from homelab_app.stack.prefect_cli import default_prefect_home, prefect_env

            os.environ.update(prefect_env(os.environ, default_prefect_home()))
            from tasks.access import secret_reader

            read = secret_reader(inv, vault_block)
        return read(name)

    return first
