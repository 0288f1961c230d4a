"""A node's whole rollout: its Ollama models, then its llama.cpp containers, then the gateway config.

The order is written once, in `roll_out`; a `NodeRunner` says how each part reaches the node.
`homelab rollout` passes a `DirectRunner`; the `rollout` flow passes runners whose steps are
Prefect tasks. The order:

1. every input first (`node_inputs`): the model files of both kinds (those with a `source:`
   fetched into the local cache and checked, `homelab.sources`; the others from the folders
   given) and the node's VRAM plan. A missing file, a download refused or a model too big for
   the GPUs stops the rollout before anything on the node changes;
2. the Ollama endpoints' models (`homelab.ollama`); when that part fails, the
   containers are not touched;
3. the llama.cpp containers (`homelab.docker_ops`), one at a time, rolled back on failure;
4. when both succeeded, the LiteLLM config is regenerated (if its path was given; whether it
   can be written is checked in step 1, so a bad path never fails a rollout that is done).

A dry run changes nothing and also needs nothing live: it previews the node from the cluster
file (`homelab.rollout.preview`) and adds each part's plan against the node when the engine
or the Ollama endpoint answers, or why it could not be checked.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field, computed_field

from homelab.docker_ops.apply import RolloutReport
from homelab.docker_ops.connect import Engine, open_engine
from homelab.docker_ops.serial import RolloutSettings
from homelab.docker_ops.sources import ModelSource, ProgressCallback, SourceFile, model_sources
from homelab.errors import HomelabError, ModelSourceMissing, OllamaError
from homelab.files import check_replaceable
from homelab.gateway.config import regenerate_config
from homelab.inventory import Inventory, Node
from homelab.ollama.apply import OllamaRolloutReport
from homelab.ollama.desired import desired_ollama, ollama_endpoints, ollama_sources
from homelab.ollama.settings import DEFAULT_OLLAMA_DEPLOY_SETTINGS, OllamaDeploySettings
from homelab.rollout.containers import ContainerRunner, EngineRollout, roll_out_containers
from homelab.rollout.ollama import ApiRollout, OllamaRunner, ollama_apis, roll_out_ollama
from homelab.rollout.preview import RolloutPreview, preview_rollout
from homelab.sources.fetch import Fetcher, fetch_node_sources, node_sources
from homelab.sources.spec import Fetched
from homelab.vram.metadata import read_gguf
from homelab.vram.node_plan import NodeVramPlan, plan_node_vram

__all__ = [
    "DirectRunner",
    "EngineOpener",
    "NodeInputs",
    "NodeRolloutReport",
    "NodeRunner",
    "container_files",
    "node_inputs",
    "preview",
    "roll_out",
]

# How the rollout reaches the node's engine (`open_engine`, or with an SSH key from the store).
EngineOpener = Callable[[Node], Engine]


class NodeRolloutReport(BaseModel):
    """Both parts of a node's rollout (None: the node has no such part, or it was not reached)."""

    model_config = ConfigDict(frozen=True)

    node: str
    dry_run: bool = False
    ollama: OllamaRolloutReport | None = None
    containers: RolloutReport | None = None
    gateway: str | None = Field(None, description="what became of the gateway config, when one was given")
    preview: RolloutPreview | None = Field(None, description="a dry run: the rollout from the cluster file alone")
    engine_not_checked: str | None = Field(None, description="a dry run: why the engine could not be asked")
    ollama_not_checked: str | None = Field(None, description="a dry run: why the Ollama endpoints could not be asked")

    @computed_field  # type: ignore[prop-decorator]
    @property
    def failure(self) -> str | None:
        """The first failure: the Ollama part's, else the containers'."""
        parts = (self.ollama, self.containers)
        return next((part.failure for part in parts if part is not None and part.failure), None)

    @property
    def ok(self) -> bool:
        return self.failure is None


class NodeInputs(BaseModel):
    """What a rollout reads before it changes anything."""

    model_config = ConfigDict(frozen=True)

    sources: dict[str, ModelSource] = Field(description="container model file -> where to copy it from")
    ggufs: dict[str, Path] = Field(description="GGUF an Ollama model is created from -> its path here")
    vram: NodeVramPlan


def container_files(node: Node) -> list[str]:
    """The model files the node's llama.cpp containers serve."""
    return sorted({e.container.model_file for e in node.endpoints if e.container})


def node_inputs(
    inv: Inventory,
    node: Node,
    *,
    models_dir: Path | None,
    node_models_dir: str | None,
    gateway_config: Path | None = None,
    fetcher: Fetcher | None = None,
) -> NodeInputs:
    """The model files of both parts and the VRAM plan; and that the gateway config can be written.

    Args:
        fetcher: fetches the models that have a `source:` (needed when the node has any).

    Raises:
        ModelSourceMissing, ValueError: a model file cannot be found (or no folder was given).
        ModelDownloadError, ChecksumMismatch: a source refused, failed, or sent other bytes.
        FileAccessError: `gateway_config` is a symlink, a directory or device, or its folder is
            missing or not writable (it is written last, after every container is replaced).
        VramError: a model does not fit the node's GPUs, or its GGUF is unreadable.
    """
    if gateway_config is not None:
        check_replaceable(gateway_config)
    fetched = _fetched(inv, node, fetcher)
    files = [f for f in container_files(node) if f not in fetched]
    sources = model_sources(files, models_dir=models_dir, node_models_dir=node_models_dir) if files else {}
    # A split GGUF's first part names it; its other parts are sources of their own (`split_parts_of`).
    served = {f: parts for f, parts in fetched.items() if f in container_files(node)}  # not Ollama's GGUFs
    named = [(f, parts[0]) for f, parts in served.items()] + [
        (p.path.name, p) for ps in served.values() for p in ps[1:]
    ]
    sources |= {name: _model_source(name, file) for name, file in named}
    first = {f: parts[0].path for f, parts in fetched.items()}
    shapes = {f: read_gguf(path) for f, path in first.items()}
    vram = plan_node_vram(inv, node, models_dir=models_dir, sources=shapes)
    return NodeInputs(sources=sources, ggufs=ollama_sources(node, models_dir, first), vram=vram)


def _model_source(name: str, file: Fetched) -> ModelSource:
    checked = SourceFile(model_file=name, sha256=file.sha256, size_bytes=file.size_bytes) if file.sha256 else None
    return ModelSource(model_file=name, local_path=file.path, checked=checked)


def _fetched(inv: Inventory, node: Node, fetcher: Fetcher | None) -> dict[str, list[Fetched]]:
    """The node's models with a `source:`, fetched: model file -> its parts' local paths."""
    if fetcher is not None:
        return fetch_node_sources(inv, node, fetcher)
    if wanted := sorted(node_sources(inv, node)):
        raise ModelSourceMissing(
            f"node {node.name}: {', '.join(wanted)} come from a source: give the rollout a fetcher"
        )
    return {}


def preview(inv: Inventory, node: Node, inputs: NodeInputs, settings: RolloutSettings) -> RolloutPreview:
    """The node's rollout from the cluster file and the VRAM plan alone (nothing is asked of the node)."""
    ollama = desired_ollama(node, inputs.ggufs, inputs.vram) if ollama_endpoints(node) else None
    return preview_rollout(inv, node, settings, inputs.vram, ollama)


class NodeRunner(Protocol):
    """How a node's rollout reaches the node: a runner per part, opened when the part starts."""

    def ollama_part(self) -> AbstractContextManager[OllamaRunner]:
        """The Ollama endpoints' runner (opening it may raise `OllamaError`)."""
        ...

    def container_part(self) -> AbstractContextManager[ContainerRunner]:
        """The engine's runner (opening it may raise `HomelabError`: the engine, or the key to log in)."""
        ...

    def regenerate_gateway(self, path: Path) -> str:
        """Write the LiteLLM config from the cluster file; what became of it."""
        ...


@dataclass(frozen=True)
class DirectRunner:
    """Each part straight against the node: what `homelab rollout` runs, without Prefect.

    Args:
        connect: opens the node's engine (`open_engine`; the CLI passes one with the node's key).
        progress: copy, hash, upload and pull progress.
    """

    inv: Inventory
    node: Node
    settings: RolloutSettings
    ollama: OllamaDeploySettings = DEFAULT_OLLAMA_DEPLOY_SETTINGS
    connect: EngineOpener = open_engine
    progress: ProgressCallback | None = None

    @contextlib.contextmanager
    def ollama_part(self) -> Iterator[OllamaRunner]:
        with ollama_apis(self.node, self.ollama) as apis:
            yield ApiRollout(apis, self.ollama, self.progress)

    @contextlib.contextmanager
    def container_part(self) -> Iterator[ContainerRunner]:
        with contextlib.closing(self.connect(self.node)) as engine:
            yield EngineRollout.on(engine, self.inv, self.node, self.settings, self.progress)

    def regenerate_gateway(self, path: Path) -> str:
        return regenerate_config(self.inv, path)


def roll_out(
    inv: Inventory,
    node: Node,
    inputs: NodeInputs,
    settings: RolloutSettings,
    runner: NodeRunner,
    *,
    dry_run: bool = False,
    prune: bool = False,
    gateway_config: Path | None = None,
) -> NodeRolloutReport:
    """Plan the node's rollout and, unless `dry_run`, apply it, part after part.

    A dry run also previews the node from the file, and a part that could not be planned
    against its node (it does not answer, or refused, or the key could not be read) is reported
    as not checked, with why, instead of failing the run.

    Args:
        runner: how each part reaches the node (`DirectRunner`, or the flow's task-backed one).
        prune: delete the Ollama models the cluster file no longer names (else only unloaded).
        gateway_config: the LiteLLM config file to regenerate after a successful rollout.

    Raises:
        OllamaError, DockerOpError: an endpoint or the engine did not answer (not in a dry run).
        HomelabError: the runner could not get what it needs to log in (the key from the store).
    """
    report = NodeRolloutReport(node=node.name, dry_run=dry_run)
    if dry_run:
        report = report.model_copy(update={"preview": preview(inv, node, inputs, settings)})
    if ollama_endpoints(node):
        try:
            with runner.ollama_part() as ollama:
                part = roll_out_ollama(ollama, node, inputs.ggufs, vram=inputs.vram, dry_run=dry_run, prune=prune)
        except OllamaError as exc:
            if not dry_run:
                raise
            report = report.model_copy(update={"ollama_not_checked": str(exc)})
        else:
            report = report.model_copy(update={"ollama": part})
    # A failed Ollama part leaves the containers untouched.
    if inputs.sources and report.ok:
        try:
            with runner.container_part() as engine:
                containers = roll_out_containers(engine, node, inputs.sources, dry_run=dry_run, vram=inputs.vram)
        except HomelabError as exc:  # the engine, or the key to log in to it
            if not dry_run:
                raise
            report = report.model_copy(update={"engine_not_checked": str(exc)})
        else:
            report = report.model_copy(update={"containers": containers})
    if gateway_config is not None and report.ok and not dry_run:
        report = report.model_copy(update={"gateway": runner.regenerate_gateway(gateway_config)})
    return report
