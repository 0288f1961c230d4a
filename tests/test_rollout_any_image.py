"""Rollouts of any llama.cpp image, and of old containers' restart policies, on the real engine.

The source document runs `docker run -e MODEL_PATH=/models/model.gguf -p 3009:8000
your-llamacpp-image`: an image with its own start command that reads `MODEL_PATH` and
listens on 8000. Here that image is the test llama-server image with such a CMD; the cluster
file says `command: []`, `env` and `container_port`, and the rollout's container serves on the
host port through the real gate.

Containers made before restart policies were per node have `unless-stopped`; a rollout
whose file resolves to "no" changes that in place, without restarting the server.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import closing
from typing import Any

import pytest

from homelab.docker_ops.containers import container_state
from homelab.docker_ops.plan import UpdateRestartPolicy
from homelab.docker_ops.sources import model_sources
from homelab.inventory import Inventory
from homelab.rollout.containers import EngineRollout, RolloutReport, StepStatus, roll_out_containers
from tests.fixtures.docker_engine import DockerEngine
from tests.fixtures.rollout import EndpointPlan, RolloutLab, chat, rollout_lab  # noqa: F401 (fixture)

pytestmark = [pytest.mark.docker, pytest.mark.llama]

# What "your-llamacpp-image" runs by itself: its own server command, reading MODEL_PATH, on 8000.
OWN_CMD = ["/bin/sh", "-c", 'exec /app/llama-server -m "$MODEL_PATH" --port 8000 -t 1 --no-webui']


@pytest.fixture
def own_cmd_image(docker_engine: DockerEngine, llama_server_image: str) -> Iterator[str]:
    """The llama-server image with no entrypoint and OWN_CMD (a commit with changes: nothing is pulled).

    `ENTRYPOINT [""]` is how a change clears the entrypoint (`ENTRYPOINT []` leaves it as it was).
    """
    tag = f"homelab/own-cmd-{uuid.uuid4().hex[:8]}:test"
    with closing(docker_engine.client()) as client:
        box = client.containers.create(llama_server_image)
        try:
            box.commit(*tag.split(":"), changes=['ENTRYPOINT [""]', f"CMD {json.dumps(OWN_CMD)}", "EXPOSE 8000"])
        finally:
            box.remove(force=True)
        try:
            yield tag
        finally:
            client.images.remove(tag, force=True)


def roll_out(lab: RolloutLab, inv: Inventory) -> RolloutReport:
    [node] = inv.nodes
    files = [e.container.model_file for e in node.endpoints if e.container]
    with closing(lab.engine(node)) as engine:
        runner = EngineRollout.on(engine, inv, node, lab.settings())
        return roll_out_containers(runner, node, model_sources(files, models_dir=lab.models_dir))


def inventory(lab: RolloutLab, endpoint: EndpointPlan, **container: Any) -> Inventory:
    cluster = lab.cluster([endpoint])
    cluster["nodes"][0]["endpoints"][0]["container"].update(container)
    return Inventory.model_validate(cluster)


def test_an_image_with_its_own_command_serves(rollout_lab: RolloutLab, own_cmd_image: str) -> None:
    lab = rollout_lab
    lab.write_model("model.gguf", seed=4)
    endpoint = EndpointPlan("yours", "model.gguf")
    inv = inventory(
        lab, endpoint, image=own_cmd_image, command=[], container_port=8000, env={"MODEL_PATH": "/models/model.gguf"}
    )

    report = roll_out(lab, inv)

    assert report.ok, report.failure
    assert report.outcomes[-1].gate is not None and report.outcomes[-1].gate.healthy
    assert chat(endpoint.port)["choices"][0]["message"]["role"] == "assistant"
    with closing(lab.client()) as client:
        attrs = client.containers.get(f"{lab.prefix}yours").attrs
    config, host = attrs["Config"], attrs["HostConfig"]
    assert (config["Entrypoint"], config["Cmd"]) == (None, OWN_CMD)  # the image's own, nothing of homelab's
    assert "MODEL_PATH=/models/model.gguf" in config["Env"]
    assert host["PortBindings"] == {"8000/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(endpoint.port)}]}
    assert host["RestartPolicy"]["Name"] == "unless-stopped"  # a node without GPUs: the engine brings it back
    assert not host["DeviceRequests"]
    assert roll_out(lab, inv).plan.empty


def test_an_old_unless_stopped_container_is_changed_in_place(rollout_lab: RolloutLab) -> None:
    lab = rollout_lab
    lab.write_model("model.gguf", seed=5)
    endpoint = EndpointPlan("old", "model.gguf")
    # What every container got before the policy was per node.
    assert roll_out(lab, inventory(lab, endpoint, restart_policy="unless-stopped")).ok
    name = f"{lab.prefix}old"
    inv = inventory(lab, endpoint, restart_policy="no")
    with closing(lab.engine(inv.nodes[0])) as engine:
        before = container_state(engine, name)

    report = roll_out(lab, inv)

    assert report.ok, report.failure
    [step] = report.plan.steps
    assert isinstance(step, UpdateRestartPolicy)
    assert step.summary() == f"update restart policy of {name}: unless-stopped -> no"
    assert [o.status for o in report.outcomes] == [StepStatus.DONE]
    with closing(lab.engine(inv.nodes[0])) as engine:
        after = container_state(engine, name)
    with closing(lab.client()) as client:
        attrs = client.containers.get(name).attrs
    assert attrs["HostConfig"]["RestartPolicy"]["Name"] == "no"
    assert before is not None and after is not None and after.running
    assert (after.id, after.started_at, after.restart_count) == (before.id, before.started_at, before.restart_count)
    assert after.config is not None and after.config["restart_policy"] == "unless-stopped"  # labels stay as made
    again = roll_out(lab, inv)  # the engine's own policy is the fact the plan compares
    assert again.plan.empty and f"container {name} up to date" in again.plan.unchanged
    chat(endpoint.port)
