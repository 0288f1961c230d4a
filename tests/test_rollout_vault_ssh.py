"""A rollout to an ssh:// engine logs in with the node's key from Vault, never the agent's: flow and command.

Real parts: OpenBao holds the key, the test sshd accepts only it (a forced command that
reaches the test dockerd), the rollout starts a real llama-server container, and Prefect's
test server records the run. The agent is out of reach (no SSH_AUTH_SOCK, a HOME without
keys), and sshd's log must show the Vault key's fingerprint accepted. Afterwards the key is
nowhere in what Prefect stored: the flow run's parameters, its task runs, logs, artifacts,
and the bytes of the database file.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import hvac
import pytest
import yaml
from prefect import get_client
from prefect.client.schemas.filters import ArtifactFilter, FlowRunFilter, FlowRunFilterId, LogFilter, LogFilterFlowRunId
from prefect.settings import get_current_settings
from prefect.states import State
from pydantic import SecretStr

from blocks import VaultSecrets
from flows.rollout import rollout
from homelab.docker_ops.apply import StepStatus
from homelab.rollout.node import NodeRolloutReport
from tests.docker_ssh import docker_only_key, fingerprint
from tests.fixtures.openbao import OpenBaoServer
from tests.fixtures.rollout import EndpointPlan, RolloutLab, chat, rollout_lab  # noqa: F401 (fixture)
from tests.fixtures.sshd import SSHServer

pytestmark = [pytest.mark.docker, pytest.mark.llama, pytest.mark.usefixtures("prefect_harness")]

VAULT_BLOCK = "homelab-vault-rollout"
HOMELAB = Path(sys.executable).with_name("homelab")


@pytest.fixture
def keyless_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """No SSH agent and a HOME without ~/.ssh keys: only a key from the store can log in."""
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    monkeypatch.setenv("HOME", str(home))
    yield home
    assert not list((home / ".ssh").glob("id_*"))


def _vault_cluster(lab: RolloutLab, sshd: SSHServer, endpoint: EndpointPlan) -> Path:
    data = lab.cluster([endpoint], docker_url=f"ssh://{sshd.user}@{sshd.host}:{sshd.port}")
    data["nodes"][0]["ssh"] = {
        "user": sshd.user, "port": sshd.port, "known_hosts": str(sshd.known_hosts), "key_secret": "gpu2_ssh_key",
    }  # fmt: skip
    data["secrets"] = {"gpu2_ssh_key": {"vault": {"path": "homelab/rollout-gpu2", "key": "ssh_key"}}}
    path = lab.root / "cluster.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _accepted(sshd: SSHServer, key_fingerprint: str) -> int:
    log = (sshd.root / "sshd.log").read_text(errors="replace")
    return sum(1 for line in log.splitlines() if "Accepted publickey" in line and key_fingerprint in line)


def _stored_texts(state: State[NodeRolloutReport]) -> str:
    """Everything Prefect's API holds about the run: its parameters, its task runs, logs, artifacts."""
    run_id = state.state_details.flow_run_id
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(run_id)
        tasks = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id])))
        logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id])))
        artifacts = client.read_artifacts(artifact_filter=ArtifactFilter())
    assert tasks, "the run has task runs"
    parts = [run.model_dump_json(), *(t.model_dump_json() for t in tasks), *(log.message for log in logs)]
    return "\n".join([*parts, *(a.model_dump_json() for a in artifacts)])


def _database_bytes() -> bytes:
    url = get_current_settings().server.database.connection_url
    assert url is not None
    database = Path(url.get_secret_value().split("///", 1)[1])
    return b"".join(p.read_bytes() for p in [database, *database.parent.glob(database.name + "-*")])


def test_the_flow_and_the_command_reach_an_ssh_engine_with_the_vault_key_only(
    rollout_lab: RolloutLab,
    sshd: SSHServer,
    openbao: OpenBaoServer,
    keyless_home: Path,
    tmp_path: Path,
) -> None:
    lab = rollout_lab
    key = docker_only_key(sshd, lab.docker_engine, tmp_path)
    key_text = key.read_text()
    marker = key_text.splitlines()[2]  # a line of the key's base64 body
    hvac.Client(url=openbao.url, token=openbao.root_token).secrets.kv.v2.create_or_update_secret(
        path="homelab/rollout-gpu2", secret={"ssh_key": key_text}
    )
    VaultSecrets(url=openbao.url, token=SecretStr(openbao.root_token)).save(VAULT_BLOCK, overwrite=True)
    key.unlink()  # from here on the key lives in Vault only
    lab.write_model("model.gguf", seed=11)
    endpoint = EndpointPlan(f"vault{lab.tag}", "model.gguf")
    cluster = _vault_cluster(lab, sshd, endpoint)
    key_fingerprint = fingerprint(key.with_suffix(".pub"))

    state = rollout(
        str(cluster), node="gpu2", models_dir=str(lab.models_dir), settings=lab.settings(), vault_block=VAULT_BLOCK,
        return_state=True,
    )  # fmt: skip

    assert state.is_completed(), state.message
    report = state.result()
    assert report.containers is not None
    assert [o.status for o in report.containers.outcomes] == [StepStatus.DONE] * 3
    chat(endpoint.port)
    after_flow = _accepted(sshd, key_fingerprint)
    assert after_flow > 0, "sshd accepted the Vault key"
    stored = _stored_texts(state)
    assert VAULT_BLOCK in stored and marker not in stored
    assert marker.encode() not in _database_bytes()

    env = {k: v for k, v in os.environ.items() if k not in ("HOMELAB_INVENTORY", "SSH_AUTH_SOCK")}
    env |= {"COLUMNS": "250", "PREFECT_API_URL": str(get_current_settings().api.url)}
    options = ["rollout", "--inventory", str(cluster), "--node", "gpu2", "--models-dir", str(lab.models_dir)]
    options += ["--helper-image", lab.helper_image]

    def homelab(*extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(HOMELAB), *options, *extra], capture_output=True, text=True, env=env, timeout=300)

    without = homelab("--dry-run")
    assert without.returncode == 0, without.stderr
    assert "containers: not checked against the engine (vault secret/homelab/rollout-gpu2: no Vault Secrets" in (
        without.stdout
    )
    assert _accepted(sshd, key_fingerprint) == after_flow

    # The command's containers have their own names (the lab's prefix is a flow setting), so a
    # dry run: it logs in and reads the engine's facts (the volume through a helper) all the same.
    checked = homelab("--dry-run", "--vault-block", VAULT_BLOCK)

    assert checked.returncode == 0, checked.stderr
    assert "not checked" not in checked.stdout
    assert f"= volume {lab.volume} holds model.gguf, sha256 ok" in checked.stdout
    assert f"create homelab-{endpoint.name}: missing" in checked.stdout
    assert _accepted(sshd, key_fingerprint) > after_flow, "the command logged in with the Vault key too"
    assert marker not in checked.stdout + checked.stderr


def test_a_vault_block_that_cannot_be_loaded_is_said_in_one_line(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    node = {
        "name": "gpu2", "tier": "secondary", "host": "127.0.0.1",
        "ssh": {"user": "ops", "known_hosts": str(tmp_path / "known_hosts"), "key_secret": "gpu2_ssh_key"},
        "docker": {"url": "ssh://ops@127.0.0.1:22"},
        "endpoints": [{"name": "solo", "kind": "llamacpp", "url": "http://127.0.0.1:18080",
                       "container": {"image": "llama:none", "model_file": "model.gguf"}}],
    }  # fmt: skip
    secrets = {"gpu2_ssh_key": {"vault": {"path": "homelab/gpu2", "key": "ssh_key"}}}
    cluster = tmp_path / "cluster.yaml"
    cluster.write_text(yaml.safe_dump({"nodes": [node], "secrets": secrets}))
    (tmp_path / "model.gguf").write_bytes(b"GGUF")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "XDG_")) and k != "HOMELAB_INVENTORY"}
    env |= {"HOME": str(home), "COLUMNS": "250", "PREFECT_API_URL": str(get_current_settings().api.url)}
    base = [str(HOMELAB), "rollout", "-i", str(cluster), "--node", "gpu2", "--models-dir", str(tmp_path)]
    base += ["--vault-block", "no-such-block"]

    planned = subprocess.run([*base, "--dry-run"], capture_output=True, text=True, env=env, timeout=120)
    failed = subprocess.run(base, capture_output=True, text=True, env=env, timeout=120)

    said = "vault block 'no-such-block': Unable to find block document named no-such-block"
    assert planned.returncode == 0, planned.stderr
    assert f"containers: not checked against the engine ({said}" in planned.stdout
    assert failed.returncode == 1
    assert said in failed.stderr and "Traceback" not in failed.stderr
    assert not (home / ".prefect").exists(), "Prefect's state goes under homelab's, not ~/.prefect"
