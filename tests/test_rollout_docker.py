"""Model rollout against a real Docker engine and real llama-server containers serving tiny GGUFs.

What the user sees is checked: containers healthy and answering chat completions on their
published ports, the engine's own start times, the plan's reasons, the report's failure text.
"""

from __future__ import annotations

import logging
import socket
from contextlib import closing

import pytest

from homelab.docker_ops.containers import container_state
from homelab.docker_ops.plan import CopyModel, CreateContainer, EnsureVolume, ReplaceContainer
from homelab.docker_ops.sources import model_sources
from homelab.docker_ops.volumes import volume_files
from homelab.inventory import Inventory
from homelab.rollout.containers import EngineRollout, RolloutReport, StepStatus, plan_node, roll_out_containers
from tests.fixtures.rollout import EndpointPlan, RolloutLab, chat, rollout_lab  # noqa: F401 (fixture)

pytestmark = [pytest.mark.docker, pytest.mark.llama]


def roll_out(lab: RolloutLab, inv: Inventory, *, dry_run: bool = False) -> RolloutReport:
    [node] = inv.nodes
    files = [e.container.model_file for e in node.endpoints if e.container]
    engine = lab.engine(node)
    with closing(engine):
        sources = model_sources(files, models_dir=lab.models_dir)
        return roll_out_containers(EngineRollout.on(engine, inv, node, lab.settings()), node, sources, dry_run=dry_run)


def test_two_containers_start_one_after_the_other_and_a_rerun_changes_nothing(
    rollout_lab: RolloutLab,
    caplog: pytest.LogCaptureFixture,
) -> None:
    lab = rollout_lab
    lab.write_model("alpha.gguf", seed=1)
    lab.write_model("beta.gguf", seed=2)
    endpoints = [
        EndpointPlan("beta", "beta.gguf", start_order=2),
        EndpointPlan("alpha", "alpha.gguf", start_order=1),
    ]
    inv = lab.inventory(endpoints)
    caplog.set_level(logging.INFO, logger="homelab.docker_ops")

    report = roll_out(lab, inv)

    assert report.ok, report.failure
    kinds = [type(s) for s in report.plan.steps]
    assert kinds == [EnsureVolume, CopyModel, CopyModel, CreateContainer, CreateContainer]
    assert [o.status for o in report.outcomes] == [StepStatus.DONE] * 5
    alpha_gate, beta_gate = (o.gate for o in report.outcomes[3:])
    assert alpha_gate is not None and beta_gate is not None
    assert (alpha_gate.container, beta_gate.container) == (f"{lab.prefix}alpha", f"{lab.prefix}beta")
    # Strictly serial: beta's engine-recorded start comes after alpha passed its gate.
    engine = lab.engine(inv.nodes[0])
    with closing(engine):
        alpha = container_state(engine, f"{lab.prefix}alpha")
        beta = container_state(engine, f"{lab.prefix}beta")
    assert alpha is not None and beta is not None and alpha.running and beta.running
    assert alpha.started_at is not None and beta.started_at is not None
    assert alpha.started_at < alpha_gate.finished_at <= beta.started_at
    gate_log = [r.getMessage() for r in caplog.records if r.name.startswith("homelab.docker_ops")]
    passed = gate_log.index(f"gate {lab.prefix}alpha: passed: {alpha_gate.why}")
    started_beta = next(i for i, m in enumerate(gate_log) if m.startswith(f"node gpu2: started {lab.prefix}beta"))
    assert passed < started_beta
    for endpoint in endpoints:
        assert chat(endpoint.port)["choices"][0]["message"]["role"] == "assistant"

    again = roll_out(lab, inv)

    assert again.ok and again.plan.empty and again.outcomes == []
    assert sorted(again.plan.unchanged) == sorted(
        [
            f"volume {lab.volume} exists",
            f"volume {lab.volume} holds alpha.gguf, sha256 ok",
            f"volume {lab.volume} holds beta.gguf, sha256 ok",
            f"container {lab.prefix}alpha up to date",
            f"container {lab.prefix}beta up to date",
        ]
    )
    with closing(lab.engine(inv.nodes[0])) as engine:
        assert container_state(engine, f"{lab.prefix}alpha") == alpha
        assert container_state(engine, f"{lab.prefix}beta") == beta


def test_a_changed_context_size_replaces_only_that_container(rollout_lab: RolloutLab) -> None:
    lab = rollout_lab
    lab.write_model("alpha.gguf", seed=1)
    alpha, beta = EndpointPlan("alpha", "alpha.gguf", start_order=1), EndpointPlan("beta", "alpha.gguf", start_order=2)
    assert roll_out(lab, lab.inventory([alpha, beta])).ok
    with closing(lab.engine(lab.inventory([alpha]).nodes[0])) as engine:
        before = {n: container_state(engine, f"{lab.prefix}{n}") for n in ("alpha", "beta")}

    beta.ctx_size = 1024
    report = roll_out(lab, lab.inventory([alpha, beta]))

    assert report.ok, report.failure
    [step] = report.plan.steps
    assert isinstance(step, ReplaceContainer)
    assert step.reason == "ctx_size 512 -> 1024"
    with closing(lab.engine(lab.inventory([alpha]).nodes[0])) as engine:
        after = {n: container_state(engine, f"{lab.prefix}{n}") for n in ("alpha", "beta", "beta-previous")}
    assert after["alpha"] == before["alpha"]
    assert after["beta"] is not None and before["beta"] is not None
    assert after["beta"].id != before["beta"].id and after["beta"].running
    assert after["beta-previous"] is None
    assert after["beta"].config is not None and after["beta"].config["ctx_size"] == 1024
    chat(beta.port)


def test_a_corrupt_model_never_gets_healthy_and_the_old_container_comes_back(rollout_lab: RolloutLab) -> None:
    lab = rollout_lab
    good = lab.write_model("model.gguf", seed=1)
    endpoint = EndpointPlan("solo", "model.gguf")
    inv = lab.inventory([endpoint])
    assert roll_out(lab, inv).ok
    with closing(lab.engine(inv.nodes[0])) as engine:
        old = container_state(engine, f"{lab.prefix}solo")
    good_bytes = good.read_bytes()
    # Same header, garbage where the tensors are: llama-server starts, then fails to load.
    good.write_bytes(good_bytes[:4096] + bytes(reversed(good_bytes[4096:]))[:1000])

    report = roll_out(lab, inv)

    assert not report.ok
    assert [o.status for o in report.outcomes] == [StepStatus.DONE, StepStatus.ROLLED_BACK]
    failed = report.outcomes[1]
    assert failed.gate is not None and not failed.gate.healthy
    assert report.failure is not None and report.failure.startswith(f"{lab.prefix}solo failed its health gate: ")
    assert failed.gate.log_tail, "the report carries the failed container's last log lines"
    assert any("model" in line.lower() for line in failed.gate.log_tail)
    assert failed.rollback_gate is not None and failed.rollback_gate.healthy
    with closing(lab.engine(inv.nodes[0])) as engine:
        back = container_state(engine, f"{lab.prefix}solo")
        held = volume_files(
            engine, lab.volume, ["model.gguf", ".model.gguf.previous", ".model.gguf.incoming"], lab.settings().helper
        )
    assert back is not None and old is not None
    assert back.id == old.id and back.running
    assert list(held) == ["model.gguf"]
    assert held["model.gguf"].sha256 == old.model_sha256
    chat(endpoint.port)


def test_planning_changes_nothing(rollout_lab: RolloutLab) -> None:
    lab = rollout_lab
    lab.write_model("model.gguf", seed=3)
    inv = lab.inventory([EndpointPlan("solo", "model.gguf")])
    [node] = inv.nodes
    with closing(lab.engine(node)) as engine:
        steps = plan_node(engine, node, model_sources(["model.gguf"], models_dir=lab.models_dir), lab.settings())
    assert [s.summary() for s in steps.steps] == [
        f"create volume {lab.volume}: missing",
        f"copy model.gguf into volume {lab.volume}: not in the volume",
        f"create {lab.prefix}solo: missing",
    ]
    assert steps.unchanged == []
    with closing(lab.client()) as client:
        assert lab.volume not in {v.name for v in client.volumes.list()}, "planning created nothing"


def test_a_container_that_cannot_start_is_removed_and_the_rollout_stops(rollout_lab: RolloutLab) -> None:
    lab = rollout_lab
    lab.write_model("model.gguf", seed=8)
    busy, after = EndpointPlan("busy", "model.gguf", start_order=1), EndpointPlan("after", "model.gguf", start_order=2)
    inv = lab.inventory([busy, after])
    with socket.socket() as squatter:  # something else already listens on the endpoint's port
        squatter.bind(("127.0.0.1", busy.port))
        squatter.listen()
        report = roll_out(lab, inv)

    statuses = [o.status for o in report.outcomes]
    assert statuses == [StepStatus.DONE, StepStatus.DONE, StepStatus.ROLLED_BACK, StepStatus.NOT_RUN]
    assert report.failure is not None
    assert report.failure.startswith(f"{lab.prefix}busy could not be started: node gpu2 (")
    assert "address already in use" in report.failure
    with closing(lab.engine(inv.nodes[0])) as engine:
        assert container_state(engine, f"{lab.prefix}busy") is None
        assert container_state(engine, f"{lab.prefix}after") is None, "nothing starts after a failure"
