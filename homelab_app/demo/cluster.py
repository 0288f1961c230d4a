"""The demo cluster's life: prepare its folder, start its servers, wait for them, wake the down one, stop all.

The state folder holds the cluster file, the history database, the LiteLLM config and master
key (mode 0600), the tiny model, `demo.json` (what `layout.plan_demo` decided) and the process
table with every server's pid and log. Any later command, or the wake command run by a Prefect
worker, finds the demo from the folder alone.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Callable
from pathlib import Path

import yaml

from homelab.errors import DemoError
from homelab.gateway.config import render_config
from homelab.health.http import serves
from homelab.inventory import load_inventory
from homelab.tiny_gguf import write_tiny_llama
from homelab_app.demo.layout import INVENTORY_HEADER, DemoProcess, DemoState, inventory_data, plan_demo
from homelab_app.demo.processes import ProcessTable
from homelab_app.stack.processes import ProcessRecord, is_alive, log_tail

__all__ = ["default_folder", "load_state", "prepare_demo", "start_servers", "stop_demo", "wait_ready", "wake_server"]

STATE_FILE = "demo.json"
_POLL_S = 0.2
# Never sent through a proxy (everything is on loopback), never to a database by accident.
_DROPPED_ENV = ("DATABASE_URL", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


def default_folder() -> Path:
    """`$HOMELAB_DEMO_DIR`, else `$XDG_STATE_HOME/homelab_app/demo` (`~/.local/state/homelab/demo`)."""
    if folder := os.environ.get("HOMELAB_DEMO_DIR"):
        return Path(folder).expanduser().resolve()
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "homelab" / "demo"


def prepare_demo(folder: Path, llama_server: Path, litellm: Path | None) -> DemoState:
    """Write the demo's folder afresh: model, cluster file (validated), gateway config and key, demo.json.

    What an earlier demo left (processes, Prefect database, history) is `tour.start_afresh`'s.

    Raises:
        InventoryError: the generated cluster file is invalid (a bug: it is validated here).
    """
    folder.mkdir(parents=True, exist_ok=True)
    model = write_tiny_llama(folder / "tiny-llama.gguf")
    state = plan_demo(folder, llama_server, model, litellm)
    inventory = Path(state.inventory)
    inventory.write_text(INVENTORY_HEADER + yaml.safe_dump(inventory_data(state), sort_keys=False, width=4096))
    inv = load_inventory(inventory)
    if state.master_key_file is not None:
        key = Path(state.master_key_file)
        key.unlink(missing_ok=True)
        fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(f"sk-{secrets.token_hex(16)}\n")
        (folder / "litellm.yaml").write_text(render_config(inv))
    (folder / STATE_FILE).write_text(state.model_dump_json(indent=2))
    return state


def load_state(folder: Path) -> DemoState | None:
    """The demo prepared in `folder`, or None when there is none."""
    try:
        return DemoState.model_validate_json((folder / STATE_FILE).read_text())
    except FileNotFoundError:
        return None


def _env(process: DemoProcess) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _DROPPED_ENV} | process.env
    for name, path in process.secret_env_files.items():
        env[name] = Path(path).read_text().strip()
    return env


def start_servers(state: DemoState, processes: list[DemoProcess] | None = None) -> list[ProcessRecord]:
    """Start the demo's servers (default: all but the down node's) in the background; no waiting."""
    table = ProcessTable(Path(state.folder))
    chosen = state.processes if processes is None else processes
    return [table.start(p.name, p.argv, env=_env(p), cwd=Path(state.folder)) for p in chosen]


def wait_ready(
    state: DemoState, started: list[ProcessRecord], on_ready: Callable[[DemoProcess, float], None] | None = None
) -> None:
    """Wait until every started server answers its ready URL, each within its own timeout.

    Raises:
        DemoError: one exited or did not serve in time (its log's last lines in the message).
    """
    begun = time.monotonic()
    waiting = {r.role: r for r in started}
    while waiting:
        for name, recorded in list(waiting.items()):
            process = state.find(name)
            if serves(process.url + process.ready_path):
                del waiting[name]
                if on_ready is not None:
                    on_ready(process, time.monotonic() - begun)
            elif not is_alive(recorded):
                raise DemoError(
                    f"{name} ({process.what}) exited before it served; {recorded.log}:\n{log_tail(recorded.log, 1500)}"
                )
            elif time.monotonic() - begun > process.ready_timeout_s:
                raise DemoError(
                    f"{name} ({process.what}) did not serve within {process.ready_timeout_s:.0f} s; "
                    f"{recorded.log}:\n{log_tail(recorded.log, 1500)}"
                )
        if waiting:
            time.sleep(_POLL_S)


def wake_server(folder: Path, node: str) -> str:
    """The demo's wake command: start the down node's server again and wait until it serves.

    Returns:
        What was done, for the incident record.

    Raises:
        DemoError: no demo in `folder`, an unknown node, or the server would not serve.
    """
    state = load_state(folder)
    if state is None:
        raise DemoError(f"no demo in {folder}")
    if node != state.down_node:
        raise DemoError(f"the demo wakes only node {state.down_node}, not {node!r}")
    started = start_servers(state, [state.down])
    wait_ready(state, started)
    return f"started {state.down.name} (pid {started[0].pid}) at {state.down.url}"


def stop_demo(folder: Path) -> list[ProcessRecord]:
    """Stop every server the demo recorded in `folder` (the woken one included); returns those that ran."""
    return ProcessTable(folder).stop()
