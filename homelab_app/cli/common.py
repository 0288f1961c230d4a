"""What every `homelab` command shares: the app, the consoles, exit codes, common options, the error handler.

Cheap to import: `homelab --help` and `--version` load this and the command modules only, so
nothing here or at the top of a command module may import the core's heavy parts (pydantic
models, docker, paramiko, numpy, SQLAlchemy, Prefect); commands import what they use when run.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

from homelab.errors import (
    FileAccessError,
    HistoryError,
    HomelabError,
    InventoryError,
    ModelError,
    ModelSourceMissing,
    Problem,
    ReportError,
    RequestError,
    VramError,
)

if TYPE_CHECKING:
    from typer._click import Context  # typer's own click: TyperGroup.invoke takes this one

    from homelab.inventory import Inventory

__all__ = [
    "EXIT_CRITICAL",
    "EXIT_DEGRADED",
    "EXIT_FAILED",
    "EXIT_INVALID",
    "STATE_STYLE",
    "InventoryOption",
    "JsonFlag",
    "app",
    "err",
    "exit_code",
    "fail",
    "load_or_exit",
    "out",
    "print_error",
    "print_notes",
    "print_problems",
    "shown",
]


EXIT_DEGRADED = 1  # the cluster is not healthy (commands that check it)
EXIT_FAILED = 1  # a system failed or refused while the command ran
EXIT_INVALID = 2
EXIT_CRITICAL = 3

# Input the command cannot use, whatever the command: exit 2. Every other HomelabError is a
# system that failed or refused (exit 1). homelab/errors.py draws the tree with these codes.
_INVALID_INPUT: tuple[type[HomelabError], ...] = (
    InventoryError,
    FileAccessError,
    ModelSourceMissing,
    VramError,
    ReportError,
    HistoryError,
    ModelError,
    RequestError,
)


def exit_code(exc: HomelabError) -> int:
    """The exit code for an error no command handled itself (see `_INVALID_INPUT`)."""
    return EXIT_INVALID if isinstance(exc, _INVALID_INPUT) else EXIT_FAILED


class _HomelabGroup(TyperGroup):
    """The one CLI error handler: a `HomelabError` that leaves a command (of any sub-app) ends
    the run with its message on stderr, no traceback, and its exit code."""

    def invoke(self, ctx: Context) -> Any:
        try:
            return super().invoke(ctx)
        except HomelabError as exc:
            print_error(exc)
            raise typer.Exit(exit_code(exc)) from None


app = typer.Typer(
    name="homelab",
    cls=_HomelabGroup,
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
        from importlib.metadata import version as package_version  # 15 ms: only --version pays

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


def shown(text: str) -> str:
    """Text quoted from input, safe to print: markup escaped ("[x]" is shown), control characters as `\\x1b`."""
    return escape(_CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text))


def fail(problem: object, code: int) -> NoReturn:
    """Say what went wrong in one line on stderr, then exit with `code` (no traceback)."""
    err.print(f"[red]✗[/] {shown(str(problem))}", highlight=False, soft_wrap=True)
    raise typer.Exit(code) from None


def print_error(exc: HomelabError) -> None:
    """An error in one line per problem (a cluster file's are listed), then its notes (PEP 678)."""
    if isinstance(exc, InventoryError):
        print_problems(exc)
    else:
        err.print(f"[red]✗[/] {shown(str(exc))}", highlight=False, soft_wrap=True)
    for note in getattr(exc, "__notes__", ()):
        err.print(shown(str(note)), highlight=False, soft_wrap=True)


def print_problems(exc: InventoryError) -> None:
    # Problems quote what the user wrote (see shown).
    for problem in exc.problems:
        err.print(f"[red]✗[/] {shown(str(problem))}", highlight=False, soft_wrap=True)


def print_notes(notes: list[Problem]) -> None:
    """Notes on a valid file (`load_inventory_with_notes`), on stderr beside the problems."""
    for note in notes:
        err.print(f"[cyan]ℹ[/] {shown(str(note))}", highlight=False, soft_wrap=True)


def load_or_exit(path: Path) -> Inventory:
    """The cluster file; an invalid one ends the command (its problems printed, exit 2)."""
    from homelab.inventory import load_inventory  # pydantic's models: built when a command needs them

    return load_inventory(path)


# How an endpoint state (an EndpointState, a StrEnum: equal to its value) is coloured wherever one is shown.
STATE_STYLE = {"UP": "green", "SLOW": "yellow", "DOWN": "red"}
