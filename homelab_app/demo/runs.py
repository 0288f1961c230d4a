"""Flow runs of the demo through Prefect's own client: start a deployment's run, wait, find, read artifacts.

`open_api` opens Prefect's synchronous client on the demo's server, which retries what a busy
server answers as Prefect's SDK does everywhere; what it still raises becomes a
`PrefectApiError` naming the call. A run that an automation started carries `created_by` of
type AUTOMATION, with the automation's name as its `display_value`: that is how the demo tells
a recovery started by the `homelab.node.down` event from one started by hand.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from homelab.errors import PrefectApiError
from homelab_app.stack.prefect_api import open_client

if TYPE_CHECKING:
    from prefect.client.orchestration import SyncPrefectClient
    from prefect.client.schemas import objects

__all__ = ["TERMINAL", "Artifact", "FlowRun", "PrefectApi", "open_api"]

TERMINAL = frozenset({"COMPLETED", "FAILED", "CRASHED", "CANCELLED"})
_POLL_S = 1.0
_HTTP_TIMEOUT_S = 10.0
# The recovery deployment's runs since the demo began: a few, even after a long-running demo.
_RUNS_LIMIT = 50


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
    def from_prefect(cls, run: objects.FlowRun) -> FlowRun:
        state, creator = run.state, run.created_by
        return cls(
            id=str(run.id), name=run.name, deployment_id=None if run.deployment_id is None else str(run.deployment_id),
            state_type=state.type.value if state else run.state_type.value if run.state_type else "UNKNOWN",
            state_name=(state.name if state else run.state_name) or "Unknown", message=state.message if state else None,
            created=run.created, start_time=run.start_time, end_time=run.end_time,
            created_by=creator.type if creator else None, created_by_name=creator.display_value if creator else None,
            parameters=run.parameters, total_run_time_s=run.total_run_time.total_seconds(),
        )  # fmt: skip


class Artifact(BaseModel):
    """An artifact of a flow run (its data is not kept here)."""

    model_config = ConfigDict(frozen=True)

    id: str
    key: str | None
    type: str | None
    description: str | None


class PrefectApi:
    """The demo's calls to one Prefect server, over Prefect's synchronous client."""

    def __init__(self, client: SyncPrefectClient) -> None:
        self.client = client

    @contextmanager
    def _call(self, what: str) -> Iterator[None]:
        """Prefect's client errors, once its retries are spent, as a PrefectApiError saying what was asked of whom."""
        import httpx
        from prefect.exceptions import ObjectNotFound

        where = f"{what} at {self.client.api_url}"
        try:
            yield
        except ObjectNotFound as exc:
            raise PrefectApiError(f"{where}: not found") from exc
        except httpx.HTTPStatusError as exc:
            raise PrefectApiError(f"{where}: HTTP {exc.response.status_code}: {exc.response.text[:300]}") from exc
        except httpx.HTTPError as exc:
            raise PrefectApiError(f"{where}: {exc!r}") from exc

    def deployment_id(self, flow: str, deployment: str) -> str:
        """The id of deployment `flow/deployment`."""
        with self._call(f"reading deployment {flow}/{deployment}"):
            return str(self.client.read_deployment_by_name(f"{flow}/{deployment}").id)

    def run_deployment(self, flow: str, deployment: str, parameters: dict[str, Any] | None = None) -> FlowRun:
        """Schedule a run of `flow/deployment` now (a worker picks it up); its parameters on top of the deployment's."""
        deployment_id = UUID(self.deployment_id(flow, deployment))
        with self._call(f"starting a run of deployment {flow}/{deployment}"):
            return FlowRun.from_prefect(
                self.client.create_flow_run_from_deployment(deployment_id, parameters=parameters)
            )

    def flow_run(self, run_id: str) -> FlowRun:
        with self._call(f"reading flow run {run_id}"):
            return FlowRun.from_prefect(self.client.read_flow_run(UUID(run_id)))

    def runs_of(self, deployment_id: str, since: datetime) -> list[FlowRun]:
        """Runs of a deployment created at or after `since`, oldest first."""
        from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterDeploymentId
        from prefect.client.schemas.sorting import FlowRunSort

        of_deployment = FlowRunFilter(deployment_id=FlowRunFilterDeploymentId(any_=[UUID(deployment_id)]))
        with self._call(f"listing the runs of deployment {deployment_id}"):
            found = self.client.read_flow_runs(
                flow_run_filter=of_deployment, sort=FlowRunSort.EXPECTED_START_TIME_ASC, limit=_RUNS_LIMIT
            )
        runs = [FlowRun.from_prefect(r) for r in found]
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
        from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId
        from prefect.client.schemas.sorting import ArtifactSort

        of_run = ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[UUID(run_id)]))
        with self._call(f"reading the artifacts of flow run {run_id}"):
            found = self.client.read_artifacts(artifact_filter=of_run, sort=ArtifactSort.KEY_ASC)
        return [Artifact(id=str(a.id), key=a.key, type=a.type, description=a.description) for a in found]


@contextmanager
def open_api(api_url: str, timeout_s: float = _HTTP_TIMEOUT_S) -> Iterator[PrefectApi]:
    """A `PrefectApi` over Prefect's synchronous client for `api_url` (`http://HOST:PORT/api`).

    Prefect's client retries answers 408, 429, 502 and 503 (after Retry-After when given),
    resets, read timeouts and, once it has connected, refused connections, with exponential
    backoff and jitter, up to PREFECT_CLIENT_MAX_RETRIES times (default 5): a Prefect server on
    busy SQLite answers 503 for a while, and a flow or the `prefect` CLI would ride that out too.
    The server is the demo's own on loopback: no proxy from the environment carries the calls.
    """
    with open_client(api_url, timeout_s=timeout_s, trust_env=False) as client:
        yield PrefectApi(client)
