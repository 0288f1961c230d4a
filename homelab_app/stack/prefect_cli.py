"""Prefect's settings for homelab's processes, and its CLI where a child process is the way: `prefect deploy`.

Every process that runs Prefect gets `OFFLINE_ENV`: the settings that keep Prefect from sending anything off the
machine (the server's anonymous analytics, which the SDK's usage events also follow; the UI's
promotional content; Cloud orchestration telemetry), whatever the caller's environment says.
`prefect_env` adds a Prefect home of homelab's own, so that no `~/.prefect` appears.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from platformdirs import user_state_path

from homelab.errors import StackError

__all__ = ["OFFLINE_ENV", "PREFECT", "default_prefect_home", "deploy_all", "prefect_env", "use_prefect_env"]

PREFECT = [sys.executable, "-m", "prefect"]

# What in Prefect 3.9.1 (the pinned major's installed release; src/prefect/ in PrefectHQ/prefect)
# sends anything off the machine, and what turns each off. Settings are read when Prefect is
# imported, so these go into a process's environment before that: a child's before it starts,
# this process's before its first import (`use_prefect_env`), never after.
# - The server's heartbeat to https://sens-o-matic.prefect.io/ (server/services/telemetry.py:105),
#   run while server.analytics_enabled (:65; settings/models/server/root.py:45), which
#   PREFECT_SERVER_ANALYTICS_ENABLED sets (`prefect server start --analytics-off` too,
#   cli/server.py:82). An ephemeral server (a flow run with no API URL) is a server too.
# - The SDK's usage events to Amplitude, api2.amplitude.com (_internal/analytics/client.py:69),
#   started at `import prefect` (__init__.py:150) and sent from a terminal session
#   (_internal/analytics/__init__.py:51): off with DO_NOT_TRACK (_internal/analytics/enabled.py:25),
#   in CI (:30), or, checked later, when the server's analytics are off (service.py:168). It also
#   writes PREFECT_HOME/.sdk_telemetry (device_id.py:18, milestones.py:47).
# - The UI's upgrade prompts and banners: server.ui.show_promotional_content
#   (settings/models/server/ui.py:57).
# - Run telemetry to Prefect Cloud: cloud.enable_orchestration_telemetry
#   (settings/models/cloud.py:43, telemetry/run_telemetry.py:56); Cloud is never the API here.
# Not off by any setting: the server's /collections views fetch
# raw.githubusercontent.com/PrefectHQ/prefect-collection-registry (server/api/collections.py:17,55)
# when the UI or `prefect work-pool create` (cli/work_pool.py:427) asks for worker types; homelab
# creates its pool without that question (`ensure_work_pool`).
OFFLINE_ENV: Mapping[str, str] = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_UI_SHOW_PROMOTIONAL_CONTENT": "false",
    "PREFECT_CLOUD_ENABLE_ORCHESTRATION_TELEMETRY": "false",
    # The common opt-out, honoured by Prefect's SDK usage events.
    "DO_NOT_TRACK": "1",
}

# Prefect's own default home, where `prefect config set` keeps the user's profiles
# (settings/models/_defaults.py:14).
_USER_PREFECT_HOME = Path("~/.prefect")


def default_prefect_home() -> Path:
    """The Prefect home of homelab commands that have no stack directory: XDG_STATE_HOME/homelab/prefect."""
    return user_state_path("homelab") / "prefect"


def prefect_env(environ: Mapping[str, str], home: Path) -> dict[str, str]:
    """`environ` made fit for a process that runs Prefect: analytics off, and its state in `home`.

    A PREFECT_HOME the user set is theirs and stays. Otherwise Prefect's default would be
    `~/.prefect`, which it creates at import and fills (database, analytics ids); `home` takes
    its place, while profiles the user keeps there (`prefect config set PREFECT_API_URL=...`,
    docs/scale-out.md) are still read through PREFECT_PROFILES_PATH.
    """
    env = {**environ, **OFFLINE_ENV}
    if "PREFECT_HOME" not in env:
        env["PREFECT_HOME"] = str(home)
        profiles = _USER_PREFECT_HOME.expanduser() / "profiles.toml"
        if "PREFECT_PROFILES_PATH" not in env and profiles.is_file():
            env["PREFECT_PROFILES_PATH"] = str(profiles)
    return env


_OUTPUT_TAIL_CHARS = 3000


def use_prefect_env(home: Path) -> None:
    """Give this process `prefect_env`, before it first imports Prefect.

    Prefect reads DO_NOT_TRACK and PREFECT_HOME at its first import (it creates the home then
    and decides on its usage events), so the commands that talk to Prefect in process set them
    first; the children they start inherit them.
    """
    os.environ.update(prefect_env(os.environ, home))


def deploy_all(prefect_file: Path, env: Mapping[str, str], cwd: Path, log: Path, timeout_s: float) -> None:
    """`prefect deploy --all` of `prefect_file`, in a child process; its output is appended to `log`.

    A child, not Prefect's API in process: what a prefect.yaml means (its build, push and pull
    steps, `{{ }}` templating, schedules and triggers that become automations) is implemented
    only by the CLI command (prefect/cli/deploy/), which Prefect offers no stable function for.
    The child also keeps every flow's imports out of this process. cwd is the checkout: with no
    `pull` section prefect records it as the working directory a process worker runs the flows
    in, and entrypoints are relative to it.

    Raises:
        StackError: it failed or did not finish in `timeout_s` (with the end of its output).
    """
    argv = [*PREFECT, "--no-prompt", "deploy", "--all", "--prefect-file", str(prefect_file)]
    shown = f"prefect deploy --all --prefect-file {prefect_file}"
    try:
        done = subprocess.run(
            argv, cwd=cwd, env={**env, **OFFLINE_ENV}, capture_output=True, text=True, timeout=timeout_s, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise StackError(f"`{shown}` did not finish in {timeout_s:.0f} s") from exc
    with log.open("a") as out:
        out.write(f"$ {shown}\n{done.stdout}{done.stderr}(exit {done.returncode})\n")
    if done.returncode != 0:
        tail = (done.stdout + done.stderr)[-_OUTPUT_TAIL_CHARS:]
        raise StackError(f"`{shown}` failed (exit {done.returncode}):\n{tail}")
