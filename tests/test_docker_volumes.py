"""Models in named volumes on a real engine: verified copy-in, a copy killed half-way, a full volume.

The file at the final name is what running containers load; these tests check that nothing
but a verified copy ever lands there, whatever happens to the copy.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import pytest
from docker.models.containers import Container

from homelab.docker_ops.connect import Engine
from homelab.docker_ops.plan import CopyModel, ReplaceContainer
from homelab.docker_ops.sources import CopyProgress, ModelSource, hash_local_file, model_sources
from homelab.docker_ops.volumes import (
    activate_model,
    copy_into_volume,
    ensure_volume,
    node_source_file,
    volume_files,
)
from homelab.rollout.containers import EngineRollout, StepStatus, roll_out_containers
from tests.fixtures.rollout import EndpointPlan, RolloutLab, chat, rollout_lab  # noqa: F401 (fixture)

pytestmark = pytest.mark.docker

ALL_NAMES = ["model.gguf", ".model.gguf.incoming", ".model.gguf.previous"]


@contextmanager
def lab_engine(lab: RolloutLab) -> Iterator[Engine]:
    with closing(lab.engine(lab.inventory([]).nodes[0])) as engine:
        yield engine


def put_model(engine: Engine, lab: RolloutLab, path: Path) -> str:
    """Copy `path` into the lab volume as model.gguf (verified, then activated); its sha256."""
    source = ModelSource(model_file="model.gguf", local_path=path)
    expected = hash_local_file(path, "model.gguf")
    copy_into_volume(engine, lab.volume, source, expected, lab.settings().helper)
    activate_model(engine, lab.volume, "model.gguf", lab.settings().helper)
    return expected.sha256


def test_a_copy_is_verified_reports_progress_and_lands_under_a_temporary_name(rollout_lab: RolloutLab) -> None:
    lab = rollout_lab
    path = lab.models_dir / "model.gguf"
    path.write_bytes(os.urandom(9 << 20))
    seen: list[CopyProgress] = []
    with lab_engine(lab) as engine:
        assert ensure_volume(engine, lab.volume) is True
        assert ensure_volume(engine, lab.volume) is False
        expected = hash_local_file(path, "model.gguf")
        source = ModelSource(model_file="model.gguf", local_path=path)
        copied = copy_into_volume(engine, lab.volume, source, expected, lab.settings().helper, seen.append)
        held = volume_files(engine, lab.volume, ALL_NAMES, lab.settings().helper)
    assert copied.sha256 == expected.sha256
    assert list(held) == [".model.gguf.incoming"], "nothing at the final name before activation"
    copies = [p.done_bytes for p in seen if p.phase == "copy"]
    assert copies == sorted(copies) and copies[-1] == 9 << 20 and len(copies) >= 3
    assert [p.phase for p in seen][-2:] == ["verify", "verify"]


def test_a_copy_from_a_path_on_the_node_is_verified(rollout_lab: RolloutLab, tmp_path: Path) -> None:
    lab = rollout_lab
    if not lab.docker_engine.base_url.startswith("unix://"):
        pytest.skip("the node's paths are this machine's only when the engine is local")
    on_node = tmp_path / "node-models"
    on_node.mkdir()
    (on_node / "model.gguf").write_bytes(os.urandom(3 << 20))
    source = model_sources(["model.gguf"], node_models_dir=str(on_node))["model.gguf"]
    with lab_engine(lab) as engine:
        ensure_volume(engine, lab.volume)
        expected = node_source_file(engine, source, lab.settings().helper)
        assert expected == hash_local_file(on_node / "model.gguf", "model.gguf")
        copy_into_volume(engine, lab.volume, source, expected, lab.settings().helper)
        activate_model(engine, lab.volume, "model.gguf", lab.settings().helper)
        held = volume_files(engine, lab.volume, ALL_NAMES, lab.settings().helper)
    assert list(held) == ["model.gguf"] and held["model.gguf"].sha256 == expected.sha256


_KILLABLE_COPY = """
import json, sys
from homelab.docker_ops.connect import open_engine
from homelab.docker_ops.helper import HelperSettings
from homelab.docker_ops.sources import ModelSource, SourceFile
from homelab.docker_ops.volumes import copy_into_volume
from homelab.inventory import Node
args = json.loads(sys.argv[1])
engine = open_engine(Node.model_validate(args["node"]))
def report(p):
    print(p.phase, p.done_bytes, p.total_bytes, flush=True)
copy_into_volume(engine, args["volume"], ModelSource.model_validate(args["source"]),
                 SourceFile.model_validate(args["expected"]), HelperSettings(image=args["image"]), report)
"""


def test_a_copy_killed_half_way_leaves_the_old_model_intact(rollout_lab: RolloutLab) -> None:
    lab = rollout_lab
    old = lab.models_dir / "old.gguf"
    old.write_bytes(os.urandom(1 << 20))
    new = lab.models_dir / "model.gguf"
    with new.open("wb") as fh:  # big enough that the copy is still running when it is killed
        for _ in range(192):
            fh.write(os.urandom(1 << 20))
    with lab_engine(lab) as engine:
        ensure_volume(engine, lab.volume)
        old_sha = put_model(engine, lab, old)
        expected = hash_local_file(new, "model.gguf")
        args = {
            "node": lab.inventory([]).nodes[0].model_dump(mode="json"),
            "volume": lab.volume,
            "source": ModelSource(model_file="model.gguf", local_path=new).model_dump(mode="json"),
            "expected": expected.model_dump(mode="json"),
            "image": lab.helper_image,
        }
        copier = subprocess.Popen(
            [sys.executable, "-c", _KILLABLE_COPY, json.dumps(args)], stdout=subprocess.PIPE, text=True
        )
        assert copier.stdout is not None
        for line in copier.stdout:
            phase, done, total = line.split()
            if phase == "copy" and int(done) >= int(total) // 3:
                copier.send_signal(signal.SIGKILL)
                break
        assert copier.wait(timeout=60) == -signal.SIGKILL, "the copy finished before it could be killed"

        held = volume_files(engine, lab.volume, ALL_NAMES, lab.settings().helper)
        assert held["model.gguf"].sha256 == old_sha, "the file at the final name is the old model, whole"
        assert held.get(".model.gguf.incoming") is None or held[".model.gguf.incoming"].size_bytes < expected.size_bytes

        # The next attempt starts over and verifies; the old model stays until activation.
        copy_into_volume(
            engine, lab.volume, ModelSource(model_file="model.gguf", local_path=new), expected, lab.settings().helper
        )
        held = volume_files(engine, lab.volume, ALL_NAMES, lab.settings().helper)
    assert held["model.gguf"].sha256 == old_sha
    assert held[".model.gguf.incoming"].sha256 == expected.sha256


@contextmanager
def holding(lab: RolloutLab, volume: str) -> Iterator[Container]:
    """Keep a tmpfs volume mounted: its content lives only while some container mounts it."""
    with closing(lab.client()) as client:
        box = client.containers.run(
            lab.helper_image,
            ["sleep", "3600"],
            name=f"{lab.prefix}holder",
            detach=True,
            volumes={volume: {"bind": "/v"}},
        )
        try:
            yield box
        finally:
            box.remove(force=True)


@pytest.mark.llama
def test_a_full_volume_is_a_clear_error_and_nothing_is_lost(rollout_lab: RolloutLab) -> None:
    lab = rollout_lab
    with closing(lab.client()) as client:
        client.volumes.create(
            lab.volume, driver="local", driver_opts={"type": "tmpfs", "device": "tmpfs", "o": "size=2m"}
        )
    old_sha = hash_local_file(lab.write_model("model.gguf", seed=1), "model.gguf").sha256
    endpoint = EndpointPlan("solo", "model.gguf")
    inv = lab.inventory([endpoint])
    [node] = inv.nodes
    with holding(lab, lab.volume), closing(lab.engine(node)) as engine:
        first = roll_out_containers(
            EngineRollout.on(engine, inv, node, lab.settings()),
            node,
            model_sources(["model.gguf"], models_dir=lab.models_dir),
        )
        assert first.ok, first.failure
        lab.write_model("model.gguf", seed=2, n_vocab=4096)  # about 2.5 MB: more than the volume has left

        report = roll_out_containers(
            EngineRollout.on(engine, inv, node, lab.settings()),
            node,
            model_sources(["model.gguf"], models_dir=lab.models_dir),
        )
        held = volume_files(engine, lab.volume, ALL_NAMES, lab.settings().helper)

    assert [type(s) for s in report.plan.steps] == [CopyModel, ReplaceContainer]
    assert [o.status for o in report.outcomes] == [StepStatus.FAILED, StepStatus.NOT_RUN]
    assert report.failure is not None
    assert f"node gpu2: volume {lab.volume} is full (no space left on device)" in report.failure
    assert list(held) == ["model.gguf"], "the partial copy is removed"
    assert held["model.gguf"].sha256 == old_sha
    chat(endpoint.port)
