"""What every `homelab` command shares: the app, the consoles, exit codes, common options."""

from __future__ import annotations

import re
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from homelab.errors import InventoryError, Problem
from homelab.health.probe import EndpointState
from homelab.inventory import Inventory, load_inventory

__all__ = [
    "EXIT_CRITICAL",
    "EXIT_DEGRADED",
    "EXIT_INVALID",
    "STATE_STYLE",
    "InventoryOption",
    "JsonFlag",
    "app",
    "err",
    "fail",
    "load_or_exit",
    "out",
    "print_notes",
    "print_problems",
]


EXIT_DEGRADED = 1
EXIT_INVALID = 2
EXIT_CRITICAL = 3

app = typer.Typer(
    name="homelab",
    help="Keep a home AI inference cluster healthy: sweeps, routing, VRAM plans, rollout, recovery.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
out = Console()
err = Console(stderr=True)

InventoryOption = Annotated[
    Path, typer.Option("--inventory", "-i", help="The cluster file.", envvar="HOMELAB_INVENTORY")
]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON instead of a table.")]


def _version(value: bool) -> None:
    if value:
        print(f"homelab {package_version('homelab-cluster')}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Keep a home AI inference cluster healthy."""


# C0 and C1 control characters but newline and tab: an ESC from a file would drive the terminal.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def _shown(text: str) -> str:
    """Text quoted from input, safe to print: markup escaped ("[x]" is shown), control characters as `\\x1b`."""
    return escape(_CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text))


def fail(problem: object, code: int) -> NoReturn:
    """Say what went wrong in one line on stderr, then exit with `code` (no traceback)."""
    err.print(f"[red]✗[/] {_shown(str(problem))}", highlight=False, soft_wrap=True)
    raise typer.Exit(code) from None


def print_problems(exc: InventoryError) -> None:
    # Problems quote what the user wrote (see _shown).
    for problem in exc.problems:
        err.print(f"[red]✗[/] {_shown(str(problem))}", highlight=False, soft_wrap=True)


def print_notes(notes: list[Problem]) -> None:
    """Notes on a valid file (`load_inventory_with_notes`), on stderr beside the problems."""
    for note in notes:
        err.print(f"[cyan]ℹ[/] {_shown(str(note))}", highlight=False, soft_wrap=True)


def load_or_exit(path: Path) -> Inventory:
    try:
        return load_inventory(path)
    except InventoryError as exc:
        print_problems(exc)
        raise typer.Exit(EXIT_INVALID) from None


# How an endpoint state is coloured wherever one is shown.
STATE_STYLE = {EndpointState.UP: "green", EndpointState.SLOW: "yellow", EndpointState.DOWN: "red"}
