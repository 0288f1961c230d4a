"""Recovery end to end on real services: a killed dockerd comes back through sshd, then its containers, one at a time.

The node `gpu2` is this machine seen through a recording sshd (`tests.recovery_sshd`) and a
private dockerd of its own (a fixture slot, so no other test's engine is touched). Its SSH key
and sudo password live in a real OpenBao dev server and are read through the Vault Secrets
block. The engine restart is the flow's `restart_command`: a script that starts this dockerd
again, run as `sudo -S -p '' SCRIPT` through sshd with the password on stdin.

After the run the secrets must appear nowhere: not in any local process's argv (sampled during
the run), not in what the remote side recorded (sshd's command lines, sudo's argv), not in the
flow's logs, parameters or artifacts, and not in the bytes of the Prefect database file.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Self

import hvac
import pytest
import yaml
from prefect.client.orchestration import get_client
from prefect.settings import get_current_settings
from pydantic import SecretStr

from blocks import VaultSecrets
from flows.health_sweep import health_sweep
from flows.recover_node import FlowRecoveryPolicy, recover_node
from homelab.docker_ops.connect import open_engine
from homelab.docker_ops.containers import ContainerSettings, container_state
from homelab.docker_ops.gate import HealthGate
from homelab.docker_ops.helper import HelperSettings
from homelab.docker_ops.serial import RolloutSettings
from homelab.docker_ops.sources import model_sources
from homelab.health.sweep import Prognosis
from homelab.inventory import load_inventory
from homelab.recovery.plan import Incident, Outcome
from homelab.rollout.containers import EngineRollout, roll_out_containers
from homelab.tiny_gguf import write_tiny_llama
from tests.fixtures.docker_engine import BUSYBOX_IMAGE, _Daemon
from tests.fixtures.llama import LLAMA_SERVER_IMAGE
from tests.fixtures.net import LOOPBACK, free_port
from tests.fixtures.openbao import OpenBaoServer
from tests.fixtures.private_dockerd import victim  # noqa: F401 (fixture)
from tests.recovery_sshd import RecordingSSHD, start_recording_sshd

pytestmark = [pytest.mark.docker, pytest.mark.llama]

SUDO_PASSWORD = "E2e-sudo-pw-c0ffee-42"
VAULT_BLOCK = "homelab-vault-e2e"


@pytest.fixture
def node_sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RecordingSSHD]:
    server = start_recording_sshd(tmp_path_factory.mktemp("e2e-sshd"), SUDO_PASSWORD)
    try:
        yield server
    finally:
        server.stop()


class _ArgvWatch:
    """Samples every local process's argv while the recovery runs, looking for the secrets."""

    def __init__(self, secrets: list[str]) -> None:
        self.secrets = [s.encode() for s in secrets]
        self.hits: list[str] = []
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            for proc in Path("/proc").glob("[0-9]*"):
                try:
                    argv = (proc / "cmdline").read_bytes()
                except OSError:
                    continue
                if any(s in argv for s in self.secrets):
                    self.hits.append(argv.replace(b"\0", b" ").decode(errors="replace")[:200])
            self.samples += 1
            time.sleep(0.05)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _cluster(tmp_path: Path, daemon: _Daemon, sshd: RecordingSSHD, ports: dict[str, int]) -> Path:
    node = {
        "name": "gpu2",
        "tier": "secondary",
        "host": LOOPBACK,
        "ssh": {
            "user": sshd.user,
            "port": sshd.port,
            "known_hosts": str(sshd.known_hosts),
            "key_secret": "gpu2_ssh_key",
            "password_secret": "gpu2_sudo",
        },
        "docker": {"url": daemon.base_url},
        "endpoints": [
            {
                "name": name,
                "kind": "llamacpp",
                "url": f"http://{LOOPBACK}:{port}",
                "models": [{"name": name, "alias": name}],
                "container": {
                    "image": LLAMA_SERVER_IMAGE,
                    "model_file": f"{name}.gguf",
                    "volume": "models",
                    "ctx_size": 512,
                    "start_order": order,
                    "restart_policy": "no",
                },
            }
            for order, (name, port) in enumerate(ports.items())
        ],
    }
    data = {
        "name": "e2e",
        "defaults": {"probe": {"connect_s": 1, "total_s": 3}},
        "nodes": [node],
        "secrets": {
            "gpu2_ssh_key": {"vault": {"path": "homelab/gpu2", "key": "ssh_key"}},
            "gpu2_sudo": {"vault": {"path": "homelab/gpu2", "key": "sudo"}},
        },
        "history": {"url": "sqlite:///history.db"},
    }
    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _restart_script(tmp_path: Path, daemon: _Daemon) -> Path:
    script = tmp_path / "restart-test-dockerd"
    argv = shlex.join(str(a) for a in daemon.process.args)
    script.write_text(f"#!/bin/sh\nsetsid {argv} >> {daemon.log} 2>&1 < /dev/null &\n")
    script.chmod(0o755)
    return script


async def _flow_run_texts(flow_run_id: str) -> str:
    """Everything Prefect's API holds about the run: parameters, state, logs, artifacts."""
    async with get_client() as client:
        run = await client.read_flow_run(flow_run_id)
        from prefect.client.schemas.filters import (
            ArtifactFilter,
            LogFilter,
            LogFilterFlowRunId,
        )

        logs = await client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run.id])))
        artifacts = await client.read_artifacts(artifact_filter=ArtifactFilter())
    return "\n".join([run.model_dump_json(), *(log.message for log in logs), *(a.model_dump_json() for a in artifacts)])


def _roll_out_two_models(tmp_path: Path, daemon: _Daemon, sshd: RecordingSSHD) -> tuple[Path, dict[str, int]]:
    """Roll two llama-server containers out on the victim engine; the cluster file and ports.

    Restart policy "no": after an engine restart the containers wait for the flow, which starts
    them one at a time ("unless-stopped" would let the engine start them all at once).
    """
    ports = {"alpha": free_port(), "beta": free_port()}
    path = _cluster(tmp_path, daemon, sshd, ports)
    inv = load_inventory(path)
    node = inv.nodes[0]
    models = tmp_path / "models"
    models.mkdir()
    for seed, name in enumerate(ports, start=1):
        write_tiny_llama(models / f"{name}.gguf", seed=seed)
    settings = RolloutSettings(
        helper=HelperSettings(image=BUSYBOX_IMAGE),
        containers=ContainerSettings(extra_args=("-t", "1", "--no-webui")),
        gate=HealthGate(interval_s=0.2, max_interval_s=1.0, timeout_s=60.0),
    )
    with closing(open_engine(node)) as engine:
        report = roll_out_containers(
            EngineRollout.on(engine, inv, node, settings),
            node,
            model_sources([f"{n}.gguf" for n in ports], models_dir=models),
        )
    assert report.ok, report.failure
    return path, ports


def test_killed_dockerd_is_restarted_through_sshd_and_containers_come_back_serially(
    prefect_harness: None, openbao: OpenBaoServer, victim: _Daemon, node_sshd: RecordingSSHD, tmp_path: Path
) -> None:
    key_text = node_sshd.client_key.read_text()
    root = hvac.Client(url=openbao.url, token=openbao.root_token)
    root.secrets.kv.v2.create_or_update_secret(path="homelab/gpu2", secret={"ssh_key": key_text, "sudo": SUDO_PASSWORD})
    VaultSecrets(url=openbao.url, token=SecretStr(openbao.root_token)).save(VAULT_BLOCK, overwrite=True)
    key_marker = key_text.splitlines()[2]  # a line of the key's base64 body

    path, ports = _roll_out_two_models(tmp_path, victim, node_sshd)
    node = load_inventory(path).nodes[0]

    killed_at = time.perf_counter()
    victim.process.send_signal(signal.SIGTERM)
    victim.process.wait(timeout=60)

    sweep = asyncio.run(health_sweep(inventory=str(path)))
    assert sweep.cluster.prognosis is Prognosis.CRITICAL

    policy = FlowRecoveryPolicy(
        restart_command=str(_restart_script(tmp_path, victim)), wait_docker_s=60, poll_s=0.5, cooldown_s=0
    )
    with _ArgvWatch([SUDO_PASSWORD, key_marker]) as watch:
        state = recover_node(
            node="gpu2", inventory=str(path), vault_block=VAULT_BLOCK, policy=policy, return_state=True
        )
    incident = state.result(raise_on_failure=False)
    assert isinstance(incident, Incident), incident
    assert incident.outcome is Outcome.RECOVERED, incident.markdown()
    actions = [a.action for a in incident.actions]
    assert actions == [
        "probe",
        "check docker",
        "check ssh",
        "restart docker",
        "wait for docker",
        "restart containers",
        "probe",
    ]
    assert [a.ok for a in incident.actions] == [True, False, True, True, True, True, True]
    assert incident.reason == "the node serves again after: restart docker, wait for docker, restart containers"

    again = asyncio.run(health_sweep(inventory=str(path)))
    assert again.cluster.prognosis is Prognosis.OPERATIONAL, again.cluster.reasons
    recovered_s = time.perf_counter() - killed_at

    with closing(open_engine(node)) as engine:
        alpha, beta = (container_state(engine, f"homelab-{n}") for n in ports)
    assert alpha is not None and beta is not None and alpha.started_at and beta.started_at
    assert beta.started_at > alpha.started_at

    # The engine restart went through sshd and sudo, password on stdin only.
    assert f"sudo -S -p '' {policy.restart_command}" in node_sshd.commands_log.read_text()
    assert watch.samples > 10 and watch.hits == []
    for secret in (SUDO_PASSWORD, key_marker):
        assert secret not in node_sshd.recorded()
        assert secret not in (node_sshd.root / "sshd.log").read_text()
        assert secret not in incident.markdown()
    texts = asyncio.run(_flow_run_texts(str(state.state_details.flow_run_id)))
    assert "gpu2" in texts
    for secret in (SUDO_PASSWORD, key_marker):
        assert secret not in texts
    database = Path(get_current_settings().server.database.connection_url.get_secret_value().split("///", 1)[1])
    for db_file in [database, *database.parent.glob(database.name + "-*")]:
        data = db_file.read_bytes()
        assert SUDO_PASSWORD.encode() not in data and key_marker.encode() not in data, db_file

    shares = ", ".join(f"{a.action} {a.seconds:.1f} s" for a in incident.actions)
    ttr = incident.time_to_recover_s
    print(f"\nkilled dockerd -> every endpoint healthy: {recovered_s:.1f} s; recovery run {ttr} s: {shares}")


def test_cli_restarts_the_killed_engine_with_the_key_and_password_from_vault(
    prefect_harness: None, openbao: OpenBaoServer, victim: _Daemon, node_sshd: RecordingSSHD, tmp_path: Path
) -> None:
    """`homelab recover --vault-block`: the same loop in the command's process, Prefect only to read the block.

    The key and the sudo password are read inside the steps that use them: never on a command
    line, in the command's output or in the history.
    """
    key_text = node_sshd.client_key.read_text()
    root = hvac.Client(url=openbao.url, token=openbao.root_token)
    root.secrets.kv.v2.create_or_update_secret(path="homelab/gpu2", secret={"ssh_key": key_text, "sudo": SUDO_PASSWORD})
    VaultSecrets(url=openbao.url, token=SecretStr(openbao.root_token)).save(VAULT_BLOCK, overwrite=True)
    key_marker = key_text.splitlines()[2]
    path, _ = _roll_out_two_models(tmp_path, victim, node_sshd)
    victim.process.send_signal(signal.SIGTERM)
    victim.process.wait(timeout=60)

    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(HOME=str(home), PREFECT_API_URL=str(get_current_settings().api.url))
    script = _restart_script(tmp_path, victim)
    argv = ["recover", "gpu2", "-i", str(path), "--vault-block", VAULT_BLOCK, "--restart-command", str(script)]
    with _ArgvWatch([SUDO_PASSWORD, key_marker]) as watch:
        done = subprocess.run(
            [str(Path(sys.executable).parent / "homelab"), *argv],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "# Node gpu2: RECOVERED" in done.stdout
    assert "- why: the node serves again after: restart docker, wait for docker, restart containers" in done.stdout
    assert f"sudo -S -p '' {script}" in node_sshd.commands_log.read_text()
    assert watch.samples > 10 and watch.hits == []
    history = (tmp_path / "history.db").read_bytes()
    for secret in (SUDO_PASSWORD, key_marker):
        assert secret not in done.stdout + done.stderr
        assert secret not in node_sshd.recorded()
        assert secret.encode() not in history
