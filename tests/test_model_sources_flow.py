"""The `rollout` flow under real Prefect fetches a gated hub model with the token from Vault (OpenBao), read
inside its task: the token reaches the hub stand-in only as a header, never a flow or task parameter or a log."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import hvac
import pytest
import yaml
from prefect import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from pydantic import SecretStr

from blocks import VaultSecrets
from flows.rollout import rollout
from homelab.tiny_gguf import write_tiny_llama
from tests.fixtures.hf_hub import HubStandIn
from tests.fixtures.openbao import OpenBaoServer

pytestmark = pytest.mark.usefixtures("prefect_harness")
VAULT_BLOCK = "model-sources-vault"
TOKEN = "hf_flow_secret_token_9876543210"


def _cluster(tmp_path: Path) -> Path:
    container = {"image": "llama", "source": {"url": "hf://meta/gated/m.gguf", "token_secret": "hf-token"}}
    node = {
        "name": "gpu2", "tier": "gpu", "host": "127.0.0.1", "gpus": [{"name": "Lab GPU", "vram_gib": 8}],
        "docker": {"url": "unix:///nonexistent/docker.sock"},
        "endpoints": [{"name": "m", "kind": "llamacpp", "url": "http://127.0.0.1:39998", "container": container}],
    }  # fmt: skip
    secrets = {"hf-token": {"vault": {"path": "homelab/hf", "key": "token"}}}
    file = tmp_path / "cluster.yaml"
    file.write_text(yaml.safe_dump({"secrets": secrets, "nodes": [node]}))
    return file


def test_the_rollout_flow_fetches_a_gated_model_with_the_token_from_vault(
    hf_hub: HubStandIn,
    openbao: OpenBaoServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    data = write_tiny_llama(tmp_path / "m.gguf").read_bytes()
    hf_hub.add("meta/gated", {"m.gguf": data}, gated=True)
    hf_hub.tokens.add(TOKEN)
    vault = hvac.Client(url=openbao.url, token=openbao.root_token)
    vault.secrets.kv.v2.create_or_update_secret(path="homelab/hf", secret={"token": TOKEN})
    VaultSecrets(url=openbao.url, token=SecretStr(openbao.root_token)).save(VAULT_BLOCK, overwrite=True)
    for name, value in {"HF_ENDPOINT": hf_hub.endpoint, "HF_HUB_CACHE": str(tmp_path / "hf"),
                        "HOMELAB_MODEL_CACHE": str(tmp_path / "cache")}.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    caplog.set_level(logging.DEBUG)

    state = rollout(str(_cluster(tmp_path)), node="gpu2", dry_run=True, vault_block=VAULT_BLOCK, return_state=True)

    assert state.is_completed(), state.message
    report = state.result()
    assert report.preview is not None and [c.model_file for c in report.preview.containers] == ["m.gguf"]
    assert report.preview.vram[0].startswith("m: all layers on gpu2 GPU0 (Lab GPU)")
    (cached,) = (tmp_path / "hf").glob("models--meta--gated/snapshots/*/m.gguf")
    assert cached.read_bytes() == data
    assert {s.authorization for s in hf_hub.requests(host="hub")} == {f"Bearer {TOKEN}"}
    assert all(s.authorization is None for s in hf_hub.requests(host="cdn"))
    assert TOKEN not in caplog.text
    run_id = state.state_details.flow_run_id
    assert run_id is not None
    with get_client(sync_client=True) as client:
        flow_run = client.read_flow_run(run_id)
        tasks = client.read_task_runs()
    assert TOKEN not in json.dumps(flow_run.parameters, default=str)
    assert TOKEN not in json.dumps([t.task_inputs for t in tasks], default=str)
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id])))
    text = "\n".join(str(a.data) for a in artifacts)
    assert "   - model from `hf://meta/gated/m.gguf`" in text and TOKEN not in text
