"""The `rollout` Prefect flow against a real engine and llama-server containers, read back from the Prefect API."""

from __future__ import annotations

import socket
from contextlib import closing
from pathlib import Path

import pytest
import yaml
from prefect import get_client
from prefect.cli.deploy._models import PrefectYamlModel
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey, FlowRunFilter, FlowRunFilterId
from prefect.flows import load_flow_from_entrypoint
from prefect.states import State

from flows.rollout import rollout
from homelab.docker_ops.apply import StepStatus
from homelab.gateway.config import render_config
from homelab.inventory import load_inventory
from homelab.rollout.node import NodeRolloutReport
from tasks.rollout import ARTIFACT_KEY
from tests.fixtures.rollout import EndpointPlan, RolloutLab, chat, rollout_lab  # noqa: F401 (fixture)

ROOT = Path(__file__).parent.parent

pytestmark = [pytest.mark.docker, pytest.mark.llama, pytest.mark.usefixtures("prefect_harness")]


def artifact_of(state: State[NodeRolloutReport]) -> str:
    with get_client(sync_client=True) as client:
        [artifact] = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[ARTIFACT_KEY])),
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id])),
        )
    return str(artifact.data)


def run(
    lab: RolloutLab, cluster: Path, *, dry_run: bool = False, gateway: Path | None = None
) -> State[NodeRolloutReport]:
    return rollout(
        str(cluster),
        node="gpu2",
        models_dir=str(lab.models_dir),
        gateway_config=str(gateway) if gateway else None,
        dry_run=dry_run,
        settings=lab.settings(),
        return_state=True,
    )


def test_the_flow_rolls_out_then_a_dry_run_finds_nothing_to_do(rollout_lab: RolloutLab) -> None:
    lab = rollout_lab
    lab.write_model("model.gguf", seed=5)
    endpoint = EndpointPlan("solo", "model.gguf")
    cluster = lab.write_cluster([endpoint])
    gateway = lab.root / "litellm.yaml"

    state = run(lab, cluster, gateway=gateway)

    assert state.is_completed(), state.message
    report = state.result()
    assert report.containers is not None and report.ollama is None
    assert [o.status for o in report.containers.outcomes] == [StepStatus.DONE] * 3
    assert report.gateway == f"{gateway} regenerated; restart the proxy to load it"
    chat(endpoint.port)
    text = artifact_of(state)
    assert text.startswith("## Model rollout on gpu2: done")
    assert f"| create {lab.prefix}solo: missing | done |" in text
    assert "Sweep after the rollout: OPERATIONAL (solo UP)" in text
    assert gateway.read_text() == render_config(load_inventory(cluster))

    again = run(lab, cluster, dry_run=True)

    assert again.is_completed()
    assert again.result().containers.plan.empty
    text = artifact_of(again)
    assert text.startswith("## Model rollout on gpu2: planned (dry run)\n\n- nothing to do")
    assert f"- container {lab.prefix}solo up to date" in text


def test_a_failed_gate_fails_the_flow_after_rolling_back(rollout_lab: RolloutLab) -> None:
    lab = rollout_lab
    model = lab.write_model("model.gguf", seed=6)
    endpoint = EndpointPlan("solo", "model.gguf")
    cluster = lab.write_cluster([endpoint])
    assert run(lab, cluster).is_completed()
    model.write_bytes(model.read_bytes()[:4096])  # truncated: llama-server exits on load
    gateway = lab.root / "litellm.yaml"

    state = run(lab, cluster, gateway=gateway)

    assert state.is_failed()
    assert not gateway.exists(), "a failed rollout leaves the gateway config alone"
    assert (
        state.message is not None
        and f"rollout on gpu2 failed: {lab.prefix}solo failed its health gate" in state.message
    )
    text = artifact_of(state)
    assert text.startswith("## Model rollout on gpu2: FAILED")
    assert f"| replace {lab.prefix}solo: model model.gguf " in text and "| rolled back |" in text
    assert "Last log lines of the failed container:" in text
    assert "Sweep after the rollout: OPERATIONAL (solo UP)" in text, "the old container serves again"
    chat(endpoint.port)


def test_a_container_that_cannot_start_is_rolled_back_by_the_flow(rollout_lab: RolloutLab) -> None:
    lab = rollout_lab
    lab.write_model("model.gguf", seed=9)
    endpoint = EndpointPlan("busy", "model.gguf")
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", endpoint.port))
        squatter.listen()
        state = run(lab, lab.write_cluster([endpoint]))

    assert state.is_failed()
    assert state.message is not None and f"{lab.prefix}busy could not be started" in state.message
    text = artifact_of(state)
    assert f"| create {lab.prefix}busy: missing | rolled back |" in text
    assert "address already in use" in text


def test_prefect_yaml_declares_the_rollout_deployment() -> None:
    raw = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    deployments = {d.name: d for d in PrefectYamlModel.model_validate(raw).deployments}
    deployment = deployments["rollout"]
    assert deployment.work_pool is not None and deployment.work_pool.name == "homelab"
    flow = load_flow_from_entrypoint(str(ROOT / deployment.entrypoint))
    assert flow.name == "rollout"
    assert set(deployment.parameters) <= set(flow.parameters.properties)
    assert not deployment.schedules, "a rollout runs when asked, never on a timer"


def test_a_model_that_does_not_fit_fails_the_flow_before_the_engine_is_touched(rollout_lab: RolloutLab) -> None:
    lab = rollout_lab
    lab.write_model("model.gguf", seed=6)
    cluster = lab.cluster([EndpointPlan("big", "model.gguf")])
    cluster["nodes"][0]["gpus"] = [{"name": "tiny", "vram_gib": 0.5}]
    path = lab.root / "gpu.yaml"
    path.write_text(yaml.safe_dump(cluster))

    state = run(lab, path)

    assert state.is_failed()
    assert "node gpu2: does not fit its GPUs: big: needs " in (state.message or "")
    with closing(lab.client()) as client:
        assert lab.volume not in {v.name for v in client.volumes.list()}


def test_a_symlinked_gateway_config_fails_the_flow_before_the_engine_is_touched(
    rollout_lab: RolloutLab,
) -> None:
    lab = rollout_lab
    lab.write_model("model.gguf", seed=10)
    cluster = lab.write_cluster([EndpointPlan("linked", "model.gguf")])
    real = lab.root / "real-litellm.yaml"
    real.write_text("model_list: []\n")
    link = lab.root / "litellm.yaml"
    link.symlink_to(real)

    state = run(lab, cluster, gateway=link)

    assert state.is_failed()
    assert f"{link}: is a symlink; refusing to write through it" in (state.message or "")
    assert real.read_text() == "model_list: []\n"
    with closing(lab.client()) as client:
        assert lab.volume not in {v.name for v in client.volumes.list()}
