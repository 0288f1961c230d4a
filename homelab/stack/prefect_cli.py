"""Prefect driven through its own CLI, in child processes: homelab/ never imports Prefect.

Every child gets `offline_env()`: the settings that keep Prefect from sending anything off the
machine (the server's anonymous analytics, which the SDK's usage events also follow; the UI's
promotional content; Cloud orchestration telemetry), whatever the caller's environment says.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from homelab.errors import StackError
from homelab.stack.deploy_config import WORK_POOL

__all__ = [
    "OFFLINE_ENV",
    "PREFECT",
    "DeployedDeployment",
    "PrefectCommands",
    "configured_api_url",
]

PREFECT = [sys.executable, "-m", "prefect"]

OFFLINE_ENV: Mapping[str, str] = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_UI_SHOW_PROMOTIONAL_CONTENT": "false",
    "PREFECT_CLOUD_ENABLE_ORCHESTRATION_TELEMETRY": "false",
    # The common opt-out, honoured by Prefect's SDK usage events.
    "DO_NOT_TRACK": "1",
}

_OUTPUT_TAIL_CHARS = 3000


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
        [sys.executable, "-c", code], cwd=cwd, env={**env, **OFFLINE_ENV},
        capture_output=True, text=True, timeout=timeout_s, check=False,
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
        """Run one command; its output is appended to the log. Raises StackError when `check` and it fails."""
        try:
            done = subprocess.run(
                [*PREFECT, "--no-prompt", *args], cwd=self.cwd, env=self.env,
                capture_output=True, text=True, timeout=self.timeout_s, check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise StackError(f"`prefect {' '.join(args)}` did not finish in {self.timeout_s:.0f} s") from exc
        with self.log.open("a") as out:
            out.write(f"$ prefect {' '.join(args)}\n{done.stdout}{done.stderr}(exit {done.returncode})\n")
        if check and done.returncode != 0:
            tail = (done.stdout + done.stderr)[-_OUTPUT_TAIL_CHARS:]
            raise StackError(f"`prefect {' '.join(args)}` failed (exit {done.returncode}):\n{tail}")
        return done

    def ensure_work_pool(self) -> bool:
        """Create the `homelab` process pool unless it exists; True when created."""
        if self.run("work-pool", "inspect", WORK_POOL, check=False).returncode == 0:
            return False
        self.run("work-pool", "create", WORK_POOL, "--type", "process")
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
