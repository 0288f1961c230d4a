"""Each rollout sequence is written once, in the core: `homelab rollout` and the flow's tasks take the same path.

The core runs with recording runners (real runners, subclassed to note each call under the
name the flow gives that call's task run); the flow runs a cluster file of the same shape on
its own lab (its own names, ports and volume), and its task runs, read back from the Prefect
API in start order, must be the same list. The flow's own additions (the inputs check, the
sweep, the artifacts) are left out of the comparison: they are what the flow may add, never
the order of the steps.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import docker.errors
import pytest
from prefect import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.states import State

from flows.rollout import rollout
from homelab.docker_ops.apply import StepStatus
from homelab.docker_ops.gate import GateResult
from homelab.docker_ops.plan import ContainerStep, CopyModel, EnsureVolume, Plan
from homelab.docker_ops.serial import DEFAULT_ROLLOUT_SETTINGS, Pending, RolloutSettings
from homelab.docker_ops.sources import ModelSource
from homelab.inventory import load_inventory
from homelab.ollama.api import RunningModel
from homelab.ollama.check import LoadCheck
from homelab.ollama.desired import OllamaDesired
from homelab.ollama.plan import CreateModel, DeleteModel, OllamaPlan, PreloadModel, PullModel, UnloadModel, UploadBlob
from homelab.ollama.settings import OllamaDeploySettings
from homelab.rollout.containers import ContainerRunner, EngineRollout
from homelab.rollout.node import DirectRunner, NodeRolloutReport, node_inputs, roll_out
from homelab.rollout.ollama import ApiRollout, OllamaRunner
from tests.fixtures.net import wait_until
from tests.fixtures.ollama_lab import TEST_SETTINGS, OllamaLab, deployed, ollama_lab  # noqa: F401 (fixture)
from tests.fixtures.rollout import EndpointPlan, RolloutLab, rollout_lab  # noqa: F401 (fixture)

pytestmark = pytest.mark.usefixtures("prefect_harness")

# How long the server may take to record a finished run's task runs.
RECORDED_S = 30.0
# Task runs the flow adds around the core's sequence: the inputs check, the sweep, the artifacts.
FLOW_ONLY = re.compile(r"^(inputs-|sweep-|publish-)")


@dataclass(frozen=True)
class RecordingEngineRollout(EngineRollout):
    """The CLI's container runner, noting each call under its flow task run's name."""

    calls: list[str] = field(default_factory=list)

    def plan(self, sources: Mapping[str, ModelSource], gpu_layers: Mapping[str, int]) -> Plan:
        self.calls.append(f"plan-{self.node.name}")
        return super().plan(sources, gpu_layers)

    def volume_step(self, step: EnsureVolume | CopyModel) -> str:
        kind = f"volume-{step.volume}" if isinstance(step, EnsureVolume) else f"copy-{step.source.model_file}"
        self.calls.append(kind)
        return super().volume_step(step)

    def begin(self, step: ContainerStep) -> Pending:
        self.calls.append(f"start-{step.spec.name}")
        return super().begin(step)

    def gate(self, pending: Pending) -> GateResult:
        self.calls.append(f"gate-{pending.step.spec.name}")
        return super().gate(pending)

    def finish(self, pending: Pending) -> None:
        self.calls.append(f"keep-{pending.step.spec.name}")
        super().finish(pending)

    def roll_back(self, pending: Pending) -> GateResult | None:
        self.calls.append(f"roll-back-{pending.step.spec.name}")
        return super().roll_back(pending)


@dataclass(frozen=True)
class RecordingApiRollout(ApiRollout):
    """The CLI's Ollama runner, noting each call under its flow task run's name."""

    node: str = ""
    calls: list[str] = field(default_factory=list)

    def plan(self, desired: OllamaDesired, prune: bool) -> OllamaPlan:
        self.calls.append(f"plan-ollama-{self.node}")
        return super().plan(desired, prune)

    def perform(self, step: UploadBlob | PullModel | CreateModel | UnloadModel | DeleteModel) -> str:
        transfer = isinstance(step, UploadBlob | PullModel)
        self.calls.append(f"transfer-{step.endpoint}-{step.kind}" if transfer else f"{step.kind}-{step.model}")
        return super().perform(step)

    def preload(self, step: PreloadModel) -> None:
        self.calls.append(f"preload-{step.model}")
        super().preload(step)

    def wait_loaded(self, step: PreloadModel) -> RunningModel:
        self.calls.append(f"wait-{step.model}")
        return super().wait_loaded(step)

    def check(self, desired: OllamaDesired) -> list[LoadCheck]:
        self.calls.append(f"check-ollama-{self.node}")
        return super().check(desired)


@dataclass(frozen=True)
class RecordingRunner(DirectRunner):
    """`homelab rollout`'s node runner, handing out the recording part runners."""

    calls: list[str] = field(default_factory=list)

    @contextmanager
    def ollama_part(self) -> Iterator[OllamaRunner]:
        with super().ollama_part() as runner:
            assert isinstance(runner, ApiRollout)
            yield RecordingApiRollout(runner.apis, runner.settings, runner.progress, self.node.name, self.calls)

    @contextmanager
    def container_part(self) -> Iterator[ContainerRunner]:
        with super().container_part() as r:
            assert isinstance(r, EngineRollout)
            yield RecordingEngineRollout(r.engine, r.node, r.probe, r.settings, r.progress, self.calls)

    def regenerate_gateway(self, path: Path) -> str:
        self.calls.append("gateway-config")
        return super().regenerate_gateway(path)


def run_core(
    cluster: Path,
    node: str,
    models_dir: Path,
    gateway: Path,
    settings: RolloutSettings = DEFAULT_ROLLOUT_SETTINGS,
    ollama: OllamaDeploySettings = TEST_SETTINGS,
) -> tuple[NodeRolloutReport, list[str]]:
    """What `homelab rollout` runs (`node_inputs`, then `roll_out` with direct runners), with every call noted."""
    inv = load_inventory(cluster)
    target = next(n for n in inv.nodes if n.name == node)
    inputs = node_inputs(inv, target, models_dir=models_dir, node_models_dir=None, gateway_config=gateway)
    runner = RecordingRunner(inv, target, settings, ollama)
    report = roll_out(inv, target, inputs, settings, runner, gateway_config=gateway)
    return report, runner.calls


def flow_task_runs(state: State[NodeRolloutReport], at_least: int) -> list[str]:
    """The flow run's task runs in the order they started, without the flow's own additions.

    The server records task runs from the events the run sent, a moment after the run ended:
    wait for `at_least` of them (the comparison then says whether they are the right ones).
    """
    found: list[str] = []

    def recorded() -> bool:
        with get_client(sync_client=True) as client:
            runs = client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id]))
            )
        runs.sort(key=lambda run: (run.start_time or run.expected_start_time, run.name))
        found[:] = [run.name for run in runs if not FLOW_ONLY.match(run.name)]
        return len(found) >= at_least

    with suppress(RuntimeError):  # fewer than expected: the comparison shows which are missing
        wait_until(recorded, RECORDED_S, "the flow's task runs")
    return found


@pytest.mark.docker
@pytest.mark.llama
def test_the_flow_runs_the_cores_container_sequence_start_order_gate_and_rollback(
    rollout_lab: RolloutLab, tmp_path: Path
) -> None:
    """Start order (not name order), the gate, a rollback that stops the run and skips the gateway config."""
    (tmp_path / "flow").mkdir()
    labs = {"core": rollout_lab, "flow": RolloutLab(rollout_lab.docker_engine, rollout_lab.llama_image,
                                                   rollout_lab.helper_image, tmp_path / "flow")}  # fmt: skip
    try:
        clusters = {}
        for part, lab in labs.items():
            lab.write_model("zeta.gguf", seed=3)
            bad = lab.write_model("alpha.gguf", seed=4)
            bad.write_bytes(bad.read_bytes()[:4096])  # the header reads; llama-server exits on load
            endpoints = [EndpointPlan("zeta", "zeta.gguf", start_order=0), EndpointPlan("alpha", "alpha.gguf", 1)]
            clusters[part] = lab.write_cluster(endpoints)
        core, flow = labs["core"], labs["flow"]

        report, calls = run_core(clusters["core"], "gpu2", core.models_dir, core.root / "litellm.yaml", core.settings())
        state = rollout(
            str(clusters["flow"]), node="gpu2", models_dir=str(flow.models_dir),
            gateway_config=str(flow.root / "litellm.yaml"), settings=flow.settings(), return_state=True,
        )  # fmt: skip

        expected = ["plan-gpu2", "volume-hlTAG-models", "copy-zeta.gguf", "copy-alpha.gguf"]
        expected += ["start-hlTAG-zeta", "gate-hlTAG-zeta", "keep-hlTAG-zeta"]
        expected += ["start-hlTAG-alpha", "gate-hlTAG-alpha", "roll-back-hlTAG-alpha"]
        assert [c.replace(core.tag, "TAG") for c in calls] == expected
        assert [name.replace(flow.tag, "TAG") for name in flow_task_runs(state, len(expected))] == expected
        assert report.containers is not None
        assert [o.status for o in report.containers.outcomes] == [StepStatus.DONE] * 4 + [StepStatus.ROLLED_BACK]
        assert state.is_failed() and state.message is not None
        assert state.message.replace(flow.tag, "TAG").endswith(
            f"DockerOpError: rollout on gpu2 failed: {report.failure}".replace(core.tag, "TAG")
        )
        assert not (core.root / "litellm.yaml").exists() and not (flow.root / "litellm.yaml").exists()
    finally:
        with suppress(docker.errors.DockerException):
            labs["flow"].cleanup()


ALPHA = deployed("alpha", "a", "alpha.gguf")
BETA = deployed("beta", "b", "beta.gguf", num_ctx=1024)


def test_the_flow_runs_the_cores_ollama_then_gateway_sequence(ollama_lab: OllamaLab) -> None:
    """Uploads, creates, preloads one at a time, the load check, then the gateway config; then an unload."""
    lab = ollama_lab
    lab.write_model("alpha.gguf", seed=1)
    lab.write_model("beta.gguf", seed=2)
    lab.standin("core")
    lab.standin("flow")

    first = ["plan-ollama-NODE", "transfer-ollama-upload_blob", "transfer-ollama-upload_blob"]
    first += ["create_model-alpha:latest", "create_model-beta:latest"]
    first += ["preload-alpha:latest", "wait-alpha:latest", "preload-beta:latest", "wait-beta:latest"]
    first += ["check-ollama-NODE", "gateway-config"]
    beta_gone = ["plan-ollama-NODE", "unload_model-beta:latest", "check-ollama-NODE", "gateway-config"]

    for models, expected in (([ALPHA, BETA], first), ([ALPHA], beta_gone)):
        # A file per node: aliases are unique within a cluster file.
        cluster = lab.write_cluster({"core": models}, "core-cluster.yaml")
        report, calls = run_core(cluster, "core", lab.models_dir, lab.root / "core.yaml")
        state = rollout(
            str(lab.write_cluster({"flow": models}, "flow-cluster.yaml")), node="flow",
            models_dir=str(lab.models_dir), gateway_config=str(lab.root / "flow.yaml"),
            ollama=TEST_SETTINGS, return_state=True,
        )  # fmt: skip

        assert report.ok and state.is_completed(), state.message
        assert [c.replace("core", "NODE") for c in calls] == expected
        assert [n.replace("flow", "NODE") for n in flow_task_runs(state, len(expected))] == expected
