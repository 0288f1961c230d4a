"""Prefect driven through its own CLI, in child processes: homelab/ never imports Prefect.

Every child gets `OFFLINE_ENV`: the settings that keep Prefect from sending anything off the
machine (the server's anonymous analytics, which the SDK's usage events also follow; the UI's
promotional content; Cloud orchestration telemetry), whatever the caller's environment says.
`prefect_env` adds a Prefect home of homelab's own, so that no `~/.prefect` appears.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from platformdirs import user_state_path
from pydantic import BaseModel

from homelab.errors import StackError
from homelab_app.stack.deploy_config import WORK_POOL

__all__ = [
    "OFFLINE_ENV",
    "PREFECT",
    "DeployedDeployment",
    "PrefectCommands",
    "configured_api_url",
    "default_prefect_home",
    "prefect_env",
]

PREFECT = [sys.executable, "-m", "prefect"]

# What in Prefect 3.9.1 (the pinned major's installed release; src/prefect/ in PrefectHQ/prefect)
# sends anything off the machine, and what turns each off. Settings are read when Prefect is
# imported, so these go into a child's environment before it starts, never set in-process after.
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
# `python -c` with the pool's name as argv[1], run with the commands' environment.
_CREATE_PROCESS_POOL = """
import sys
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.workers.process import ProcessWorker
template = ProcessWorker.get_default_base_job_template()
with get_client(sync_client=True) as client:
    client.create_work_pool(WorkPoolCreate(name=sys.argv[1], type="process", base_job_template=template))
"""


class DeployedDeployment(BaseModel):
    """One deployment as the server has it: what `up` reports and the tests check."""

    id: str
    flow: str
    name: str
    work_queue: str | None
    schedules: list[str]
    paused: bool


def configured_api_url(env: Mapping[str, str], cwd: Path, timeout_s: float) -> str | None:
    """The Prefect API this environment is configured for (PREFECT_API_URL from the environment,
    the active profile, prefect.toml or .env, resolved by Prefect itself), or None."""
    code = "from prefect.settings import get_current_settings as s; print(s().api.url or '')"
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=cwd,
        env={**env, **OFFLINE_ENV},
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    if done.returncode != 0:
        raise StackError(f"could not read the Prefect settings:\n{done.stderr[-_OUTPUT_TAIL_CHARS:]}")
    return done.stdout.strip() or None


class PrefectCommands:
    """`prefect ...` against one API, run in `cwd` with `env` (plus the offline settings)."""

    def __init__(self, env: Mapping[str, str], cwd: Path, log: Path, timeout_s: float) -> None:
        self.env = {**env, **OFFLINE_ENV}
        self.cwd = cwd
        self.log = log
        self.timeout_s = timeout_s

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run one `prefect` command; its output is appended to the log. Raises StackError when `check` and it fails."""
        return self._execute([*PREFECT, "--no-prompt", *args], f"prefect {' '.join(args)}", check)

    def _execute(self, argv: list[str], shown: str, check: bool) -> subprocess.CompletedProcess[str]:
        try:
            done = subprocess.run(
                argv, cwd=self.cwd, env=self.env, capture_output=True, text=True, timeout=self.timeout_s, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise StackError(f"`{shown}` did not finish in {self.timeout_s:.0f} s") from exc
        with self.log.open("a") as out:
            out.write(f"$ {shown}\n{done.stdout}{done.stderr}(exit {done.returncode})\n")
        if check and done.returncode != 0:
            tail = (done.stdout + done.stderr)[-_OUTPUT_TAIL_CHARS:]
            raise StackError(f"`{shown}` failed (exit {done.returncode}):\n{tail}")
        return done

    def ensure_work_pool(self) -> bool:
        """Create the `homelab` process pool unless it exists; True when created.

        Not with `prefect work-pool create`: it asks the server for every known worker type
        (cli/work_pool.py:427 in Prefect 3.9.1), which the server fetches from
        raw.githubusercontent.com. The process worker's own template is what that command
        would store for `--type process` (workers/utilities.py:42).
        """
        if self.run("work-pool", "inspect", WORK_POOL, check=False).returncode == 0:
            return False
        self._execute([sys.executable, "-c", _CREATE_PROCESS_POOL, WORK_POOL], f"create work pool {WORK_POOL}", True)
        return True

    def register_blocks(self) -> None:
        self.run("block", "register", "-m", "blocks")

    def deploy_all(self, prefect_file: Path) -> None:
        # cwd is the checkout: with no `pull` section prefect records it as the working directory
        # a process worker runs the flows in, and entrypoints are relative to it.
        self.run("deploy", "--all", "--prefect-file", str(prefect_file))

    def deployments(self) -> list[DeployedDeployment]:
        listed: list[dict[str, Any]] = json.loads(self.run("deployment", "ls", "--output", "json").stdout)
        flows = self._flow_names()
        return [
            DeployedDeployment(
                id=d["id"],
                flow=flows.get(d["flow_id"], d["flow_id"]),
                name=d["name"],
                work_queue=d.get("work_queue_name"),
                schedules=[_describe_schedule(s["schedule"]) for s in d.get("schedules", []) if s.get("active", True)],
                paused=bool(d.get("paused")),
            )
            for d in listed
        ]

    def _flow_names(self) -> dict[str, str]:
        listed: list[dict[str, Any]] = json.loads(self.run("flow", "ls", "--limit", "200", "--output", "json").stdout)
        return {f["id"]: f["name"] for f in listed}

    def delete_deployment(self, deployment_id: str) -> None:
        self.run("deployment", "delete", "--id", deployment_id)


def _describe_schedule(schedule: dict[str, Any]) -> str:
    if "cron" in schedule:
        return f"cron {schedule['cron']} ({schedule.get('timezone') or 'UTC'})"
    if "interval" in schedule:
        return f"every {schedule['interval']:g} s"
    return str(schedule.get("rrule", schedule))
