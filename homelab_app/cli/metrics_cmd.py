"""`homelab metrics`: the history's latest sweep, VRAM samples and incidents for Prometheus (and Grafana)."""

from __future__ import annotations

import json
import signal
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

from homelab_app.cli.common import EXIT_FAILED, EXIT_INVALID, InventoryOption, app, err, fail, load_or_exit

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry
    from prometheus_client.core import Metric

    from homelab.metrics import HistoryCollector

__all__ = ["metrics_command"]

ListenOption = Annotated[
    str | None,
    typer.Option(
        "--listen",
        metavar="HOST:PORT",
        help="Serve here instead of the cluster file's metrics.listen (itself 127.0.0.1:9464 unless set).",
    ),
]
OnceFlag = Annotated[
    bool, typer.Option("--once", help="Print one scrape in Prometheus' text format and exit; serve nothing.")
]
JsonFlag = Annotated[
    bool,
    typer.Option("--json", help="With --once: the metric families as JSON. Serving: the address as one JSON line."),
]


def _stop(signum: int, frame: object) -> NoReturn:
    raise KeyboardInterrupt  # SIGTERM ends the server as Ctrl-C does: exit 0


def _families_json(families: list[Metric]) -> str:
    return json.dumps(
        [
            {
                "name": f.name,
                "type": f.type,
                "help": f.documentation,
                "samples": [{"name": s.name, "labels": s.labels, "value": s.value} for s in f.samples],
            }
            for f in families
        ],
        indent=2,
    )


def _loopback(host: str) -> bool:
    import ipaddress

    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _serve(registry: CollectorRegistry, host: str, port: int, history: str, as_json: bool) -> None:
    from prometheus_client import start_wsgi_server

    try:
        server, thread = start_wsgi_server(port, host, registry)
    except OSError as exc:  # in use, not an address of this machine, a privileged port, an unknown name
        fail(f"cannot listen on {host}:{port} (--listen or metrics.listen): {exc.strerror or exc}", EXIT_FAILED)
    url = f"http://{f'[{host}]' if ':' in host else host}:{port}/metrics"
    if as_json:
        print(json.dumps({"url": url, "history": history}), flush=True)
    else:
        print(f"serving the metrics of {history} on {url} (Ctrl-C stops)", flush=True)
    if not _loopback(host):
        err.print(
            f"note: {host} is not a loopback address: whoever reaches it reads node and endpoint names and states"
        )
    signal.signal(signal.SIGTERM, _stop)
    try:
        thread.join()
    except KeyboardInterrupt:
        server.shutdown()
        server.server_close()


@app.command("metrics")
def metrics_command(
    inventory: InventoryOption,
    listen: ListenOption = None,
    once: OnceFlag = False,
    as_json: JsonFlag = False,
) -> None:
    """Serve the history's latest sweep, VRAM samples and incidents as Prometheus metrics.

    Prometheus scrapes http://HOST:PORT/metrics; every scrape reads the history afresh, so
    it shows the latest sweep and each node's latest VRAM round (samples older than
    metrics.vram_max_age_s are left out). A history that cannot be read is served as
    homelab_history_up 0, with the reason on stderr. The README's "Metrics" lists every
    metric and a Prometheus scrape config; examples/grafana-dashboard.json is a dashboard.

    Exit codes: 0 stopped by Ctrl-C or SIGTERM, or --once printed; 1 the address cannot be
    listened on, or --once could not read the history; 2 an invalid cluster file or --listen.
    """
    from prometheus_client import CollectorRegistry
    from pydantic import ValidationError

    from homelab.history import open_history
    from homelab.inventory.settings import Metrics
    from homelab.metrics import HistoryCollector
    from homelab.redact import redact_url

    inv = load_or_exit(inventory)
    settings = inv.metrics
    if listen is not None:
        try:
            settings = Metrics(listen=listen, vram_max_age_s=settings.vram_max_age_s)
        except ValidationError as exc:
            first = exc.errors()[0]
            fail(f"--listen {listen!r}: {first.get('ctx', {}).get('error', first['msg'])}", EXIT_INVALID)
    collector = HistoryCollector(
        lambda: open_history(inv.history.url, relative_to=inventory.parent), settings.vram_max_age_s
    )
    try:
        if once:
            _print_once(collector, as_json)
        else:
            registry = CollectorRegistry(auto_describe=False)  # only ours: no process or platform metrics
            registry.register(collector)
            host, port = settings.address
            _serve(registry, host, port, redact_url(inv.history.url), as_json)
    finally:
        collector.close()


def _print_once(collector: HistoryCollector, as_json: bool) -> None:
    """One scrape on stdout; exit 1 when the history could not be read (its reason is on stderr)."""
    from prometheus_client import generate_latest

    if as_json:
        print(_families_json(list(collector.collect())))
    else:
        print(generate_latest(collector).decode(), end="")
    if not collector.history_up:
        raise typer.Exit(EXIT_FAILED)
