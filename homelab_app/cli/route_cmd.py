"""`homelab route`: classify a request and pick its healthy expert."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from homelab.errors import HistoryError
from homelab_app.cli.common import (
    EXIT_CRITICAL,
    EXIT_INVALID,
    STATE_STYLE,
    JsonFlag,
    app,
    err,
    load_or_exit,
    out,
)

if TYPE_CHECKING:
    from homelab.history import HistoryStore
    from homelab.inventory import Inventory
    from homelab.router.choose import Decision
    from homelab.router.health_view import Refreshed
    from homelab.router.route import Router

__all__ = ["route_command"]


_ROUTE_DEFAULT_ENDPOINT = "/v1/chat/completions"


def _route_history(inv: Inventory, inventory: Path) -> HistoryStore | None:
    from homelab.history import open_history

    try:
        return open_history(inv.history.url, relative_to=inventory.parent)
    except HistoryError as exc:
        err.print(f"[yellow]![/] {escape(str(exc))}; routing on live probes only", highlight=False, soft_wrap=True)
        return None


def _open_route(inv: Inventory | None, inventory: Path | None, ttl_s: float, probe: bool) -> Router:
    """The router with the freshest view the history and (unless --no-probe) live probes give."""
    import asyncio

    from homelab.health.http import open_probe_client
    from homelab.router.health_view import HealthSettings
    from homelab.router.route import Router, open_router

    if inv is None or inventory is None:
        return Router(None)
    settings = HealthSettings(ttl_s=ttl_s)
    store = _route_history(inv, inventory)

    async def run(history: HistoryStore | None) -> tuple[Router, Refreshed]:
        if not probe:
            return await open_router(inv, None, history, settings)
        async with open_probe_client() as client:
            return await open_router(inv, client, history, settings)

    try:
        try:
            router, refreshed = asyncio.run(run(store))
        except HistoryError as exc:
            err.print(f"[yellow]![/] {escape(str(exc))}; routing on live probes only", highlight=False, soft_wrap=True)
            router, refreshed = asyncio.run(run(None))
        if refreshed.sweep is not None and store is not None:
            try:
                store.record_sweep(refreshed.sweep)
            except HistoryError as exc:
                err.print(f"[yellow]![/] {escape(str(exc))}", highlight=False, soft_wrap=True)
    finally:
        if store is not None:
            store.close()
    return router


def _render_decision(d: Decision) -> None:
    conf = f" ({d.confidence:.2f})" if d.confidence is not None else ""
    out.print(f"category  [bold]{d.category}[/]{conf}  [dim]{escape(d.basis)}[/]", highlight=False)
    if d.needs is not None:
        out.print(f"needs     {d.needs}", highlight=False)
    chosen = next((c for c in d.candidates if c.alias == d.model), None)
    if d.model is None:
        out.print(f"model     [red]none[/]: {escape(d.reason)}", highlight=False, soft_wrap=True)
    else:
        out.print(
            f"model     [green]{escape(d.model)}[/] at {escape(d.url or '')} ({d.node}/{d.endpoint})", highlight=False
        )
        if chosen is not None and chosen.capabilities is not None:
            out.print(f"can       {escape(str(chosen.capabilities))}", highlight=False)
        out.print(f"why       {escape(d.reason)}", highlight=False, soft_wrap=True)
        out.print(f"fallbacks {escape(', '.join(d.fallbacks) or 'none')}", highlight=False)
    if d.health_age_s is not None:
        out.print(f"health    {d.health_age_s:.0f} s old ({d.health_source or 'history'})", highlight=False)
    if d.candidates:
        table = Table(title="candidates, in order", title_justify="left")
        for column in ("#", "alias", "from", "state", "can", "note"):
            table.add_column(column)
        for i, c in enumerate(d.candidates, start=1):
            state = f"[{STATE_STYLE[c.state]}]{c.state}[/]" if c.state else "-"
            mark = " ←" if c.alias == d.model else ""
            can = escape(str(c.capabilities)) if c.capabilities is not None else "-"
            can = can if c.capable or c.capabilities is None else f"[red]{can}[/]"
            table.add_row(str(i), escape(c.alias) + mark, c.chain, state, can, escape(c.note))
        out.print(table)


def _route_file(router: Router, requests: Path, as_json: bool) -> None:
    """One JSON line (or table row) per request line, in order; bad lines on stderr with their number."""
    from homelab.router.batch import route_lines

    name = "stdin" if str(requests) == "-" else str(requests)

    def report(number: int, message: str) -> None:
        err.print(f"[red]✗[/] {escape(name)}:{number}: {escape(message)}", highlight=False, soft_wrap=True)

    try:
        stdin = str(requests) == "-"
        handle = open(0 if stdin else requests, encoding="utf-8", errors="replace", closefd=not stdin)  # noqa: SIM115
    except OSError as exc:
        err.print(f"[red]✗[/] cannot read {escape(name)}: {escape(exc.strerror or str(exc))}", highlight=False)
        raise typer.Exit(EXIT_INVALID) from None
    table = None if as_json else Table("line", "category", "conf", "model", "reason")
    with handle:
        for item in route_lines(handle, router.decide, report):
            if table is None:
                print(json.dumps(item, ensure_ascii=False), flush=True)
            else:
                conf = f"{item['confidence']:.2f}" if item.get("confidence") is not None else "-"
                why = item.get("error") or item.get("reason") or ""
                table.add_row(str(item["line"]), str(item["category"]), conf, str(item["model"]), escape(why))
    if table is not None:
        out.print(table)


@app.command("route")
def route_command(
    prompt: Annotated[
        str | None, typer.Argument(help="A prompt to route, sent as one user message.", show_default=False)
    ] = None,
    inventory: Annotated[
        Path | None,
        typer.Option(
            "--inventory",
            "-i",
            help="The cluster file; without one, requests are only classified.",
            envvar="HOMELAB_INVENTORY",
        ),
    ] = None,
    requests: Annotated[
        Path | None,
        typer.Option("--requests", help='JSON lines {"endpoint": PATH, "body": {...}} to route ("-": stdin).'),
    ] = None,
    as_json: JsonFlag = False,
    ttl_s: Annotated[
        float, typer.Option("--ttl", min=0, help="Seconds a health result stays fresh before a live probe.")
    ] = 60.0,
    no_probe: Annotated[bool, typer.Option("--no-probe", help="Route on the history alone; probe nothing.")] = False,
    endpoint: Annotated[
        str, typer.Option("--endpoint", help="The API path PROMPT is sent to.")
    ] = _ROUTE_DEFAULT_ENDPOINT,
    image: Annotated[
        str | None, typer.Option("--image", help="An image URL (or data: URL) sent with PROMPT, as an image_url part.")
    ] = None,
) -> None:
    """Classify a request (code, reason, chat, vision, fast, embed) and pick the best healthy expert.

    Give a PROMPT, or --requests FILE to route one request per line (one JSON line out per
    line in, in order, with --json). A request only goes to a model that can serve it (an image
    needs vision, embeddings need embedding, text needs completion). Exit codes: 0 routed (for
    --requests: the file was read; lines that could not be routed are reported on stderr and
    as {"error": ...} lines); 2 bad input; 3 no serving model can take a PROMPT (the sweep's
    CRITICAL verdict for its category).
    """
    if (prompt is None) == (requests is None):
        err.print("[red]✗[/] give a PROMPT or --requests FILE (exactly one)", highlight=False)
        raise typer.Exit(EXIT_INVALID)
    inv = load_or_exit(inventory) if inventory is not None else None
    router = _open_route(inv, inventory, ttl_s, probe=not no_probe)
    if requests is not None:
        _route_file(router, requests, as_json)
        return
    content: str | list[dict[str, object]] = prompt or ""
    if image is not None:
        content = [{"type": "text", "text": prompt or ""}, {"type": "image_url", "image_url": {"url": image}}]
    decision = router.decide(endpoint, {"messages": [{"role": "user", "content": content}]})
    if as_json:
        print(decision.model_dump_json(indent=2))
    else:
        _render_decision(decision)
    if inv is not None and decision.model is None:
        raise typer.Exit(EXIT_CRITICAL)
