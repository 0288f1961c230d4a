"""The `rollout` flow on Ollama nodes: two tiny GGUFs deployed to Ollama stand-ins (not Ollama).

What was deployed is read back from the stand-ins and from the Prefect API.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from prefect import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey, FlowRunFilter, FlowRunFilterId
from prefect.states import State

from flows.rollout import rollout
from homelab.docker_ops.apply import StepStatus
from homelab.rollout.node import NodeRolloutReport
from homelab.vram.node_plan import plan_node_vram
from homelab_app.ollama_standin import StandInOptions
from tasks.ollama import OLLAMA_ARTIFACT_KEY
from tests.fixtures.ollama_lab import TEST_SETTINGS, OllamaLab, deployed, ollama_lab  # noqa: F401 (fixture)

pytestmark = pytest.mark.usefixtures("prefect_harness")

ALPHA = deployed("alpha", "a", "alpha.gguf", num_ctx=512)
BETA = deployed("beta:q8", "b", "beta.gguf", num_ctx=1024, template="{{ .Prompt }} ->", keep_alive="30m")


def run(lab: OllamaLab, cluster: Path, node: str = "box", **options: object) -> State[NodeRolloutReport]:
    return rollout(
        str(cluster), node=node, models_dir=str(lab.models_dir), ollama=TEST_SETTINGS, return_state=True, **options
    )


def artifact_of(state: State[NodeRolloutReport]) -> str:
    with get_client(sync_client=True) as client:
        [artifact] = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[OLLAMA_ARTIFACT_KEY])),
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id])),
        )
    return str(artifact.data)


def shown_parameters(url: str, model: str) -> dict[str, str]:
    body = httpx.post(f"{url}/api/show", json={"model": model}, timeout=5).json()
    return dict(line.split(None, 1) for line in body["parameters"].splitlines())


def blob_posts(lab: OllamaLab, node: str = "box") -> int:
    return sum(
        1 for method, path in lab.standins[node].standin.requests if (method, path[:11]) == ("POST", "/api/blobs/")
    )


def test_two_models_deployed_once_preloaded_one_at_a_time_then_one_removed_is_unloaded(ollama_lab: OllamaLab) -> None:
    lab = ollama_lab
    lab.write_model("alpha.gguf", seed=1)
    lab.write_model("beta.gguf", seed=2, n_layer=3)
    server = lab.standin("box")
    cluster = lab.write_cluster({"box": [ALPHA, BETA]})
    inv = lab.inventory(cluster)
    planned = plan_node_vram(inv, inv.nodes[0], models_dir=lab.models_dir).models
    # The stand-in reports alpha's planned figure and twice beta's: one matches, one differs.
    vram = {"alpha:latest": planned["a"].gpu_bytes, "beta:q8": 2 * planned["b"].gpu_bytes}
    server.standin.options = server.standin.options.model_copy(update={"vram_bytes": vram})

    state = run(lab, cluster)

    assert state.is_completed(), state.message
    report = state.result().ollama
    assert [o.status for o in report.outcomes] == [StepStatus.DONE] * 6
    assert [u.status for u in server.standin.uploads] == [201, 201]
    assert server.standin.created == ["alpha:latest", "beta:q8"]
    assert shown_parameters(server.url, "alpha") == {"num_ctx": "512", "num_gpu": str(planned["a"].gpu_layers)}
    assert shown_parameters(server.url, "beta:q8") == {"num_ctx": "1024", "num_gpu": str(planned["b"].gpu_layers)}
    assert planned["a"].gpu_layers == 3 and planned["b"].gpu_layers == 4  # every block and the output layer
    first, second = server.standin.loads
    assert (first.model, second.model) == ("alpha:latest", "beta:q8")
    assert first.finished <= second.started, "the second load began only after the first was resident"
    ps = {m["name"]: m for m in httpx.get(f"{server.url}/api/ps").json()["models"]}
    assert set(ps) == {"alpha:latest", "beta:q8"}
    checks = {c.model: c for c in report.checks}
    assert checks["alpha:latest"].matches and checks["alpha:latest"].difference_bytes == 0
    assert checks["beta:q8"].size_vram == ps["beta:q8"]["size_vram"] and checks["beta:q8"].matches is False
    text = artifact_of(state)
    assert text.startswith("## Ollama rollout on box: done")
    assert "| upload alpha.gguf (0.5 MiB) to ollama: not on the node | done |" in text
    assert "| preload beta:q8 on ollama (keep_alive 30m): just created | done |" in text
    assert f"- alpha:latest on ollama: size_vram {planned['a'].gpu_bytes / 2**20:.1f} MiB" in text
    assert "matches the plan" in text and "differs from the plan" in text

    again = run(lab, cluster)

    assert again.is_completed(), again.message
    assert again.result().ollama.plan.empty
    assert blob_posts(lab) == 2, "the second run sent nothing"
    assert len(server.standin.created) == 2 and len(server.standin.loads) == 2
    assert "- model beta:q8 on ollama loaded" in artifact_of(again)

    removed = run(lab, lab.write_cluster({"box": [ALPHA]}))

    assert removed.is_completed(), removed.message
    [step] = removed.result().ollama.plan.steps
    assert step.summary() == "unload beta:q8 on ollama: loaded but not in the inventory"
    assert [m["name"] for m in httpx.get(f"{server.url}/api/ps").json()["models"]] == ["alpha:latest"]
    assert "beta:q8" in server.standin.models, "unloaded, not deleted: nobody asked for that"

    pruned = run(lab, lab.write_cluster({"box": [ALPHA]}), prune=True)

    assert pruned.is_completed(), pruned.message
    assert [s.summary() for s in pruned.result().ollama.plan.steps] == [
        "delete beta:q8 on ollama: not in the inventory"
    ]
    assert list(server.standin.models) == ["alpha:latest"]


def test_a_changed_parameter_re_creates_and_reloads_only_that_model(ollama_lab: OllamaLab) -> None:
    lab = ollama_lab
    lab.write_model("alpha.gguf", seed=1)
    lab.write_model("beta.gguf", seed=2)
    server = lab.standin("box")
    assert run(lab, lab.write_cluster({"box": [ALPHA, BETA]})).is_completed()

    state = run(lab, lab.write_cluster({"box": [deployed("alpha", "a", "alpha.gguf", num_ctx=2048), BETA]}))

    assert state.is_completed(), state.message
    summaries = [s.summary() for s in state.result().ollama.plan.steps]
    assert summaries == [
        "create alpha:latest on ollama from alpha.gguf, num_ctx 2048, num_gpu 3: num_ctx 512 -> 2048",
        "preload alpha:latest on ollama (keep_alive -1): re-created: loads with the new parameters",
    ]
    assert shown_parameters(server.url, "alpha")["num_ctx"] == "2048"
    assert blob_posts(lab) == 2, "the blob was there already"


def test_a_node_answering_500_on_create_stops_with_the_reason_and_the_other_node_is_untouched(
    ollama_lab: OllamaLab,
) -> None:
    lab = ollama_lab
    lab.write_model("alpha.gguf", seed=1)
    lab.write_model("beta.gguf", seed=2)
    broken = lab.standin("broken", StandInOptions(create_error="no space left on device"))
    healthy = lab.standin("healthy")
    elsewhere = [model | {"alias": f"{model['alias']}2"} for model in (ALPHA, BETA)]  # aliases are cluster-wide
    cluster = lab.write_cluster({"broken": [ALPHA, BETA], "healthy": elsewhere})
    before = list(healthy.standin.requests)  # the fixture's readiness probe

    state = run(lab, cluster, node="broken")

    assert state.is_failed()
    assert state.message is not None
    assert "Ollama rollout on broken failed: create alpha:latest on ollama" in state.message
    assert "HTTP 500: no space left on device" in state.message
    assert broken.standin.created == [] and broken.standin.loads == []
    assert healthy.standin.requests == before, "a failure on one node touches no other"
    text = artifact_of(state)
    assert text.startswith("## Ollama rollout on broken: FAILED")
    assert "| create beta:q8 on ollama from beta.gguf, num_ctx 1024, num_gpu 3: missing | not run |" in text

    other = run(lab, cluster, node="healthy")

    assert other.is_completed(), other.message
    assert healthy.standin.created == ["alpha:latest", "beta:q8"]


def test_a_dry_run_lists_uploads_creates_and_preloads_and_changes_nothing(ollama_lab: OllamaLab) -> None:
    lab = ollama_lab
    lab.write_model("alpha.gguf", seed=1)
    server = lab.standin("box")

    state = run(lab, lab.write_cluster({"box": [ALPHA]}), dry_run=True)

    assert state.is_completed(), state.message
    assert artifact_of(state).splitlines()[:5] == [
        "## Ollama rollout on box: planned (dry run)",
        "",
        "- upload alpha.gguf (0.5 MiB) to ollama: not on the node",
        "- create alpha:latest on ollama from alpha.gguf, num_ctx 512, num_gpu 3: missing",
        "- preload alpha:latest on ollama (keep_alive -1): just created",
    ]
    assert server.standin.uploads == [] and server.standin.created == [] and server.standin.loaded == {}
