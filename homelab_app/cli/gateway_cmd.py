"""`homelab gateway`: the LiteLLM proxy config, generated, checked and imported."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from homelab.files import read_regular, write_atomic
from homelab_app.cli.common import EXIT_INVALID, InventoryOption, app, err, fail, load_or_exit, out

__all__ = ["gateway_config", "gateway_import"]


gateway_app = typer.Typer(
    help="The LiteLLM gateway: its config from the cluster file, or a cluster file from its config.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(gateway_app, name="gateway")
EXIT_OUT_OF_DATE = 1
OutputOption = Annotated[Path | None, typer.Option("--output", "-o", help="Write to this file instead of stdout.")]
FollowSymlinksOption = Annotated[
    bool, typer.Option("--follow-symlinks", help="Write through an --output that is a symlink (refused otherwise).")
]


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.samefile(b)
    except OSError:  # either is missing or unreadable: they cannot be one file
        return False


def _emit(text: str, output: Path | None, inputs: list[Path], follow_symlinks: bool = False) -> None:
    """Print `text`, or write it to `output` atomically, never over one of the command's inputs.

    Every way the write can fail (a symlink, a missing folder, a directory, no permission, a
    full disk) is exit 2 naming the path; the old file, if any, is left as it was.
    """
    if output is None:
        print(text, end="")
        return
    for source in inputs:
        if _same_file(output, source):
            fail(f"{output}: is {source}, an input of this command; refusing to overwrite it", EXIT_INVALID)
    write_atomic(output, text.encode("utf-8"), follow_symlinks=follow_symlinks)
    err.print(f"[green]✓[/] wrote {escape(str(output))}", highlight=False, soft_wrap=True)


@gateway_app.command("config")
def gateway_config(
    inventory: InventoryOption,
    output: OutputOption = None,
    check: Annotated[
        Path | None, typer.Option("--check", help="Compare with this file (the proxy's) instead of writing.")
    ] = None,
    autoroute: Annotated[
        bool,
        typer.Option("--autoroute/--no-autoroute", help="Model 'auto' and its hook (needs homelab in the proxy)."),
    ] = True,
    follow_symlinks: FollowSymlinksOption = False,
) -> None:
    """Write the LiteLLM proxy config for the cluster.

    Exit codes: 0 written, or --check found the file up to date; 1 --check found it out of
    date (the unified diff is printed); 2 an invalid cluster file, an unreadable --check file,
    or an --output that cannot be written (the cluster file itself, a symlink without
    --follow-symlinks, a directory or device, a missing folder, no permission, a full disk).
    """
    from homelab.gateway.config import CONFIG_LIMIT_BYTES, check_config, render_config

    if output is not None and check is not None:
        err.print("[red]✗[/] give --output or --check, not both", highlight=False)
        raise typer.Exit(EXIT_INVALID)
    text = render_config(load_or_exit(inventory), autoroute=autoroute)
    if check is None:
        _emit(text, output, [inventory], follow_symlinks)
        return
    try:
        current = read_regular(check, limit_bytes=CONFIG_LIMIT_BYTES, what="proxy config").decode("utf-8")
    except UnicodeDecodeError as exc:
        fail(f"{check}: not UTF-8 text ({exc.reason} at byte {exc.start})", EXIT_INVALID)
    diff = check_config(text, current, str(check))
    if diff:
        print("".join(diff), end="")
        err.print(f"[yellow]![/] {escape(str(check))} is out of date", highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_OUT_OF_DATE)
    out.print(f"[green]✓[/] {escape(str(check))} is up to date", highlight=False, soft_wrap=True)


@gateway_app.command("import")
def gateway_import(
    config: Annotated[Path, typer.Argument(help="The LiteLLM proxy config to read.", show_default=False)],
    output: OutputOption = None,
    name: Annotated[str, typer.Option("--name", help="The cluster's name.")] = "homelab",
    llamacpp_port: Annotated[
        list[int] | None,
        typer.Option("--llamacpp-port", help="An openai/ port that is a llama-server (repeat; default 8080)."),
    ] = None,
    resolve_env: Annotated[
        bool,
        typer.Option(
            "--resolve-env",
            help="Read api_base: os.environ/NAME from this environment (an unset NAME is an error); "
            "without it such entries are kept as external, references intact. Keys are never read.",
        ),
    ] = False,
) -> None:
    """Write a cluster file from an existing LiteLLM proxy config, losing none of it.

    Servers homelab runs (ollama/, ollama_chat/, openai/ at an api_base) become nodes and
    endpoints; one model_name on several of them becomes one alias with replicas. Everything
    else (cloud models, wildcards, fallbacks, timeouts, router/litellm/general settings) is kept
    under gateway: and `homelab gateway config` writes it back. Literal secrets are left out
    (notes in the file's header and on stderr say where); os.environ/ references are kept.

    Exit codes: 0 written; 2 the config cannot be imported (each problem names its entry) or
    the output file already exists.
    """
    from homelab.gateway.importer import (
        DEFAULT_LLAMACPP_PORTS,
        import_litellm_with_notes,
        load_litellm_config,
        render_inventory,
    )

    # lexists: a dangling symlink is something there too, and a name too long is no crash.
    if output is not None and os.path.lexists(output):
        err.print(f"[red]✗[/] {escape(str(output))} exists: choose another --output", highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_INVALID)
    data, source = load_litellm_config(config)
    ports = llamacpp_port or DEFAULT_LLAMACPP_PORTS
    inv, notes = import_litellm_with_notes(data, source, name=name, llamacpp_ports=ports, resolve_env=resolve_env)
    for note in notes:
        err.print(f"[yellow]![/] {escape(note)}", highlight=False, soft_wrap=True)
    _emit(render_inventory(inv, config.name, notes), output, [config])
