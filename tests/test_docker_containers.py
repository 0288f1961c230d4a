"""Container specs as the engine records them: named volume (never a bind mount), GPU request, port, labels.

A GPU request is only checked by the engine at start (without the NVIDIA runtime it refuses
to start: `could not select device driver "" with capabilities: [[gpu]]`), so a created
container shows what a GPU node would get, on an engine without GPUs.
"""

from __future__ import annotations

import json
from contextlib import closing
from typing import Any

import pytest

from homelab.docker_ops.containers import ContainerSettings, container_spec, container_state, create_container
from homelab.inventory import Node
from tests.fixtures.rollout import RolloutLab, rollout_lab  # noqa: F401 (fixture)

pytestmark = pytest.mark.docker


def test_a_gpu_node_container_as_the_engine_records_it(rollout_lab: RolloutLab) -> None:
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
    assert host["RestartPolicy"]["Name"] == "no"  # a GPU node's containers are started by homelab, one at a time
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


def test_every_field_of_the_container_section_reaches_the_engine(rollout_lab: RolloutLab) -> None:
    lab = rollout_lab
    section: dict[str, Any] = {
        "image": lab.llama_image,
        "model_file": "coder.gguf",
        "volume": lab.volume,
        "container_port": 8000,
        "env": {"MODEL_PATH": "/models/coder.gguf", "LLAMA_ARG_THREADS": "1"},
        "entrypoint": ["/bin/sh", "-c", 'exec /app/llama-server -m "$MODEL_PATH" --port 8000 "$@"', "serve"],
        "command": ["-c", "2048", "-ngl", "12"],
        "restart_policy": "on-failure",
        "gpus": [3],
    }
    node = Node.model_validate(
        {
            "name": "gpu2",
            "tier": "secondary",
            "host": "127.0.0.1",
            "docker": {"url": lab.docker_engine.base_url},
            "gpus": [{"name": "RTX 3090", "vram_gib": 24}, {"name": "RTX 3060", "vram_gib": 12, "index": 3}],
            "endpoints": [{"name": "coder", "kind": "llamacpp", "url": "http://127.0.0.1:3010", "container": section}],
        }
    )
    spec = container_spec(node, node.endpoints[0], ContainerSettings(name_prefix=lab.prefix, extra_args=("-t", "1")))
    with closing(lab.engine(node)) as engine:
        state = create_container(engine, spec, "cd" * 32, node="gpu2")
        with closing(lab.client()) as client:
            attrs = client.containers.get(spec.name).attrs

    config, host = attrs["Config"], attrs["HostConfig"]
    assert config["Entrypoint"] == section["entrypoint"]
    assert config["Cmd"] == ["-c", "2048", "-ngl", "12"]  # the section's command, nothing of homelab's
    assert {"MODEL_PATH=/models/coder.gguf", "LLAMA_ARG_THREADS=1"} <= set(config["Env"])
    assert host["PortBindings"] == {"8000/tcp": [{"HostIp": "127.0.0.1", "HostPort": "3010"}]}
    assert host["RestartPolicy"]["Name"] == "on-failure" and state.restart_policy == "on-failure"
    [gpus] = host["DeviceRequests"]  # `docker run --gpus '"device=3"'`
    assert (gpus["Count"], gpus["DeviceIDs"], gpus["Capabilities"]) == (0, ["3"], [["gpu"]])
    assert json.loads(config["Labels"]["homelab.config"]) == spec.config()
    assert (spec.ctx_size, spec.gpu_layers) == (2048, 12)  # what the VRAM plan is given
