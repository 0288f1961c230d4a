"""The `sample-vram` flow under a Prefect test server: Ollama model rows stored, GPU-less nodes reported.

The first test's cluster has one node with an Ollama endpoint (the stand-in) and GPUs declared
but no ssh settings, and a CPU node with neither, which must not be queried at all. The second
logs in to the GPU stand-in sshd (tests/fixtures/gpu_sshd.py) with a key that lives in OpenBao
only, and then looks for the key in everything Prefect stored about the run.
"""

from __future__ import annotations

from pathlib import Path

import hvac
import pytest
import yaml
from prefect import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, LogFilter, LogFilterFlowRunId
from prefect.settings import get_current_settings
from pydantic import SecretStr

from blocks import VaultSecrets
from flows.sample_vram import sample_vram
from homelab.history import open_history
from homelab.reports import build_report, parse_since
from homelab.vram.gpu_facts import GpuStatus
from tests.fixtures.gpu_sshd import GpuSSHD, gpu_node, gpu_sshds  # noqa: F401 (fixture)
from tests.fixtures.ollama import StandInServer
from tests.fixtures.openbao import OpenBaoServer

pytestmark = pytest.mark.usefixtures("prefect_harness")

VAULT_BLOCK = "homelab-vault-vram"


async def test_flow_stores_model_vram_and_reports_nodes(ollama_standin: StandInServer, tmp_path: Path) -> None:
    ollama_standin.standin.load("llama3.2:1b", 600)
    cluster = {
        "version": 1,
        "nodes": [
            {"name": "gpu1", "tier": "primary", "host": "127.0.0.1", "gpus": [{"name": "RTX 4090", "vram_gib": 24.0}],
             "endpoints": [{"name": "ollama", "kind": "ollama", "url": ollama_standin.url}]},
            {"name": "nas", "tier": "nas", "host": "127.0.0.1"},
        ],
        "history": {"url": "sqlite:///history.db"},
    }  # fmt: skip
    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump(cluster))
    state = await sample_vram(str(path), return_state=True)
    assert state.is_completed(), state.message
    sampled = await state.result()
    assert [(f.node, f.status) for f in sampled.nodes] == [("gpu1", GpuStatus.FAILED)]
    assert sampled.nodes[0].detail == "no ssh settings in the cluster file"
    with open_history(f"sqlite:///{tmp_path}/history.db") as history:
        report = build_report(history, parse_since("1h"))
    models = report.tables["models"].set_index("model")
    assert models.loc["llama3.2:1b", "used_peak_gib"] == round(1_321_098_329 / 2**30, 2)


def _database_bytes() -> bytes:
    url = get_current_settings().server.database.connection_url
    assert url is not None
    database = Path(url.get_secret_value().split("///", 1)[1])
    return b"".join(p.read_bytes() for p in [database, *database.parent.glob(database.name + "-*")])


async def test_the_gpu_task_reads_the_vault_key_itself_and_prefect_stores_no_secret(
    gpu_sshds: dict[str, GpuSSHD], openbao: OpenBaoServer, tmp_path: Path
) -> None:
    key_text = gpu_sshds["gpu"].key.read_text()
    marker = key_text.splitlines()[2]  # a line of the key's base64 body
    hvac.Client(url=openbao.url, token=openbao.root_token).secrets.kv.v2.create_or_update_secret(
        path="homelab/vram-gpu1", secret={"ssh_key": key_text}
    )
    await VaultSecrets(url=openbao.url, token=SecretStr(openbao.root_token)).save(VAULT_BLOCK, overwrite=True)
    node = gpu_node(gpu_sshds["gpu"], "gpu1", key_secret="gpu1_ssh_key")
    cluster = {
        "nodes": [node.model_dump(mode="json", exclude_defaults=True)],
        "secrets": {"gpu1_ssh_key": {"vault": {"path": "homelab/vram-gpu1", "key": "ssh_key"}}},
        "history": {"url": "sqlite:///history.db"},
    }
    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump(cluster))

    state = await sample_vram(str(path), vault_block=VAULT_BLOCK, return_state=True)

    assert state.is_completed(), state.message
    sampled = await state.result()
    assert [(f.node, f.status) for f in sampled.nodes] == [("gpu1", GpuStatus.OK)], sampled.nodes[0].detail
    run_id = state.state_details.flow_run_id
    async with get_client() as client:
        run = await client.read_flow_run(run_id)
        task_runs = await client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id])))
        logs = await client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id])))
    [gpu_task] = [t for t in task_runs if t.name == "vram-gpu1"]
    # The task's parameters are what Prefect records as its inputs: names and references only.
    assert sorted(gpu_task.task_inputs) == ["inv", "node", "vault_block"]
    assert run.parameters == {"inventory": str(path), "vault_block": VAULT_BLOCK}
    stored = "\n".join([run.model_dump_json(), *(t.model_dump_json() for t in task_runs), *(r.message for r in logs)])
    assert marker not in stored
    assert marker.encode() not in _database_bytes()
