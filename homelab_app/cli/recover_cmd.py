"""`homelab recover`: run the recover-node flow for one node."""

from __future__ import annotations

from typing import Annotated

import typer

from homelab_app.cli.common import (
    EXIT_INVALID,
    InventoryOption,
    app,
    fail,
    load_or_exit,
)
from homelab_app.stack.prefect_cli import default_prefect_home, prefect_env

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

    Runs the `recover-node` Prefect flow in a child process (homelab/ itself never imports
    Prefect); it prints the incident. Exit code 1 when the node could not be recovered, 2 when
    the cluster file is invalid or has no such node.
    """
    import os
    import subprocess
    import sys

    # The node must be one of the cluster file's: `recover -- --help` once reached the child's
    # parser as its option and exited 0 having recovered nothing.
    nodes = [n.name for n in load_or_exit(inventory).nodes]
    if node not in nodes:
        fail(f"{inventory}: no node named {node!r} (nodes: {', '.join(nodes)})", EXIT_INVALID)
    # Options as --name=value and the node after `--`: no value is ever read as an option.
    argv = [sys.executable, "-m", "flows.recover_node", f"--inventory={inventory}"]
    argv += [f"--vault-block={vault_block}"] if vault_block else []
    argv += [f"--restart-command={restart_command}"] if restart_command else []
    # With no Prefect API configured the flow starts a temporary server: it too gets analytics
    # off and its database under homelab's state directory, not ~/.prefect.
    env = prefect_env(os.environ, default_prefect_home())
    raise typer.Exit(subprocess.run([*argv, "--", node], env=env, check=False).returncode)


# --- rollout ------------------------------------------------------------------------------
