"""Recovery's facts and operations on one node: does it serve, does its engine answer; restart, wait, start.

The decisions are in `homelab.recovery.plan`; these functions look or act, one thing each, so a
runner (`homelab.recovery.runner`) can run each as one step, and the flow as a task with
retries on the ones that only look. Connectors come in as arguments (an open `RemoteShell`, an
`Engine`), as STYLE §5 asks.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import time
from collections.abc import Callable
from contextlib import closing

from pydantic import SecretStr

from homelab.docker_ops.apply import EngineRunner, StepOutcome, StepStatus, apply
from homelab.docker_ops.connect import DockerTimeouts, Engine, SSHAccess, open_engine
from homelab.docker_ops.containers import ContainerSpec, ContainerState, container_state, desired_containers
from homelab.docker_ops.gate import wait_healthy
from homelab.docker_ops.plan import Plan, StartContainer, UpdateRestartPolicy
from homelab.docker_ops.serial import DEFAULT_ROLLOUT_SETTINGS, RolloutSettings
from homelab.errors import DockerOpError
from homelab.health.http import open_probe_client
from homelab.health.probe import ProbeResult, probe_endpoint
from homelab.inventory import Inventory, Node
from homelab.recovery.plan import RecoveryPolicy, default_restart_command
from homelab.remote import CommandResult, RemoteShell, sudo

__all__ = [
    "docker_error",
    "not_serving",
    "probe_node",
    "probe_node_now",
    "restart_containers",
    "restart_docker",
    "wait_for",
]

log = logging.getLogger(__name__)

ENGINE_CHECK_TIMEOUTS = DockerTimeouts(connect_s=5.0, operation_s=30.0)


async def probe_node(inv: Inventory, node: Node) -> list[ProbeResult]:
    """Fact: every endpoint of the node probed once, with the sweep's own probe."""
    async with open_probe_client() as client:
        return [await probe_endpoint(client, node, e, inv.probe_settings(e)) for e in node.endpoints]


def probe_node_now(inv: Inventory, node: Node) -> list[ProbeResult]:
    """`probe_node` from sync code, with its event loop in a thread of its own.

    So it works whether or not the caller's thread already runs a loop (a sync Prefect flow,
    a test, the CLI).
    """
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, probe_node(inv, node)).result()


def not_serving(inv: Inventory, node: Node) -> str | None:
    """Fact: None when an endpoint of the node serves, else what each endpoint answered."""
    results = probe_node_now(inv, node)
    if any(r.serving for r in results):
        return None
    return "; ".join(f"{r.endpoint} {r.state}: {r.detail or r.reason}" for r in results) or "no endpoints"


def docker_error(
    node: Node, ssh: SSHAccess | None = None, timeouts: DockerTimeouts = ENGINE_CHECK_TIMEOUTS
) -> str | None:
    """Fact: None when the node's engine answers a ping at its Docker URL, else why not."""
    try:
        engine = open_engine(node, ssh=ssh, timeouts=timeouts)
    except DockerOpError as exc:
        return str(exc)
    with closing(engine):
        try:
            with engine.errors("ping"):
                engine.client.ping()
        except DockerOpError as exc:
            return str(exc)
    return None


def restart_docker(shell: RemoteShell, node: Node, policy: RecoveryPolicy, password: SecretStr | None) -> CommandResult:
    """Operation (not idempotent): restart the node's Docker engine over SSH.

    On Linux the command runs through sudo; the password, when the inventory names one, goes
    to sudo's stdin (`-S -p ''`), never onto the command line. On Windows the PowerShell
    command runs as the SSH user (Docker Desktop runs per user).

    Raises:
        CommandFailed: the restart command exited non-zero.
        RemoteError: the session broke.
    """
    command = default_restart_command(node, policy)
    if node.os == "linux":
        command = sudo(command, with_password=password is not None)
    return shell.run(command, stdin=password, timeout_s=policy.wait_docker_s)


def wait_for(check: Callable[[], str | None], timeout_s: float, poll_s: float) -> str | None:
    """Call `check` until it returns None (passed) or `timeout_s` is spent; returns the last failure."""
    deadline = time.monotonic() + timeout_s
    while True:
        failure = check()
        if failure is None:
            return None
        if time.monotonic() + poll_s > deadline:
            return f"still failing after {timeout_s:g} s: {failure}"
        time.sleep(poll_s)


def _start_step(spec: ContainerSpec, state: ContainerState) -> StartContainer | UpdateRestartPolicy | None:
    """The step that brings the container up as the file says; None when it runs so (it is only gated).

    A container whose engine holds another restart policy than the file's gets the file's,
    in place (a running server is not restarted). Why recovery sets it too, not only the
    rollout: containers made before "no" became the GPU default keep `unless-stopped` until
    the next rollout, and the engine starts those all at once at every boot.
    """
    if state.restart_policy not in (None, spec.restart_policy):
        return UpdateRestartPolicy(
            spec=spec, reason=f"{state.restart_policy} -> {spec.restart_policy} ({state.status})"
        )
    if state.running:
        return None
    return StartContainer(spec=spec, reason=f"was {state.status} after the node went down")


def restart_containers(
    engine: Engine, inv: Inventory, node: Node, settings: RolloutSettings = DEFAULT_ROLLOUT_SETTINGS
) -> list[StepOutcome]:
    """Operation: start the node's stopped containers one at a time, each behind the rollout's health gate.

    One at a time for the rollout's reason (`homelab.docker_ops.gate`): llama.cpp servers on
    one GPU starting together race for VRAM. This is also the boot path: after a reboot the
    engine leaves containers with restart policy "no" (the GPU default) stopped, for this to
    start in `start_order`. A running container is only gated (its restart policy set to the
    file's first, when it differs: see `_start_step`); a missing one is a failure
    (creating containers is the rollout's job, with its model checks). Stops at the first
    failure; the remaining containers are reported NOT_RUN.
    """
    outcomes: list[StepOutcome] = []
    failed = False
    for spec in desired_containers(node, settings.containers):
        summary = f"start {spec.name}"
        if failed:
            outcomes.append(StepOutcome(summary=summary, status=StepStatus.NOT_RUN))
            continue
        started = time.perf_counter()
        endpoint = next(e for e in node.endpoints if e.name == spec.endpoint)
        state = container_state(engine, spec.name)
        if state is None:
            detail = f"container {spec.name} does not exist; run a rollout to create it"
            outcomes.append(StepOutcome(summary=summary, status=StepStatus.FAILED, detail=detail))
            failed = True
            continue
        step = _start_step(spec, state)
        if step is None:
            gate = wait_healthy(engine, spec.name, node, endpoint, inv.probe_settings(endpoint), settings.gate)
            status = StepStatus.DONE if gate.healthy else StepStatus.FAILED
            seconds = round(time.perf_counter() - started, 2)
            outcomes.append(
                StepOutcome(summary=f"gate {spec.name}", status=status, detail=gate.why, seconds=seconds, gate=gate)
            )
        else:
            runner = EngineRunner(engine, node, {endpoint.name: inv.probe_settings(endpoint)}, settings)
            outcomes += apply(Plan(node=node.name, steps=[step]), runner).outcomes
        failed = outcomes[-1].status is not StepStatus.DONE
        log.info("node %s: %s: %s", node.name, outcomes[-1].summary, outcomes[-1].status)
    return outcomes
