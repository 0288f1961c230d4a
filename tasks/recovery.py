"""Prefect tasks of node recovery: each runs one step of `homelab.recovery.runner.DirectRunner` for the flow.

Retries come from one flag (`tasks.options.task_options`): the tasks that only look (probe,
SSH and engine checks, waits, the cooldown lookup) may retry; restarting the engine, waking
the machine, starting containers and recording the incident are not idempotent
(`homelab.recovery.plan.NON_IDEMPOTENT`) and never retry: the loop decides what to do next
from fresh facts instead.

Secrets are resolved inside the task that uses them, from the names in the cluster file, so
no secret is ever a task parameter or a result: Prefect would store those, and the flow's
parameters hold only a node name, a file path and a block name.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.variables import Variable

from homelab.docker_ops.apply import StepOutcome
from homelab.inventory import Inventory, Node
from homelab.recovery.plan import Incident, Outcome, RecoveryPolicy
from homelab.recovery.record import store_incident
from homelab.recovery.runner import DirectRunner
from homelab.recovery.wake import WakeProcesses
from tasks.access import secret_reader
from tasks.options import task_options

__all__ = [
    "check_node_docker",
    "check_node_ssh",
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

_COOLDOWN_VARIABLE = "recover-node-last-{node}"


def _direct(inv: Inventory, vault_block: str | None) -> DirectRunner:
    """The plain runner, reading secrets through the Vault block (loaded only when a secret is read)."""
    return DirectRunner(inv, secret_reader(inv, vault_block))


@task(name="probe-node-serving", task_run_name="probe-{node.name}", **task_options(idempotent=True))
def probe_node_serving(inv: Inventory, node: Node) -> bool:
    """Fact: does any endpoint of the node serve right now?"""
    return _direct(inv, None).probe_serving(node)


@task(name="check-node-ssh", task_run_name="ssh-{node.name}", **task_options(idempotent=True))
def check_node_ssh(inv: Inventory, node: Node, vault_block: str | None) -> str | None:
    """Fact: None when SSH logs in, else why not (a host key problem raises: waking cannot fix it)."""
    return _direct(inv, vault_block).check_ssh(node)


@task(name="check-node-docker", task_run_name="docker-{node.name}", **task_options(idempotent=True))
def check_node_docker(inv: Inventory, node: Node, vault_block: str | None) -> str | None:
    """Fact: None when the node's engine answers a ping, else why not."""
    return _direct(inv, vault_block).check_docker(node)


@task(name="restart-node-docker", task_run_name="restart-docker-{node.name}", **task_options(idempotent=False))
def restart_node_docker(inv: Inventory, node: Node, policy: RecoveryPolicy, vault_block: str | None) -> str:
    """Operation, not idempotent: restart the engine over SSH (sudo password on stdin)."""
    return _direct(inv, vault_block).restart_docker(node, policy)


@task(name="wake-node", task_run_name="wake-{node.name}", **task_options(idempotent=False))
def wake_node(inv: Inventory, node: Node, vault_block: str | None, processes: WakeProcesses) -> str:
    """Operation, not idempotent: Wake-on-LAN packet or the wake command (its secret on stdin).

    A detached command (`wake.detach`) is left running in `processes`, which the loop stops
    when the run ends; the next wait step judges whether the node came up.
    """
    return _direct(inv, vault_block).wake(node, processes)


@task(name="wait-for-node-ssh", task_run_name="wait-ssh-{node.name}", **task_options(idempotent=True))
def wait_for_node_ssh(inv: Inventory, node: Node, policy: RecoveryPolicy, vault_block: str | None) -> str | None:
    """Wait (bounded) until SSH logs in; None when it does, else the last failure."""
    return _direct(inv, vault_block).wait_for_ssh(node, policy)


@task(name="wait-for-node-docker", task_run_name="wait-docker-{node.name}", **task_options(idempotent=True))
def wait_for_node_docker(inv: Inventory, node: Node, policy: RecoveryPolicy, vault_block: str | None) -> str | None:
    """Wait (bounded) until the engine answers; None when it does, else the last failure."""
    return _direct(inv, vault_block).wait_for_docker(node, policy)


@task(name="wait-for-node-serving", task_run_name="wait-serving-{node.name}", **task_options(idempotent=True))
def wait_for_node_serving(inv: Inventory, node: Node, policy: RecoveryPolicy) -> str | None:
    """Wait (bounded) until an endpoint of a woken node serves; None when one does, else why not."""
    return _direct(inv, None).wait_for_serving(node, policy)


@task(name="restart-node-containers", task_run_name="restart-containers-{node.name}", **task_options(idempotent=False))
def restart_node_containers(inv: Inventory, node: Node, vault_block: str | None) -> list[StepOutcome]:
    """Operation: the node's stopped containers started one at a time, each behind the health gate."""
    return _direct(inv, vault_block).restart_containers(node)


@task(name="last-recovery-finished", **task_options(idempotent=True))
def last_recovery_finished(node: str) -> datetime | None:
    """When the last recovery of `node` that acted ended (a Prefect Variable), for the cooldown."""
    value = Variable.get(_COOLDOWN_VARIABLE.format(node=node), default=None)
    return datetime.fromisoformat(value) if isinstance(value, str) else None


@task(name="record-incident", task_run_name="record-incident-{incident.node}", **task_options(idempotent=False))
def record_incident(incident: Incident, history_url: str, base_dir: str) -> int | None:
    """The incident as an artifact, the cooldown mark, and the incident into the history.

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
    return store_incident(incident, history_url, Path(base_dir))
