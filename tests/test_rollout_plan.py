"""The pure rollout plan: desired state + facts -> steps with reasons, one case per line of
`tests/cases/docker_ops/plan.jsonl` (a new case needs no new code); and container specs from the inventory."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from homelab.docker_ops.containers import ContainerSettings, ContainerState, container_spec, desired_containers
from homelab.docker_ops.plan import CreateContainer, Facts, ReplaceContainer, plan
from homelab.docker_ops.serial import RolloutSettings
from homelab.docker_ops.sources import ModelSource, SourceFile
from homelab.docker_ops.volumes import VolumeFile
from homelab.inventory import Node
from homelab.rollout.containers import desired_state

CASES = [
    json.loads(line)
    for line in (Path(__file__).parent / "cases" / "docker_ops" / "plan.jsonl").read_text().splitlines()
    if line.strip()
]
IMAGE = "llama:server"


def node_of(containers: list[dict[str, Any]], gpus: bool = False) -> Node:
    endpoints = [
        {
            "name": c["endpoint"],
            "kind": "llamacpp",
            "url": f"http://127.0.0.1:{9000 + i}",
            "container": {"image": IMAGE, **{k: v for k, v in c.items() if k != "endpoint"}},
        }
        for i, c in enumerate(containers)
    ]
    return Node.model_validate(
        {
            "name": "gpu2",
            "tier": "t",
            "host": "127.0.0.1",
            "endpoints": endpoints,
            "gpus": [{"name": "RTX", "vram_gib": 24}] if gpus else [],
        }
    )


def facts_of(case: dict[str, Any], specs: dict[str, Any]) -> Facts:
    images = case.get("images", {})
    containers = {}
    for endpoint, seen in case.get("running", {}).items():
        spec = specs[endpoint]
        config = (
            None if seen.get("unlabelled") else spec.config() | {k: v for k, v in seen.items() if k in spec.config()}
        )
        for key in seen.get("recorded_without", []) if config else []:  # a label from before the field
            del config[key]
        containers[spec.name] = ContainerState(
            name=spec.name,
            id=f"id-{endpoint}",
            status=seen.get("status", "running"),
            image_id=seen.get("image_id", images.get(IMAGE, "sha256:img")),
            managed=config is not None,
            config=config,
            model_sha256=seen.get("model"),
            restart_policy=seen.get("restart_policy", spec.restart_policy),
        )
    files = {
        volume: {f: VolumeFile(volume=volume, model_file=f, sha256=sha, size_bytes=1) for f, sha in held.items()}
        for volume, held in case.get("files", {}).items()
    }
    return Facts(
        volumes=case.get("volumes", []),
        files=files,
        sources={f: SourceFile(model_file=f, sha256=sha, size_bytes=1) for f, sha in case["sources"].items()},
        containers=containers,
        images={IMAGE: images.get(IMAGE)},
        managed=case.get("managed", []),
    )


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_plan(case: dict[str, Any]) -> None:
    node = node_of(case["containers"], gpus=case.get("gpus", False))
    sources = {f: ModelSource(model_file=f, local_path=Path("/models") / f) for f in case["sources"]}
    desired = desired_state(node, sources, RolloutSettings())
    specs = {spec.endpoint: spec for spec in desired.containers}

    result = plan(desired, facts_of(case, specs))

    assert [step.summary() for step in result.steps] == case["steps"]
    assert result.unchanged == case["unchanged"]
    assert result.empty is (not case["steps"])
    activating = [
        s.spec.name for s in result.steps if isinstance(s, CreateContainer | ReplaceContainer) and s.activate_model
    ]
    assert activating == case.get("activates", [])


def test_a_container_spec_from_the_inventory() -> None:
    node = node_of([{"endpoint": "coder", "model_file": "coder.gguf", "ctx_size": 8192, "parallel": 2}])
    raw = node.model_dump()
    raw["endpoints"][0]["models"] = [{"name": "qwen-coder", "alias": "coder"}]
    node = Node.model_validate(raw)
    spec = container_spec(node, node.endpoints[0], ContainerSettings(extra_args=("-t", "4")))
    assert spec.name == "homelab-coder"
    assert (spec.host_ip, spec.host_port) == ("127.0.0.1", 9000)
    assert spec.cmd() == [
        "-m", "/models/coder.gguf", "--host", "0.0.0.0", "--port", "8080",
        "-c", "8192", "-np", "2", "-ngl", "0", "--alias", "qwen-coder", "-t", "4",
    ]  # fmt: skip
    assert not spec.gpus and spec.restart_policy == "unless-stopped"


@pytest.mark.parametrize(
    ("inventory_layers", "planned", "expected"),
    [(None, None, None), (None, 33, 33), (20, 33, 20)],
    ids=["unset-llama-default", "from-vram-plan", "inventory-wins"],
)
def test_gpu_layers_on_a_gpu_node(inventory_layers: int | None, planned: int | None, expected: int | None) -> None:
    box = {"endpoint": "big", "model_file": "big.gguf"} | (
        {"gpu_layers": inventory_layers} if inventory_layers is not None else {}
    )
    node = node_of([box], gpus=True)
    [spec] = desired_containers(node, ContainerSettings(), {"big": planned} if planned is not None else None)
    assert spec.gpus
    assert spec.gpu_layers == expected
    assert ("-ngl" in (spec.cmd() or [])) is (expected is not None)


@pytest.mark.parametrize(
    ("url", "bind"),
    [
        ("http://127.0.0.1:3009", "127.0.0.1"),
        ("http://localhost:3009", "127.0.0.1"),
        ("http://192.168.1.20:3009", "192.168.1.20"),
        ("http://mark-ii.home.arpa:3009", "0.0.0.0"),
    ],
)
def test_the_published_port_binds_to_the_urls_address(url: str, bind: str) -> None:
    node = node_of([{"endpoint": "e", "model_file": "m.gguf"}])
    endpoint = node.endpoints[0].model_copy(update={"url": url})
    assert container_spec(node, endpoint, ContainerSettings()).host_ip == bind
