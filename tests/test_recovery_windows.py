"""A Windows Docker Desktop node end to end: the engine restart fails, the wake signs the user in, the node serves.

The node is this machine seen through the recording sshd, with `os: windows` and a private
dockerd of its own (`tests.fixtures.private_dockerd.victim`) whose containers were rolled out
as test_recovery_e2e.py rolls them out (restart policy "no"). The engine is killed. Then, as
on a real Windows node where nobody is signed in:

- the restart is the Windows default, sent as is through sshd; this sshd's shell has no
  PowerShell, so it fails (as `schtasks /Run` of an interactive-only task fails to bring
  Docker Desktop up while nobody is signed in);
- the plan escalates to the wake: a detached "RDP client" script (it reads the password on
  stdin like `xfreerdp /from-stdin`, then keeps running with a child of its own) whose sign-in
  starts the engine again in a session of its own, as Docker Desktop starts at sign-in;
- the flow waits for the engine, starts the containers one at a time, and the node serves;
- when the run ends, the client's whole process group is stopped; the engine keeps running.

Secrets (SSH key, RDP password) must be in no argv, no sshd record and no flow text.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

import hvac
import pytest
import yaml
from pydantic import SecretStr

from blocks import VaultSecrets
from flows.recover_node import FlowRecoveryPolicy, recover_node
from homelab.recovery.plan import Incident, Outcome
from homelab.recovery.windows import WINDOWS_RESTART_DOCKER
from tests.fixtures.docker_engine import _Daemon
from tests.fixtures.openbao import OpenBaoServer
from tests.fixtures.private_dockerd import victim  # noqa: F401 (fixture)
from tests.recovery_sshd import RecordingSSHD
from tests.test_recovery_e2e import (  # noqa: F401  (node_sshd: a fixture)
    SUDO_PASSWORD,
    VAULT_BLOCK,
    _ArgvWatch,
    _flow_run_texts,
    _roll_out_two_models,
    node_sshd,
)

pytestmark = [pytest.mark.docker, pytest.mark.llama]

RDP_PASSWORD = "Rdp-pw-5f1e-windows-99"

# The RDP client stand-in: password from stdin, a child of its own, the "sign-in" starts the
# engine in its own session (Docker Desktop is no child of the RDP client), then it stays.
_RDP_CLIENT = """import subprocess, sys, time
password = sys.stdin.readline().strip()
if password != {password!r}:
    print("ERROR: authentication failure", file=sys.stderr)
    sys.exit(131)
engine = subprocess.Popen({dockerd!r}, stdin=subprocess.DEVNULL, stdout=open({log!r}, "ab"),
                          stderr=subprocess.STDOUT, start_new_session=True)
helper = subprocess.Popen(["sleep", "600"])
open({pids!r}, "w").write(f"{{engine.pid}} {{helper.pid}}")
time.sleep(600)
"""


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def _as_windows_node(path: Path, client: Path) -> None:
    """The rolled-out cluster file's node made a Windows node that an RDP sign-in wakes."""
    data = yaml.safe_load(path.read_text())
    node = data["nodes"][0]
    node["os"] = "windows"
    node["wake"] = {
        "command": f"{client} /v:127.0.0.1 /u:{node['ssh']['user']} /from-stdin",
        "command_secret": "gpu2_rdp",
        "detach": True,
        "command_timeout_s": 300,
    }
    data["secrets"]["gpu2_rdp"] = {"vault": {"path": "homelab/gpu2", "key": "rdp"}}
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def test_failed_restart_escalates_to_the_sign_in_and_the_node_comes_back(
    prefect_harness: None, openbao: OpenBaoServer, victim: _Daemon, node_sshd: RecordingSSHD, tmp_path: Path
) -> None:
    key_text = node_sshd.client_key.read_text()
    vault = hvac.Client(url=openbao.url, token=openbao.root_token)
    vault.secrets.kv.v2.create_or_update_secret(
        path="homelab/gpu2", secret={"ssh_key": key_text, "sudo": SUDO_PASSWORD, "rdp": RDP_PASSWORD}
    )
    VaultSecrets(url=openbao.url, token=SecretStr(openbao.root_token)).save(VAULT_BLOCK, overwrite=True)
    path, _ = _roll_out_two_models(tmp_path, victim, node_sshd)
    pids = tmp_path / "rdp-client.pids"
    client = tmp_path / "rdp-client"
    dockerd = [str(a) for a in victim.process.args]
    client.write_text(
        f"#!{sys.executable}\n"
        + _RDP_CLIENT.format(password=RDP_PASSWORD, dockerd=dockerd, log=str(victim.log), pids=str(pids))
    )
    client.chmod(0o755)
    _as_windows_node(path, client)

    victim.process.terminate()
    victim.process.wait(timeout=60)
    policy = FlowRecoveryPolicy(wait_docker_s=60, poll_s=0.5, cooldown_s=0)
    with _ArgvWatch([RDP_PASSWORD, key_text.splitlines()[2]]) as watch:
        state = recover_node(
            node="gpu2", inventory=str(path), vault_block=VAULT_BLOCK, policy=policy, return_state=True
        )
        ended = time.monotonic()
    incident = state.result(raise_on_failure=False)
    assert isinstance(incident, Incident), incident
    assert incident.outcome is Outcome.RECOVERED, incident.markdown()
    assert [(a.action, a.ok) for a in incident.actions] == [
        ("probe", True),
        ("check docker", False),
        ("check ssh", True),
        ("restart docker", False),
        ("wake", True),
        ("wait for docker", True),
        ("restart containers", True),
        ("probe", True),
    ]
    assert incident.attempts == 1
    assert "exited 127" in incident.actions[3].detail
    assert incident.actions[4].detail.startswith(f"started wake command {client} (detached, process group ")
    # The Windows default went to the node as it is: no sudo, no Start-Process.
    assert node_sshd.commands_log.read_text().splitlines().count(WINDOWS_RESTART_DOCKER) == 1

    engine_pid, helper_pid = (int(p) for p in pids.read_text().split())
    leader = int(incident.actions[4].detail.split("process group ")[1].split(";")[0])
    # The run is over: the client and its child are stopped; the engine the sign-in started runs on.
    deadline = ended + 10
    while (_alive(leader) or _alive(helper_pid)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(leader) and not _alive(helper_pid)
    assert _alive(engine_pid)
    assert os.getpgid(engine_pid) != leader

    assert watch.samples > 10 and watch.hits == []
    texts = asyncio.run(_flow_run_texts(str(state.state_details.flow_run_id)))
    for secret in (RDP_PASSWORD, key_text.splitlines()[2]):
        assert secret not in node_sshd.recorded()
        assert secret not in texts
        assert secret not in incident.markdown()
