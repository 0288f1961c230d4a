"""A node's Ollama rollout end to end: desired state, facts, plan, apply, then `/api/ps` checked against the plan.

The sequence is written once, in `roll_out_ollama`; an `OllamaRunner` says how each part is
done. `ApiRollout` calls the endpoints directly (what `homelab rollout` uses); the Prefect
flow passes a runner whose methods are tasks (`flows/ollama_rollout.py`) and publishes the
report as an artifact when the runner hears it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from homelab.docker_ops.sources import ProgressCallback
from homelab.inventory import Node
from homelab.ollama.api import OllamaAPI, open_ollama_client
from homelab.ollama.apply import ApiRunner, OllamaRolloutReport, OllamaStepRunner, apply
from homelab.ollama.check import LoadCheck, check_loads
from homelab.ollama.desired import OllamaDesired, desired_ollama, ollama_endpoints
from homelab.ollama.facts import gather_facts
from homelab.ollama.plan import OllamaPlan, plan
from homelab.ollama.settings import OllamaDeploySettings
from homelab.vram.node_plan import NodeVramPlan

__all__ = [
    "ApiRollout",
    "OllamaRunner",
    "check_ollama_node",
    "ollama_apis",
    "ollama_vram_lines",
    "plan_ollama_node",
    "roll_out_ollama",
]


@contextmanager
def ollama_apis(node: Node, settings: OllamaDeploySettings) -> Iterator[dict[str, OllamaAPI]]:
    """A connector per Ollama endpoint the node deploys to, closed on exit."""
    with ExitStack() as stack:
        yield {
            e.name: OllamaAPI(
                stack.enter_context(open_ollama_client(e.url, settings.timeouts)), f"{node.name}/{e.name}",
                settings.timeouts,
            )
            for e in ollama_endpoints(node)
        }  # fmt: skip


def ollama_vram_lines(desired: OllamaDesired, vram: NodeVramPlan | None) -> list[str]:
    """The VRAM plan's lines about the models deployed to Ollama (a node may run containers too)."""
    aliases = {m.alias for e in desired.endpoints for m in e.models}
    return [line for line in (vram.lines if vram else []) if line.split(":", 1)[0] in aliases]


def plan_ollama_node(
    apis: Mapping[str, OllamaAPI],
    desired: OllamaDesired,
    *,
    prune: bool = False,
    progress: ProgressCallback | None = None,
) -> OllamaPlan:
    """Facts and plan for the node's Ollama endpoints, in one call (changes nothing)."""
    return plan(desired, gather_facts(apis, desired, progress), prune=prune)


def check_ollama_node(
    apis: Mapping[str, OllamaAPI], desired: OllamaDesired, settings: OllamaDeploySettings
) -> list[LoadCheck]:
    """Each planned model in `/api/ps`, its `size_vram` against the plan where the version allows (only looks)."""
    running = {name: api.running() for name, api in apis.items()}
    versions = {name: api.version() for name, api in apis.items()}
    return check_loads(desired, running, settings.vram_tolerance, versions)


class OllamaRunner(OllamaStepRunner, Protocol):
    """How the Ollama part reaches the node: the steps (`OllamaStepRunner`), plus planning and checking."""

    def plan(self, desired: OllamaDesired, prune: bool) -> OllamaPlan:
        """Facts and plan (changes nothing)."""
        ...

    def check(self, desired: OllamaDesired) -> list[LoadCheck]:
        """`/api/ps` against the plan (only looks)."""
        ...

    def finished(self, report: OllamaRolloutReport) -> None:
        """Hears the part's report, also a dry run's (the flow publishes it as an artifact)."""
        ...


@dataclass(frozen=True)
class ApiRollout(ApiRunner):
    """The Ollama part over the endpoints' connectors directly (`ollama_apis(node, settings)`)."""

    def plan(self, desired: OllamaDesired, prune: bool) -> OllamaPlan:
        return plan_ollama_node(self.apis, desired, prune=prune, progress=self.progress)

    def check(self, desired: OllamaDesired) -> list[LoadCheck]:
        return check_ollama_node(self.apis, desired, self.settings)

    def finished(self, report: OllamaRolloutReport) -> None:
        """The caller renders the returned report; nothing to publish."""


def roll_out_ollama(
    runner: OllamaRunner,
    node: Node,
    sources: Mapping[str, Path],
    *,
    vram: NodeVramPlan | None = None,
    dry_run: bool = False,
    prune: bool = False,
) -> OllamaRolloutReport:
    """Plan the node's Ollama models and, unless `dry_run`, apply the plan and check the loads.

    Args:
        runner: how each part is done (`ApiRollout`, or the flow's task-backed runner).
        sources: GGUF file name -> local path (`model_sources(ollama_gguf_files(node), models_dir=...)`).
        vram: the node's VRAM plan (`plan_node_vram`): `num_gpu` where the inventory sets none.
        prune: delete models the inventory no longer names (they are unloaded either way).

    Raises:
        OllamaError: an endpoint did not answer while the facts were gathered.
    """
    desired = desired_ollama(node, sources, vram)
    steps = runner.plan(desired, prune)
    lines = ollama_vram_lines(desired, vram)
    if dry_run:
        report = OllamaRolloutReport(node=node.name, dry_run=True, plan=steps, vram=lines)
    else:
        applied = apply(steps, runner)
        # Loads are checked only after every step succeeded: a half-done plan has nothing to compare.
        checks = runner.check(desired) if applied.ok else []
        report = applied.model_copy(update={"vram": lines, "checks": checks})
    runner.finished(report)
    return report
