"""Prefect tasks of node recovery: each looks at or acts on one node through one `homelab` call.

Retries sit only on tasks that only look (probe, SSH and engine checks, waits). Restarting
the engine, waking the machine and starting containers are not idempotent
(`homelab.recovery.plan.NON_IDEMPOTENT`) and never retry: the flow decides what to do next from
fresh facts instead.

Secrets are resolved inside the task that uses them, from the names in the cluster file, so
no secret is ever a task parameter or a result: Prefect would store those, and the flow's
parameters hold only a node name, a file path and a block name.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from datetime import datetime
from pathlib import Path
from typing import Any

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.variables import Variable

from blocks.vault import VaultSecrets, resolve_secret
from homelab.docker_ops.apply import StepOutcome
from homelab.docker_ops.connect import open_engine
from homelab.health.probe import ProbeResult
from homelab.history import open_history
from homelab.inventory import Inventory, Node
from homelab.recovery.actions import (
    docker_error,
    probe_node,
    restart_containers,
    restart_docker,
    wait_for,
)
from homelab.recovery.plan import Incident, Outcome, RecoveryPolicy
from homelab.recovery.wake import WakeProcesses, wake
from homelab.remote import open_shell, ssh_reachable
from tasks.access import credentials_for
from tasks.access import engine_access as _engine_access

__all__ = [
    "check_node_docker",
    "check_node_ssh",
    "credentials_for",
    "last_recovery_finished",
    "probe_node_serving",
    "record_incident",
    "restart_node_containers",
    "restart_node_docker",
    "wait_for_node_docker",
    "wait_for_node_serving",
    "wait_for_node_ssh",
    "wake_node",
]

_LOOK: dict[str, Any] = {"cache_policy": NO_CACHE, "persist_result": False, "retries": 1, "retry_delay_seconds": 2}
_ACT: dict[str, Any] = {"cache_policy": NO_CACHE, "persist_result": False, "retries": 0}
_COOLDOWN_VARIABLE = "recover-node-last-{node}"


@task(name="probe-node-serving", task_run_name="probe-{node.name}", **_LOOK)
def probe_node_serving(inv: Inventory, node: Node) -> bool:
    """Fact: does any endpoint of the node serve right now?

    Sync, with the probes' event loop in a thread of its own: the flow is sync (blocks load
    synchronously there), and this works whether or not the caller's thread runs a loop.
    """
    return any(r.serving for r in _probe(inv, node))


def _probe(inv: Inventory, node: Node) -> list[ProbeResult]:
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, probe_node(inv, node)).result()


@task(name="check-node-ssh", task_run_name="ssh-{node.name}", **_LOOK)
def check_node_ssh(inv: Inventory, node: Node, vault_block: str | None) -> str | None:
    """Fact: None when SSH logs in, else why not (a host key problem raises: waking cannot fix it)."""
    return ssh_reachable(node, credentials_for(inv, node, vault_block))


@task(name="check-node-docker", task_run_name="docker-{node.name}", **_LOOK)
def check_node_docker(inv: Inventory, node: Node, vault_block: str | None) -> str | None:
    """Fact: None when the node's engine answers a ping, else why not."""
    access = _engine_access(node, credentials_for(inv, node, vault_block)) if _ssh_url(node) else None
    return docker_error(node, access)


def _ssh_url(node: Node) -> bool:
    return node.docker is not None and node.docker.url.startswith("ssh://")


@task(name="restart-node-docker", task_run_name="restart-docker-{node.name}", **_ACT)
def restart_node_docker(inv: Inventory, node: Node, policy: RecoveryPolicy, vault_block: str | None) -> str:
    """Operation, not idempotent: restart the engine over SSH (sudo password on stdin)."""
    credentials = credentials_for(inv, node, vault_block)
    with open_shell(node, credentials) as shell:
        result = restart_docker(shell, node, policy, credentials.password)
    return f"{result.command!r} exited {result.exit_status} in {result.seconds:.2f} s"


@task(name="wake-node", task_run_name="wake-{node.name}", **_ACT)
def wake_node(inv: Inventory, node: Node, vault_block: str | None, processes: WakeProcesses) -> str:
    """Operation, not idempotent: Wake-on-LAN packet or the wake command (its secret on stdin).

    A detached command (`wake.detach`) is left running in `processes`, which the flow stops
    when the run ends; the next wait step judges whether the node came up.
    """
    assert node.wake is not None
    vault = VaultSecrets.load(vault_block, _sync=True) if vault_block else None  # type: ignore[call-arg]
    return wake(node.wake, resolve_secret(inv, node.wake.command_secret, vault), processes)


@task(name="wait-for-node-ssh", task_run_name="wait-ssh-{node.name}", **_ACT)
def wait_for_node_ssh(inv: Inventory, node: Node, policy: RecoveryPolicy, vault_block: str | None) -> str | None:
    """Wait (bounded) until SSH logs in; None when it does, else the last failure."""
    credentials = credentials_for(inv, node, vault_block)
    return wait_for(lambda: ssh_reachable(node, credentials), policy.wait_ssh_s, policy.poll_s)


@task(name="wait-for-node-docker", task_run_name="wait-docker-{node.name}", **_ACT)
def wait_for_node_docker(inv: Inventory, node: Node, policy: RecoveryPolicy, vault_block: str | None) -> str | None:
    """Wait (bounded) until the engine answers; None when it does, else the last failure."""
    access = _engine_access(node, credentials_for(inv, node, vault_block)) if _ssh_url(node) else None
    return wait_for(lambda: docker_error(node, access), policy.wait_docker_s, policy.poll_s)


@task(name="wait-for-node-serving", task_run_name="wait-serving-{node.name}", **_ACT)
def wait_for_node_serving(inv: Inventory, node: Node, policy: RecoveryPolicy) -> str | None:
    """Wait (bounded) until an endpoint of a woken node serves; None when one does, else why not."""

    def check() -> str | None:
        results = _probe(inv, node)
        if any(r.serving for r in results):
            return None
        return "; ".join(f"{r.endpoint} {r.state}: {r.detail or r.reason}" for r in results) or "no endpoints"

    return wait_for(check, policy.wait_serving_s, policy.poll_s)


@task(name="restart-node-containers", task_run_name="restart-containers-{node.name}", **_ACT)
def restart_node_containers(inv: Inventory, node: Node, vault_block: str | None) -> list[StepOutcome]:
    """Operation: the node's stopped containers started one at a time, each behind the health gate."""
    access = _engine_access(node, credentials_for(inv, node, vault_block)) if _ssh_url(node) else None
    engine = open_engine(node, ssh=access)
    try:
        return restart_containers(engine, inv, node)
    finally:
        engine.close()


@task(name="last-recovery-finished", **_LOOK)
def last_recovery_finished(node: str) -> datetime | None:
    """When the last recovery of `node` that acted ended (a Prefect Variable), for the cooldown."""
    value = Variable.get(_COOLDOWN_VARIABLE.format(node=node), default=None)
    return datetime.fromisoformat(value) if isinstance(value, str) else None


@task(name="record-incident", task_run_name="record-incident-{incident.node}", **_ACT)
def record_incident(incident: Incident, history_url: str, base_dir: str) -> int | None:
    """The incident into the history (incidents, incident_actions), as an artifact, and the cooldown mark.

    A flap is recorded too (it is worth counting) but sets no cooldown: nothing was done.
    Returns the history's incident id (None when the run was skipped and nothing is stored).
    """
    if incident.outcome is Outcome.SKIPPED:
        return None
    create_markdown_artifact(
        markdown=incident.markdown(),
        key=f"recover-node-{incident.node}",
        description=f"{incident.outcome}: {incident.reason}",
    )
    if incident.actions:
        Variable.set(_COOLDOWN_VARIABLE.format(node=incident.node), incident.finished_at.isoformat(), overwrite=True)
    with open_history(history_url, relative_to=Path(base_dir)) as history:
        incident_id = history.open_incident(
            incident.node, None, incident.started_at, f"{incident.outcome}: {incident.reason}"
        )
        for action in incident.actions:
            history.add_incident_action(
                incident_id, action.at, action.action, "ok" if action.ok else "failed", action.detail
            )
        history.add_incident_action(
            incident_id, incident.finished_at, "outcome", incident.outcome.value, incident.reason
        )
        if incident.outcome in (Outcome.RECOVERED, Outcome.FLAP):
            history.close_incident(incident_id, incident.finished_at)
    return incident_id
