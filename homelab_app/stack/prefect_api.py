"""The Prefect API of a stack through Prefect's own client: settings, health, work pool, blocks, deployments, workers.

Prefect is imported inside each function, never at the top of this module: Prefect reads
PREFECT_HOME and DO_NOT_TRACK when it is first imported (it creates the home and decides on its
usage events then), and `homelab up` and `homelab demo` import this package before they have
put homelab's offline settings into their environment (`prefect_cli.use_prefect_env`). Each
client talks to the one API URL it is given, whatever the active profile says.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from uuid import UUID

from pydantic import BaseModel

from homelab_app.stack.deploy_config import WORK_POOL

if TYPE_CHECKING:
    from prefect.client.orchestration import SyncPrefectClient

__all__ = [
    "DeployedDeployment",
    "api_healthy",
    "configured_api_url",
    "delete_deployment",
    "deployments",
    "ensure_work_pool",
    "open_client",
    "register_blocks",
    "worker_online",
]

# A readiness probe asks once and soon; the client's own retries (with backoff) would hide
# for seconds whether the server answers now.
_PROBE_TIMEOUT_S = 2.0
_PROBE_RETRIES = 0
# Prefect's server answers at most this many flows per query (PREFECT_SERVER_API_DEFAULT_LIMIT).
_FLOWS_LIMIT = 200


class DeployedDeployment(BaseModel):
    """One deployment as the server has it: what `up` reports and the tests check."""

    id: str
    flow: str
    name: str
    work_queue: str | None
    schedules: list[str]
    paused: bool


@contextlib.contextmanager
def open_client(
    api_url: str, timeout_s: float | None = None, max_retries: int | None = None, trust_env: bool = True
) -> Iterator[SyncPrefectClient]:
    """Prefect's synchronous client for `api_url`, with Prefect's settings pointed there while it is open.

    The settings, not only the client, point at `api_url`: Prefect's own helpers that open a
    client of their own (block registration) must reach the same server.

    Args:
        api_url: `http://HOST:PORT/api`.
        timeout_s: per request; default PREFECT_API_REQUEST_TIMEOUT.
        max_retries: of a busy or failed request; default PREFECT_CLIENT_MAX_RETRIES.
        trust_env: whether proxies and certificates from the environment apply (httpx's switch).
    """
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, PREFECT_CLIENT_MAX_RETRIES, temporary_settings

    updates: dict[Any, Any] = {PREFECT_API_URL: api_url}
    if max_retries is not None:
        updates[PREFECT_CLIENT_MAX_RETRIES] = max_retries
    httpx_settings: dict[str, Any] = {"trust_env": trust_env}
    if timeout_s is not None:
        httpx_settings["timeout"] = timeout_s
    with temporary_settings(updates), get_client(sync_client=True, httpx_settings=httpx_settings) as client:
        yield client


def configured_api_url(workdir: Path) -> str | None:
    """The Prefect API this process is configured for, or None.

    Resolved by Prefect itself from PREFECT_API_URL in the environment, the active profile, or
    prefect.toml, .env and pyproject.toml in `workdir` (where `prefect` commands run from),
    read afresh rather than as Prefect read them at import.
    """
    from prefect.settings import Settings

    # Prefect finds those files in the working directory only.
    with contextlib.chdir(workdir):
        return Settings().api.url or None


def api_healthy(api_url: str) -> bool:
    """Whether the Prefect API at `api_url` answers its health check now."""
    import httpx

    with open_client(api_url, timeout_s=_PROBE_TIMEOUT_S, max_retries=_PROBE_RETRIES) as client:
        try:
            return client.request("GET", "/health").json() is True
        except httpx.HTTPStatusError as exc:
            # 401: up behind basic auth, credentials not ours; the call that needs them says so.
            return exc.response.status_code == 401
        except (httpx.HTTPError, ValueError):  # ValueError: something else answers, not with JSON
            return False


def worker_online(api_url: str, name: str) -> bool:
    """Whether the `homelab` pool lists worker `name` ONLINE now (a worker heartbeats as it starts)."""
    import httpx
    from prefect.client.schemas.objects import WorkerStatus

    with open_client(api_url, timeout_s=_PROBE_TIMEOUT_S, max_retries=_PROBE_RETRIES) as client:
        try:
            workers = client.read_workers_for_work_pool(WORK_POOL)
        except httpx.HTTPError:  # the pool is not there yet, or the server is busy: not online yet
            return False
    return any(w.name == name and w.status == WorkerStatus.ONLINE for w in workers)


def ensure_work_pool(client: SyncPrefectClient) -> bool:
    """Create the `homelab` process pool unless it exists; True when created.

    Not as `prefect work-pool create` does: that asks the server for every known worker type
    (cli/work_pool.py:427 in Prefect 3.9.1), which the server fetches from
    raw.githubusercontent.com. The process worker's own template is what that command would
    store for `--type process` (workers/utilities.py:42).
    """
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectNotFound
    from prefect.workers.process import ProcessWorker

    try:
        client.read_work_pool(WORK_POOL)
        return False
    except ObjectNotFound:
        pass
    template = ProcessWorker.get_default_base_job_template()
    client.create_work_pool(WorkPoolCreate(name=WORK_POOL, type="process", base_job_template=template))
    return True


def register_blocks() -> None:
    """Register every block class the `blocks` package names, as `prefect block register -m blocks` does.

    Call it inside `open_client`: the registration opens a client of its own from the settings.
    """
    import inspect

    from prefect.blocks.core import Block, InvalidBlockRegistration

    import blocks

    for _, member in inspect.getmembers(blocks):
        if Block.is_block_class(member):
            with contextlib.suppress(InvalidBlockRegistration):  # an abstract block; the CLI skips it too
                member.register_type_and_schema()


def deployments(client: SyncPrefectClient) -> list[DeployedDeployment]:
    """Every deployment on the server, with its flow's name and its active schedules in words."""
    flows = {f.id: f.name for f in client.read_flows(limit=_FLOWS_LIMIT)}
    return [
        DeployedDeployment(
            id=str(d.id),
            flow=flows.get(d.flow_id, str(d.flow_id)),
            name=d.name,
            work_queue=d.work_queue_name,
            schedules=[_describe_schedule(s.schedule) for s in d.schedules if s.active],
            paused=bool(d.paused),
        )
        for d in client.read_deployments()
    ]


def delete_deployment(client: SyncPrefectClient, deployment_id: str) -> None:
    client.delete_deployment(UUID(deployment_id))


def _describe_schedule(schedule: Any) -> str:
    from prefect.client.schemas.schedules import CronSchedule, IntervalSchedule, RRuleSchedule

    if isinstance(schedule, CronSchedule):
        return f"cron {schedule.cron} ({schedule.timezone or 'UTC'})"
    if isinstance(schedule, IntervalSchedule):
        return f"every {schedule.interval.total_seconds():g} s"
    if isinstance(schedule, RRuleSchedule):
        return str(schedule.rrule)
    return str(schedule)
