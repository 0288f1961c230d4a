"""Flow runs on a Prefect server through its REST API: start a deployment's run, wait, find, read artifacts.

Only the calls the demo needs, each a documented endpoint of Prefect 3's API
(`/deployments/name/...`, `/create_flow_run`, `/flow_runs/{id}`, `/flow_runs/filter`,
`/artifacts/filter`), sent through Prefect's own HTTP client (`open_api`), so that they retry
what a busy server answers exactly as Prefect's SDK does. A run that an automation started
carries `created_by` `{"type": "AUTOMATION", "display_value": NAME}`: that is how the demo
tells a recovery started by the `homelab.node.down` event from one started by hand.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field

from homelab.errors import HomelabError

__all__ = ["TERMINAL", "Artifact", "FlowRun", "PrefectApi", "PrefectApiError", "open_api"]

TERMINAL = frozenset({"COMPLETED", "FAILED", "CRASHED", "CANCELLED"})
_POLL_S = 1.0
_HTTP_TIMEOUT_S = 10.0


class PrefectApiError(HomelabError):
    """The Prefect API refused a call, or a run did not finish in time."""


class FlowRun(BaseModel):
    """What the demo shows of a flow run."""

    model_config = ConfigDict(frozen=True)

    id: str
    name: str
    deployment_id: str | None = None
    state_type: str = Field(description="SCHEDULED, PENDING, RUNNING, COMPLETED, FAILED, ...")
    state_name: str
    message: str | None = None
    created: datetime
    start_time: datetime | None = None
    end_time: datetime | None = None
    created_by: str | None = Field(None, description="AUTOMATION, or None when started by a person or schedule")
    created_by_name: str | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)
    total_run_time_s: float = 0.0

    @property
    def finished(self) -> bool:
        return self.state_type in TERMINAL

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> FlowRun:
        state = data.get("state") or {}
        creator = data.get("created_by") or {}
        return cls(
            id=data["id"], name=data["name"], deployment_id=data.get("deployment_id"),
            state_type=state.get("type") or data.get("state_type") or "UNKNOWN",
            state_name=state.get("name") or data.get("state_name") or "Unknown", message=state.get("message"),
            created=data["created"], start_time=data.get("start_time"), end_time=data.get("end_time"), created_by=creator.get("type"), created_by_name=creator.get("display_value"),
            parameters=data.get("parameters") or {}, total_run_time_s=data.get("total_run_time") or 0.0,
        )  # fmt: skip


class Artifact(BaseModel):
    """An artifact of a flow run (its data is not kept here)."""

    model_config = ConfigDict(frozen=True)

    id: str
    key: str | None
    type: str | None
    description: str | None


class PrefectApi:
    """Calls to one Prefect API (`http://HOST:PORT/api`) over the given client."""

    def __init__(self, api_url: str, client: httpx.Client) -> None:
        self.api_url = api_url.rstrip("/")
        self.client = client

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        try:
            answer = self.client.request(method, f"{self.api_url}{path}", json=body)
        except httpx.HTTPError as exc:
            raise PrefectApiError(f"{method} {self.api_url}{path}: {exc}") from exc
        if answer.status_code >= 400:
            raise PrefectApiError(f"{method} {self.api_url}{path}: HTTP {answer.status_code}: {answer.text[:300]}")
        return answer.json()

    def deployment_id(self, flow: str, deployment: str) -> str:
        """The id of deployment `flow/deployment`."""
        return str(self._call("GET", f"/deployments/name/{flow}/{deployment}")["id"])

    def run_deployment(self, flow: str, deployment: str, parameters: dict[str, Any] | None = None) -> FlowRun:
        """Schedule a run of `flow/deployment` now (a worker picks it up); its parameters on top of the deployment's."""
        body = {"parameters": parameters} if parameters else {}
        return FlowRun.from_api(
            self._call("POST", f"/deployments/{self.deployment_id(flow, deployment)}/create_flow_run", body)
        )

    def flow_run(self, run_id: str) -> FlowRun:
        return FlowRun.from_api(self._call("GET", f"/flow_runs/{run_id}"))

    def runs_of(self, deployment_id: str, since: datetime) -> list[FlowRun]:
        """Runs of a deployment created at or after `since`, oldest first."""
        body = {
            "flow_runs": {"deployment_id": {"any_": [deployment_id]}},
            "sort": "EXPECTED_START_TIME_ASC",
            "limit": 50,
        }
        runs = [FlowRun.from_api(r) for r in self._call("POST", "/flow_runs/filter", body)]
        return sorted((r for r in runs if r.created >= since), key=lambda r: r.created)

    def wait(self, run_id: str, timeout_s: float, on_change: Callable[[FlowRun], None] | None = None) -> FlowRun:
        """Poll a run until it finishes.

        Raises:
            PrefectApiError: it did not finish within `timeout_s` (the message gives its state).
        """
        deadline = time.monotonic() + timeout_s
        last: str | None = None
        while True:
            run = self.flow_run(run_id)
            if on_change is not None and run.state_name != last:
                on_change(run)
                last = run.state_name
            if run.finished:
                return run
            if time.monotonic() > deadline:
                raise PrefectApiError(f"flow run {run.name} still {run.state_name} after {timeout_s:.0f} s")
            time.sleep(_POLL_S)

    def wait_for_automation_run(
        self, deployment_id: str, since: datetime, timeout_s: float, accept: Callable[[FlowRun], bool]
    ) -> FlowRun:
        """The first finished run of the deployment, created since `since` by an automation, that `accept`s.

        Several runs may come (a scheduled sweep also reports the node down); each ends on its
        own (the recovery's per-node lock and cooldown decide), and the first accepted one is it.

        Raises:
            PrefectApiError: none was accepted within `timeout_s` (the message lists what came).
        """
        deadline = time.monotonic() + timeout_s
        while True:
            runs = [r for r in self.runs_of(deployment_id, since) if r.created_by == "AUTOMATION"]
            chosen = next((r for r in runs if r.finished and accept(r)), None)
            if chosen is not None:
                return chosen
            if time.monotonic() > deadline:
                seen = ", ".join(f"{r.name} {r.state_name}" for r in runs) or "none"
                raise PrefectApiError(
                    f"no run started by an automation finished within {timeout_s:.0f} s (runs: {seen})"
                )
            time.sleep(_POLL_S)

    def artifacts(self, run_id: str) -> list[Artifact]:
        """The artifacts a flow run published."""
        body = {"artifacts": {"flow_run_id": {"any_": [run_id]}}, "sort": "KEY_ASC"}
        return [Artifact.model_validate(a) for a in self._call("POST", "/artifacts/filter", body)]


@contextmanager
def open_api(api_url: str, timeout_s: float = _HTTP_TIMEOUT_S) -> Iterator[PrefectApi]:
    """A `PrefectApi` over Prefect's own HTTP client, which retries what a busy server answers.

    `prefect.client.base.PrefectHttpxSyncClient` retries answers 408, 429, 502 and 503 (after
    Retry-After when given), resets, read timeouts and, once it has connected, refused
    connections, with exponential backoff and jitter, up to PREFECT_CLIENT_MAX_RETRIES times
    (default 5): a Prefect server on busy SQLite answers 503 for a while, and the same call
    from a flow or the `prefect` CLI would ride that out. Errors are still ours to raise
    (`raise_on_all_errors=False`), with the method and URL in the message. Imported here:
    Prefect takes seconds to import and only the demo's tour talks to the API.
    """
    from prefect.client.base import PrefectHttpxSyncClient

    with PrefectHttpxSyncClient(timeout=timeout_s, trust_env=False, raise_on_all_errors=False) as client:
        yield PrefectApi(api_url, client)
