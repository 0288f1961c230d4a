"""Container specs as the engine records them: named volume (never a bind mount), GPU request, port, labels.

A GPU request is only checked by the engine at start, so a created container shows what a
GPU node would get, on an engine without GPUs.
"""

from __future__ import annotations

import json
from contextlib import closing

import pytest

from homelab.docker_ops.containers import ContainerSettings, container_spec, container_state, create_container
from homelab.inventory import Node
from tests.fixtures.rollout import RolloutLab, rollout_lab  # noqa: F401 (fixture)

pytestmark = pytest.mark.docker


def test_a_gpu_node_container_as_the_engine_records_it(rollout_lab: RolloutLab) -> None:  # noqa: F811
    lab = rollout_lab
    node = Node.model_validate(
        {
            "name": "gpu2",
            "tier": "secondary",
            "host": "127.0.0.1",
            "docker": {"url": lab.docker_engine.base_url},
            "gpus": [{"name": "RTX 3090", "vram_gib": 24}],
            "endpoints": [
                {
                    "name": "coder",
                    "kind": "llamacpp",
                    "url": "http://127.0.0.1:3009",
                    "models": [{"name": "qwen-coder", "alias": "coder"}],
                    "container": {
                        "image": lab.helper_image,
                        "model_file": "coder.gguf",
                        "volume": lab.volume,
                        "gpu_layers": 28,
                    },
                }
            ],
        }
    )
    spec = container_spec(node, node.endpoints[0], ContainerSettings(name_prefix=lab.prefix))
    with closing(lab.engine(node)) as engine:
        state = create_container(engine, spec, "ab" * 32, node="gpu2")
        with closing(lab.client()) as client:
            attrs = client.containers.get(spec.name).attrs
        assert container_state(engine, spec.name) == state

    host = attrs["HostConfig"]
    [gpus] = host["DeviceRequests"]  # what `docker run --gpus all` asks for
    assert (gpus["Driver"], gpus["Count"], gpus["Capabilities"], gpus["DeviceIDs"] or []) == ("", -1, [["gpu"]], [])
    assert host["RestartPolicy"]["Name"] == "unless-stopped"
    assert host["PortBindings"] == {"8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": "3009"}]}
    [mount] = attrs["Mounts"]
    assert (mount["Type"], mount["Name"], mount["Destination"], mount["RW"]) == ("volume", lab.volume, "/models", False)
    assert attrs["Config"]["Cmd"] == [
        "-m", "/models/coder.gguf", "--host", "0.0.0.0", "--port", "8080",
        "-c", "4096", "-np", "1", "-ngl", "28", "--alias", "qwen-coder",
    ]  # fmt: skip
    labels = attrs["Config"]["Labels"]
    assert labels["homelab.managed"] == "rollout"
    assert labels["homelab.model.sha256"] == "ab" * 32
    assert json.loads(labels["homelab.config"]) == spec.config()
    assert labels["homelab.config.sha256"] == spec.digest()
    assert state.status == "created" and state.model_sha256 == "ab" * 32 and state.config == spec.config()
