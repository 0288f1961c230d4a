"""The `rollout` flow's dry run of a node that answers nothing: the preview from the file, each part not checked."""

from __future__ import annotations

from pathlib import Path

import pytest
from prefect import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey, FlowRunFilter, FlowRunFilterId

from flows.rollout import rollout
from tasks.rollout import PREVIEW_ARTIFACT_KEY
from tests.offline_node import offline_cluster

pytestmark = pytest.mark.usefixtures("prefect_harness")


def test_a_dry_run_of_a_node_that_is_down_completes_with_the_plan_from_the_file(tmp_path: Path) -> None:
    engine = "unix:///nonexistent/docker.sock"
    cluster = offline_cluster(tmp_path, engine)

    state = rollout(str(cluster), node="gpu2", models_dir=str(tmp_path / "models"), dry_run=True, return_state=True)

    assert state.is_completed(), state.message
    report = state.result()
    assert report.containers is None and report.ollama is None and report.ok
    assert report.engine_not_checked is not None
    assert report.engine_not_checked.startswith(f"node gpu2 ({engine}): the Docker engine does not answer")
    assert report.ollama_not_checked is not None and "Connection refused" in report.ollama_not_checked
    assert report.preview is not None
    assert [c.name for c in report.preview.containers] == ["homelab-chat", "homelab-coder"]
    with get_client(sync_client=True) as client:
        [artifact] = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[PREVIEW_ARTIFACT_KEY])),
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id])),
        )
    text = str(artifact.data)
    assert text.startswith("## Rollout preview on gpu2 (dry run, from the cluster file)")
    assert f"Containers in start order on `{engine}`:" in text
    chat = "1. `homelab-chat`: chat.gguf in volume models, ctx 1024, GPU layers 3 (the VRAM plan), restart policy no"
    assert chat in text
    assert "   - run: `llama:none -m /models/chat.gguf --host 0.0.0.0 --port 8080 -c 1024 " in text
    assert "   - gate: llamacpp probe of http://127.0.0.1:" in text
    assert "- ollama: qwen2.5:0.5b from qwen2.5:0.5b, num_ctx 2048" in text
    assert f"**Containers: not checked against the engine** (node gpu2 ({engine}): " in text
    assert "**Ollama models: not checked against the Ollama endpoints** (gpu2/ollama: " in text
