"""A split GGUF from a source rolled out: every part copied into the volume and moved in with the first, the
first given to llama-server, which opens the others; a changed part replaces the container."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import cast

import pytest
import yaml

from homelab.docker_ops.connect import Engine
from homelab.docker_ops.plan import CopyModel, CreateContainer, DesiredState, Facts, ReplaceContainer, plan
from homelab.docker_ops.serial import RolloutSettings
from homelab.docker_ops.sources import ModelSource, SourceFile
from homelab.docker_ops.volumes import VolumeFile
from homelab.inventory import Inventory
from homelab.rollout.containers import desired_state, source_facts
from tests.fixtures.hf_hub import HubStandIn
from tests.fixtures.ollama_lab import OllamaLab, ollama_lab  # noqa: F401 (fixture)
from tests.fixtures.rollout import EndpointPlan, RolloutLab, chat, rollout_lab  # noqa: F401 (fixture)
from tests.model_sources_util import run_homelab, write_split_llama

PARTS = ["m-00001-of-00003.gguf", "m-00002-of-00003.gguf", "m-00003-of-00003.gguf"]


def _inventory() -> Inventory:
    container = {"image": "llama", "source": f"hf://owner/repo/{PARTS[0]}", "volume": "models"}
    endpoint = {"name": "big", "kind": "llamacpp", "url": "http://127.0.0.1:39999", "container": container}
    return Inventory.model_validate(
        {"nodes": [{"name": "n", "tier": "t", "host": "127.0.0.1", "endpoints": [endpoint]}]}
    )


def _facts(held: dict[str, str], model_sha: str | None = None) -> Facts:
    sources = {p: SourceFile(model_file=p, sha256=hashlib.sha256(p.encode()).hexdigest(), size_bytes=1) for p in PARTS}
    files = {
        "models": {p: VolumeFile(volume="models", model_file=p, sha256=sha, size_bytes=1) for p, sha in held.items()}
    }
    return Facts(volumes=["models"] if held else [], files=files if held else {}, sources=sources, containers={},
                 images={})  # fmt: skip


def test_every_part_is_copied_and_moved_in_with_the_first() -> None:
    inv = _inventory()
    sources = {p: ModelSource(model_file=p, local_path=Path("/cache") / p) for p in PARTS}
    desired = desired_state(inv.nodes[0], sources, RolloutSettings())
    assert desired.parts == {PARTS[0]: PARTS[1:]} and sorted(desired.sources) == PARTS
    facts = _facts({})
    steps = plan(desired, facts).steps
    assert [s.source.model_file for s in steps if isinstance(s, CopyModel)] == PARTS
    (create,) = [s for s in steps if isinstance(s, CreateContainer)]
    assert create.activate_model and create.activate_parts == PARTS[1:]
    digests = ",".join(facts.sources[p].sha256 for p in PARTS)
    assert create.model_sha256 == hashlib.sha256(digests.encode()).hexdigest()  # every part is the model


def test_only_the_changed_part_is_copied_and_it_replaces_the_container() -> None:
    inv = _inventory()
    sources = {p: ModelSource(model_file=p, local_path=Path("/cache") / p) for p in PARTS}
    desired = desired_state(inv.nodes[0], sources, RolloutSettings())
    current = _facts({p: hashlib.sha256(p.encode()).hexdigest() for p in PARTS[:2]} | {PARTS[2]: "0" * 64})
    steps = plan(desired, current).steps
    assert [s.source.model_file for s in steps if isinstance(s, CopyModel)] == [PARTS[2]]
    (step,) = [s for s in steps if isinstance(s, CreateContainer | ReplaceContainer)]
    assert not step.activate_model and step.activate_parts == [PARTS[2]]


@pytest.mark.docker
@pytest.mark.llama
def test_a_split_hub_model_is_rolled_out_and_served(rollout_lab: RolloutLab, hf_hub: HubStandIn) -> None:
    lab = rollout_lab
    _, parts = write_split_llama(lab.root)
    hf_hub.add("owner/split", {p.name: p.read_bytes() for p in parts})
    endpoint = EndpointPlan(f"sp{lab.tag}", parts[0].name)
    cluster = lab.cluster([endpoint])
    cluster["nodes"][0]["endpoints"][0]["container"]["source"] = f"hf://owner/split/{parts[0].name}"
    file = lab.root / "cluster.yaml"
    file.write_text(yaml.safe_dump(cluster, sort_keys=False))
    options: list[str | Path] = ["rollout", "-i", file, "--node", "gpu2", "--hf-endpoint", hf_hub.endpoint]
    options += ["--helper-image", lab.helper_image, "--cache-dir", lab.root / "cache"]

    done = run_homelab(lab.root / "hf", *options)

    assert done.returncode == 0, done.stdout + done.stderr
    for part in parts:
        assert f"copy {part.name} into volume {lab.volume}" in done.stdout
    chat(endpoint.port)  # llama-server opened all three parts from the volume
    again = run_homelab(lab.root / "hf", *options)
    assert again.returncode == 0, again.stderr
    assert "nothing to do" in again.stdout
    for part in parts:
        assert f"= volume {lab.volume} holds {part.name}, sha256 ok" in again.stdout
    assert len(hf_hub.requests("GET")) == 3  # one per part, the first run only


def test_a_source_the_fetch_checked_is_not_hashed_again() -> None:
    checked = SourceFile(model_file="m.gguf", sha256="a" * 64, size_bytes=5)
    missing = Path("/nonexistent/m.gguf")  # reading it would fail: the fetch's digest is used
    sources = {"m.gguf": ModelSource(model_file="m.gguf", local_path=missing, checked=checked)}
    desired = DesiredState(node="n", containers=[], sources=sources)
    assert source_facts(cast(Engine, None), desired, RolloutSettings()) == {"m.gguf": checked}


def test_an_ollama_model_from_a_hub_source_is_uploaded_and_created(
    ollama_lab: OllamaLab, hf_hub: HubStandIn, tmp_path: Path
) -> None:
    lab = ollama_lab
    data = lab.write_model("alpha.gguf", seed=1).read_bytes()
    hf_hub.add("owner/repo", {"Q8/alpha.gguf": data})
    server = lab.standin("box")
    model = {"name": "alpha", "alias": "a", "deploy": {"source": "hf://owner/repo/Q8/alpha.gguf", "num_ctx": 512}}
    cluster = lab.write_cluster({"box": [model]})

    done = run_homelab(tmp_path / "hf", "rollout", "-i", cluster, "--node", "box", "--hf-endpoint", hf_hub.endpoint)

    assert done.returncode == 0, done.stdout + done.stderr
    assert server.standin.created == ["alpha:latest"]
    (upload,) = server.standin.uploads
    assert (upload.digest, upload.status) == (f"sha256:{hashlib.sha256(data).hexdigest()}", 201)
