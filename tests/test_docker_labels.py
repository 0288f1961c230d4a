"""What a node's containers say is input from outside: labels and logs, bounded and never trusted.

Logs: a server may print megabytes without a newline; each line of a failure report's tail stays short.
Labels: a bad one is "no recorded config".

A container of a managed name may have been made by hand or by another tool; its
`homelab.config` label then is anything. On a real engine, each label of
`tests/cases/docker_ops/hostile_labels.jsonl` gives a state with no config (so the plan
replaces the container), never an exception that stops the rollout.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import closing
from typing import Any

import pytest

from homelab.docker_ops.connect import Engine
from homelab.docker_ops.containers import LABEL_CONFIG, LABEL_MANAGED, container_state, log_tail
from tests.fixtures.docker_engine import DockerEngine
from tests.inventory_cases import ROOT

pytestmark = pytest.mark.docker

CASES = [json.loads(line) for line in (ROOT / "tests/cases/docker_ops/hostile_labels.jsonl").read_text().splitlines()]


@pytest.fixture
def engine(docker_engine: DockerEngine) -> Iterator[Engine]:
    with closing(docker_engine.client()) as client:
        yield Engine(client=client, node="gpu2", url=docker_engine.base_url)


def label_of(case: dict[str, Any]) -> str:
    if "config" in case:
        return str(case["config"])
    text, times = case["config_repeat"]
    return str(text) * int(times)


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_a_hostile_config_label_is_no_recorded_config(case: dict[str, Any], engine: Engine, busybox_image: str) -> None:
    name = f"hl{uuid.uuid4().hex[:8]}-labelled"
    labels = {LABEL_MANAGED: "true", LABEL_CONFIG: label_of(case)}
    box = engine.client.containers.create(busybox_image, ["true"], name=name, labels=labels)
    try:
        state = container_state(engine, name)
    finally:
        box.remove(force=True)

    assert state is not None and state.managed
    assert state.config is None


def test_a_log_tail_is_bounded_whatever_the_container_prints(engine: Engine, busybox_image: str) -> None:
    name = f"hl{uuid.uuid4().hex[:8]}-chatty"
    # 8 MiB without a newline, then two short lines.
    script = "head -c 8388608 /dev/zero | tr '\\0' x; echo; echo second-last; echo last"
    box = engine.client.containers.run(busybox_image, ["sh", "-c", script], name=name, detach=True)
    try:
        assert box.wait(timeout=60)["StatusCode"] == 0
        tail = log_tail(engine, name)
    finally:
        box.remove(force=True)

    assert tail[-2:] == ["second-last", "last"]
    assert all(len(line) <= 500 for line in tail)
