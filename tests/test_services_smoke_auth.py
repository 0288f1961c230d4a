"""Smoke tests for the sshd, OpenBao and Prefect fixtures: each service starts and does its one job.

These prove the fixtures, not homelab code: a later failure in `remote.py`, `blocks/` or `flows/`
tests can then be blamed on the code under test rather than on the service it talks to.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import hvac
import paramiko
import pytest
from prefect import flow, task

from tests.fixtures.openbao import OpenBaoServer
from tests.fixtures.prefect_server import PrefectServer
from tests.fixtures.sshd import SSHServer

SSH_TIMEOUT_S = 10.0
CLIENT_RUN_TIMEOUT_S = 180.0


def _ssh_connect(server: SSHServer, known_hosts: Path) -> paramiko.SSHClient:
    """Key login that trusts only the host keys in `known_hosts`."""
    client = paramiko.SSHClient()
    client.load_host_keys(str(known_hosts))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    client.connect(
        server.host,
        port=server.port,
        username=server.user,
        key_filename=str(server.client_key),
        look_for_keys=False,
        allow_agent=False,
        timeout=SSH_TIMEOUT_S,
        banner_timeout=SSH_TIMEOUT_S,
        auth_timeout=SSH_TIMEOUT_S,
    )
    return client


def test_sshd_runs_a_command_for_a_verified_host(sshd: SSHServer) -> None:
    client = _ssh_connect(sshd, sshd.known_hosts)
    try:
        _, stdout, stderr = client.exec_command("echo hello", timeout=SSH_TIMEOUT_S)
        assert stdout.read().decode().strip() == "hello", stderr.read().decode()
        assert stdout.channel.recv_exit_status() == 0
    finally:
        client.close()


def test_sshd_unknown_host_key_is_refused(sshd: SSHServer, tmp_path: Path) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    with pytest.raises(paramiko.SSHException, match="not found in known_hosts"):
        _ssh_connect(sshd, empty).close()


def test_sshd_mismatched_host_key_is_refused(sshd: SSHServer, tmp_path: Path) -> None:
    # The client's own public key stands in for an impostor's host key of the same type.
    wrong = tmp_path / "known_hosts"
    impostor = sshd.client_key.with_suffix(".pub").read_text().strip()
    wrong.write_text(f"[{sshd.host}]:{sshd.port} {impostor}\n")
    with pytest.raises(paramiko.BadHostKeyException):
        _ssh_connect(sshd, wrong).close()


def test_openbao_kv2_round_trip(openbao: OpenBaoServer) -> None:
    assert openbao.root_token not in repr(openbao)
    client = hvac.Client(url=openbao.url, token=openbao.root_token, timeout=10)
    assert client.is_authenticated()
    mounts = client.sys.list_mounted_secrets_engines()["data"]
    assert mounts["secret/"]["options"]["version"] == "2", mounts["secret/"]
    client.secrets.kv.v2.create_or_update_secret(
        path="smoke/llama-node", secret={"ssh_password": "s3cr3t"}, mount_point="secret"
    )
    read = client.secrets.kv.v2.read_secret_version(
        path="smoke/llama-node", mount_point="secret", raise_on_deleted_version=True
    )
    assert read["data"]["data"] == {"ssh_password": "s3cr3t"}


@task
def _double(x: int) -> int:
    return 2 * x


@flow
def _smoke_flow(x: int) -> int:
    return _double(x)


@pytest.mark.usefixtures("prefect_harness")
def test_prefect_harness_runs_a_flow_with_a_task() -> None:
    assert _smoke_flow(21) == 42


CLIENT_FLOW = textwrap.dedent(
    """
    from prefect import flow, task
    from prefect.runtime import flow_run

    @task
    def one() -> int:
        return 1

    @flow(name="smoke-e2e")
    def smoke() -> str:
        one()
        return flow_run.id

    print(smoke())
    """
)


def test_prefect_server_records_a_flow_run_from_another_process(prefect_server: PrefectServer) -> None:
    done = subprocess.run(
        [sys.executable, "-c", CLIENT_FLOW],
        env={**os.environ, **prefect_server.env},
        capture_output=True,
        text=True,
        timeout=CLIENT_RUN_TIMEOUT_S,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    run_id = done.stdout.strip().splitlines()[-1]
    response = httpx.post(
        f"{prefect_server.api_url}/flow_runs/filter",
        json={"flow_runs": {"id": {"any_": [run_id]}}},
        timeout=10.0,
    )
    response.raise_for_status()
    runs = response.json()
    assert [(r["id"], r["state_type"]) for r in runs] == [(run_id, "COMPLETED")]
