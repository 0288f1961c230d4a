"""A node's Ollama rollout end to end: desired state, facts, plan, apply, then `/api/ps` checked against the plan.

`homelab rollout` calls `roll_out_ollama_node`; the Prefect flow calls the same pieces
(`plan_ollama_node`, then `apply` with a runner made of tasks, then `check_ollama_node`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from pathlib import Path

from homelab.docker_ops.sources import ProgressCallback
from homelab.inventory import Node
from homelab.ollama.api import OllamaAPI, open_ollama_client
from homelab.ollama.apply import ApiRunner, OllamaRolloutReport, apply
from homelab.ollama.check import LoadCheck, check_loads
from homelab.ollama.desired import OllamaDesired, desired_ollama, ollama_endpoints
from homelab.ollama.facts import gather_facts
from homelab.ollama.plan import OllamaPlan, plan
from homelab.ollama.settings import OllamaDeploySettings
from homelab.vram.node_plan import NodeVramPlan

__all__ = ["check_ollama_node", "ollama_apis", "ollama_vram_lines", "plan_ollama_node", "roll_out_ollama_node"]


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


def roll_out_ollama_node(
    apis: Mapping[str, OllamaAPI],
    node: Node,
    sources: Mapping[str, Path],
    settings: OllamaDeploySettings,
    *,
    vram: NodeVramPlan | None = None,
    dry_run: bool = False,
    prune: bool = False,
    progress: ProgressCallback | None = None,
) -> OllamaRolloutReport:
    """Plan the node's Ollama models and, unless `dry_run`, apply the plan and check the loads.

    Args:
        apis: endpoint name -> connector (`ollama_apis(node, settings)`).
        sources: GGUF file name -> local path (`model_sources(ollama_gguf_files(node), models_dir=...)`).
        vram: the node's VRAM plan (`plan_node_vram`): `num_gpu` where the inventory sets none.
        prune: delete models the inventory no longer names (they are unloaded either way).
        progress: hash, upload and pull progress.

    Raises:
        OllamaError: an endpoint did not answer while the facts were gathered.
    """
    desired = desired_ollama(node, sources, vram)
    steps = plan_ollama_node(apis, desired, prune=prune, progress=progress)
    lines = ollama_vram_lines(desired, vram)
    if dry_run:
        return OllamaRolloutReport(node=node.name, dry_run=True, plan=steps, vram=lines)
    report = apply(steps, ApiRunner(apis, settings.load_wait, progress))
    checks = check_ollama_node(apis, desired, settings) if report.ok else []
    return report.model_copy(update={"vram": lines, "checks": checks})
