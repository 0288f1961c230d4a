"""`homelab recover`: run the recover-node flow for one node."""

from __future__ import annotations

from typing import Annotated

import typer

from homelab.cli.common import (
    InventoryOption,
    app,
)

__all__ = ["recover_command"]


@app.command("recover")
def recover_command(
    node: Annotated[str, typer.Argument(help="The node to recover.")],
    inventory: InventoryOption,
    vault_block: Annotated[str | None, typer.Option("--vault-block", help="A saved Vault Secrets block.")] = None,
    restart_command: Annotated[
        str | None, typer.Option("--restart-command", help="Replaces the OS default Docker restart.")
    ] = None,
) -> None:
    """Recover a down node now: restart Docker over SSH or wake it, then its containers one at a time.

    Runs the `recover-node` Prefect flow in a child process (homelab/ itself never imports
    Prefect); it prints the incident. Exit code 1 when the node could not be recovered.
    """
    import subprocess
    import sys

    argv = [sys.executable, "-m", "flows.recover_node", node, "--inventory", str(inventory)]
    argv += ["--vault-block", vault_block] if vault_block else []
    argv += ["--restart-command", restart_command] if restart_command else []
    raise typer.Exit(subprocess.run(argv, check=False).returncode)


# --- rollout ------------------------------------------------------------------------------
