"""Hostile model file names in the copy, on a real engine: never run, never read as options or paths.

The cluster file refuses such names; these tests call the core functions directly, so the
second wall (no value is ever spliced into a shell script, paths are absolute, a name is one
plain file name) is shown to hold on its own. Cases: `tests/cases/docker_ops/hostile_names.jsonl`,
one row each (`source`: streamed from this machine, or copied from a folder on the node by a
helper that polls the copy's size, which is where a name once reached `sh -c`).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from homelab.docker_ops.connect import Engine
from homelab.docker_ops.helper import HelperSettings
from homelab.docker_ops.sources import CopyProgress, ModelSource, hash_local_file
from homelab.docker_ops.volumes import activate_model, copy_into_volume, ensure_volume, node_source_file, volume_files
from homelab.errors import DockerOpError
from tests.fixtures.docker_engine import DockerEngine
from tests.inventory_cases import ROOT

pytestmark = pytest.mark.docker

CASES = [json.loads(line) for line in (ROOT / "tests/cases/docker_ops/hostile_names.jsonl").read_text().splitlines()]
PWNED = "PWNED"  # what every injection in the table tries to create
# Big enough that `cp` on the node is still running when the helper first polls its size.
NODE_COPY_BYTES = 192 << 20


@pytest.fixture
def engine(docker_engine: DockerEngine) -> Iterator[Engine]:
    with closing(docker_engine.client()) as client:
        yield Engine(client=client, node="gpu2", url=docker_engine.base_url)


@pytest.fixture
def volume(engine: Engine) -> Iterator[str]:
    name = f"hl{uuid.uuid4().hex[:8]}-names"
    ensure_volume(engine, name)
    try:
        yield name
    finally:
        for box in engine.client.containers.list(all=True, filters={"volume": name}):
            box.remove(force=True)
        engine.client.volumes.get(name).remove(force=True)


def source_for(case: dict[str, Any], folder: Path) -> ModelSource:
    """The case's source file: a small local one, or a big one in a folder the node sees."""
    if case["source"] == "local":
        path = folder / "source.bin"
        path.write_bytes(b"GGUF" + bytes(range(256)) * 64)
        return ModelSource(model_file=case["model_file"], local_path=path)
    on_node = folder / "node-models"
    on_node.mkdir()
    with (on_node / case["model_file"]).open("wb") as fh:
        fh.truncate(NODE_COPY_BYTES)
    return ModelSource(model_file=case["model_file"], node_path=str(on_node / case["model_file"]))


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_a_hostile_model_file_name_is_never_run(
    case: dict[str, Any], engine: Engine, volume: str, busybox_image: str, tmp_path: Path
) -> None:
    helper = HelperSettings(image=busybox_image)
    source = source_for(case, tmp_path)
    expected = hash_local_file(Path(source.node_path or source.local_path or ""), case["model_file"])
    seen: list[CopyProgress] = []

    if case["outcome"] == "refused":
        with pytest.raises(DockerOpError, match="is not a plain file name"):
            copy_into_volume(engine, volume, source, expected, helper, seen.append)
        assert volume_files(engine, volume, [PWNED], helper) == {}
        return

    copy_into_volume(engine, volume, source, expected, helper, seen.append)
    activate_model(engine, volume, case["model_file"], helper)
    held = volume_files(engine, volume, [case["model_file"], PWNED], helper)

    assert list(held) == [case["model_file"]], "the file is there under its own name, and nothing else ran"
    assert held[case["model_file"]].sha256 == expected.sha256
    assert not (ROOT / PWNED).exists() and not Path(PWNED).exists()
    assert not any(p.name == PWNED for p in tmp_path.rglob("*"))
    if case["source"] == "node":
        polled = [p.done_bytes for p in seen if p.phase == "copy"]
        assert len(polled) >= 2, "the size poll (where the name once met a shell) must have run"


def test_a_node_folder_with_colons_is_mounted_as_itself(
    engine: Engine, volume: str, busybox_image: str, tmp_path: Path
) -> None:
    # A bind given as a `source:target:mode` string would split this path into other mounts.
    folder = tmp_path / "models:/etc:rw"
    folder.mkdir(parents=True)
    (folder / "model.gguf").write_bytes(b"GGUF" + bytes(range(256)) * 16)
    source = ModelSource(model_file="model.gguf", node_path=str(folder / "model.gguf"))
    helper = HelperSettings(image=busybox_image)

    expected = node_source_file(engine, source, helper)
    copy_into_volume(engine, volume, source, expected, helper)

    assert expected == hash_local_file(folder / "model.gguf", "model.gguf")
    held = volume_files(engine, volume, [".model.gguf.incoming"], helper)
    assert held[".model.gguf.incoming"].sha256 == expected.sha256


def test_a_missing_node_folder_is_an_error_and_is_not_created(
    engine: Engine, busybox_image: str, tmp_path: Path
) -> None:
    # A bind string made the engine create the folder (as root) before the file was found missing.
    folder = tmp_path / "not-there"
    source = ModelSource(model_file="model.gguf", node_path=str(folder / "model.gguf"))

    with pytest.raises(DockerOpError, match="does not exist"):
        node_source_file(engine, source, HelperSettings(image=busybox_image))

    assert not folder.exists()
