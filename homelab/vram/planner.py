"""The lineup planner: which model goes on which GPU with how many layers, and which run on the CPU.

Models are placed one at a time in priority order (higher first, then lineup order), so a more
important model is never pushed off by a less important one:

  1. whole: on the allowed GPU (the model's own node, when it has one; of those, a container's
     `gpus` when it names some: the only devices the engine gives it) where the fully offloaded
     model fits with the least room to spare (best fit keeps big holes for big models);
  2. partly: else on the allowed GPU with the most free memory, with as many layers as fit, if that
     is at least `min_gpu_fraction` of its layers (a model mostly on the CPU gains little from
     the GPU and takes memory others could use whole);
  3. else on the CPU, with the reason: what it needs and the most any GPU had free.

A llama.cpp container that sees several GPUs (`spans_gpus`) is one placement touching all of
them: llama.cpp splits its layers over every device it sees (`-sm layer`, by `-ts` or else by each
GPU's memory), so it is placed whole, or with as many layers as fit, only where each GPU's share
fits that GPU; each share carries its GPU's own overhead.

"Fits" compares the estimate's GPU total (weights, KV, compute buffers and the per-process
overhead) with the GPU's VRAM less its reserve and what earlier models took: a GPU is never
over-committed. Everything here is pure; `lineup.py` builds the inputs from the inventory.

A model on an Ollama endpoint also gets what Ollama itself will do (`ollama_sched`): the layers
its scheduler offloads on the node's GPUs as they stand when the model comes (VRAM less the
reserve and the models placed before it), and its own estimate, which differ from llama.cpp's.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from pydantic import Field, computed_field

from homelab.errors import SettingsError
from homelab.frozen import Frozen
from homelab.vram.estimate import Estimate, estimate, fits, max_gpu_layers
from homelab.vram.ollama_sched import OllamaDecision, OllamaGpu, OllamaRun, ollama_decision
from homelab.vram.run_args import RunArgs
from homelab.vram.settings import CacheType, RunSettings
from homelab.vram.shape import ModelShape, Source
from homelab.vram.sizes import DEFAULT_GPU_OVERHEAD_BYTES, GIB, MAX_GPU_OVERHEAD_BYTES

__all__ = [
    "DEFAULT_POLICY",
    "CpuOnly",
    "GpuSlot",
    "GpuUse",
    "LineupEntry",
    "OllamaVersions",
    "Placement",
    "Plan",
    "PlanPolicy",
    "Unsized",
    "plan_lineup",
]


class LineupEntry(Frozen):
    """A model the cluster should serve, and how."""

    name: str
    shape: ModelShape
    priority: int = Field(0, description="higher is placed first; ties keep lineup order")
    ctx_size: int | None = Field(None, gt=0)
    parallel: int = Field(1, gt=0)
    node: str | None = Field(None, description="only this node's GPUs may hold it (its container runs there)")
    gpus: list[int] | None = Field(None, description="only these CUDA indexes of its node (a container's `gpus`)")
    endpoint: str | None = Field(None, description="the inventory endpoint that serves it")
    gpu_layers: int | None = Field(None, ge=0, description="fixed -ngl; None: the planner decides")
    run: RunArgs = Field(default_factory=RunArgs, description="memory flags of its command line (-ot, -ts, -fa...)")
    spans_gpus: bool = Field(
        False, description="llama.cpp splits it over every allowed GPU (a container seeing several, -sm layer)"
    )


OllamaVersions = Mapping[tuple[str, str], tuple[str, bool]]
"""By (node, endpoint) of every Ollama endpoint: its version, and whether the node reported it (else assumed)."""


class GpuSlot(Frozen):
    """One GPU the planner may fill."""

    node: str
    name: str
    index: int
    vram_bytes: int = Field(gt=0)
    reserve_bytes: int = Field(0, ge=0, description="kept free: display, other processes, safety")

    @property
    def label(self) -> str:
        """How plans name the GPU: node, index and model."""
        return f"{self.node} GPU{self.index} ({self.name})"


class PlanPolicy(Frozen):
    """How every model is run, and how far partial offload may go."""

    flash_attn: bool = True
    cache_type: CacheType = "f16"
    gpu_overhead_bytes: int = Field(DEFAULT_GPU_OVERHEAD_BYTES, ge=0, le=MAX_GPU_OVERHEAD_BYTES)
    min_gpu_fraction: float = Field(0.5, ge=0.0, le=1.0)


class Placement(Frozen):
    """A model on a GPU."""

    model: str
    endpoint: str | None = None
    file_type: str | None = None
    source: Source = Field(description="where the shape came from: a GGUF file, a serving node, or the name")
    node: str
    gpu_index: int
    estimate: Estimate
    device: int = Field(0, description="this GPU's entry in estimate.devices")
    gpu_indexes: list[int] = Field(default_factory=list, description="every GPU of a split placement, by CUDA index")
    ollama: OllamaDecision | None = Field(None, description="an Ollama model: what Ollama's scheduler will do")
    ollama_refused: str | None = Field(None, description="why Ollama's decision could not be worked out")

    @computed_field  # type: ignore[prop-decorator]
    @property
    def whole(self) -> bool:
        """Every layer, the output layer included, is on the GPU."""
        return self.estimate.n_gpu_layers == self.estimate.n_layers_total

    @computed_field  # type: ignore[prop-decorator]
    @property
    def gpu_bytes(self) -> int:
        """What the model takes on this GPU: its device's share (the whole GPU total when unsplit)."""
        devices = self.estimate.devices
        return devices[self.device].total_bytes if self.device < len(devices) else self.estimate.gpu_total_bytes


class GpuUse(Frozen):
    """A GPU with what was placed on it."""

    slot: GpuSlot
    placements: list[Placement]

    @computed_field  # type: ignore[prop-decorator]
    @property
    def used_bytes(self) -> int:
        """GPU shares of the models placed here (overheads included)."""
        return sum(p.gpu_bytes for p in self.placements)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def free_bytes(self) -> int:
        """What is left below the reserve (negative when the reserve exceeds the VRAM)."""
        return self.slot.vram_bytes - self.slot.reserve_bytes - self.used_bytes

    @computed_field  # type: ignore[prop-decorator]
    @property
    def used_percent(self) -> float:
        """Used share of the whole VRAM, reserve not counted as used."""
        return round(100.0 * self.used_bytes / self.slot.vram_bytes, 1)


class CpuOnly(Frozen):
    """A model left to the CPU, and why."""

    model: str
    endpoint: str | None = None
    node: str | None
    reason: str
    source: Source = Field(description="where the shape came from: a GGUF file, a serving node, or the name")
    needs_gpu_bytes: int | None = Field(None, description="GPU total when fully offloaded")
    best_free_bytes: int | None = Field(None, description="the most any allowed GPU had free")
    estimate: Estimate = Field(description="the model run on a CPU-only build")
    ollama: OllamaDecision | None = Field(None, description="an Ollama model: what Ollama's scheduler will do")
    ollama_refused: str | None = Field(None, description="why Ollama's decision could not be worked out")


class Unsized(Frozen):
    """A model of the lineup that could not be sized at all (no file, no usable name)."""

    model: str
    endpoint: str | None = None
    reason: str


class Plan(Frozen):
    """The assignment: GPUs in inventory order, then the CPU-only models."""

    gpus: list[GpuUse]
    cpu_only: list[CpuOnly]
    unsized: list[Unsized] = Field(default_factory=list)
    estimated_models: list[str] = Field(description="models sized from a name or count, not a file")


DEFAULT_POLICY = PlanPolicy()
# What a CPU-only build still reads of a command line: device flags mean nothing there.
_CPU_FLAGS = {"cache_type_k", "cache_type_v", "flash_attn", "n_ubatch", "n_batch", "kv_unified"}


def _settings(
    entry: LineupEntry, policy: PlanPolicy, ngl: int, backend: str = "cuda", memory: tuple[int, ...] = ()
) -> RunSettings:
    """The policy's run, with what the model's own command line sets; `memory`: its devices' sizes."""
    flags = entry.run.updates()
    cache: str = policy.cache_type
    if flags.get("flash_attn") is False and "cache_type_v" not in flags:
        cache = "f16"  # a quantized V cache would need the flash attention the command line turns off
    values = {"cache_type_k": cache, "cache_type_v": cache, "flash_attn": policy.flash_attn} | flags
    if backend == "cpu":
        values = {k: v for k, v in values.items() if k in _CPU_FLAGS}
    elif not memory:
        values.pop("tensor_split", None)  # one GPU: there is nothing to split
    return RunSettings(
        ctx_size=entry.ctx_size,
        parallel=entry.parallel,
        n_gpu_layers=ngl,
        backend=backend,
        gpu_overhead_bytes=policy.gpu_overhead_bytes,
        device_memory_bytes=memory,
        **values,
    )


def _gib(n: int) -> str:
    return f"{n / GIB:.1f} GiB"


def _ctx_label(n_ctx: int) -> str:
    return f"{n_ctx // 1024}k" if n_ctx % 1024 == 0 else str(n_ctx)


def _placement(
    entry: LineupEntry, slot: GpuSlot, result: Estimate, device: int = 0, span: list[int] | None = None
) -> Placement:
    return Placement(
        model=entry.name,
        endpoint=entry.endpoint,
        file_type=entry.shape.file_type,
        source=entry.shape.source,
        node=slot.node,
        gpu_index=slot.index,
        estimate=result,
        device=device,
        gpu_indexes=span or [slot.index],
    )


def _cpu_only(entry: LineupEntry, policy: PlanPolicy, reason: str, **numbers: int) -> CpuOnly:
    cpu = estimate(entry.shape, _settings(entry, policy, 0, backend="cpu"))
    return CpuOnly(
        model=entry.name,
        endpoint=entry.endpoint,
        node=entry.node,
        reason=reason,
        source=entry.shape.source,
        estimate=cpu,
        **numbers,
    )


def _place(
    entry: LineupEntry, slots: list[GpuSlot], free: dict[int, int], policy: PlanPolicy
) -> list[tuple[int, Placement]] | CpuOnly:
    """The GPUs (positions in `slots`) and placements for one model, or its CPU-only verdict."""
    allowed = [
        i
        for i, s in enumerate(slots)
        if (entry.node is None or s.node == entry.node) and (entry.gpus is None or s.index in entry.gpus)
    ]
    if not allowed:
        return _cpu_only(entry, policy, f"no GPU on {entry.node}" if entry.node else "no GPU in the cluster")
    if entry.spans_gpus and len(allowed) > 1:
        return _place_across(entry, slots, sorted(allowed, key=lambda i: slots[i].index), free, policy)
    ngl = -1 if entry.gpu_layers is None else entry.gpu_layers
    wanted = estimate(entry.shape, _settings(entry, policy, ngl))
    fitting = [i for i in allowed if wanted.gpu_total_bytes <= free[i]]
    if fitting:
        best = min(fitting, key=lambda i: free[i])
        return [(best, _placement(entry, slots[best], wanted))]
    roomiest = max(allowed, key=lambda i: free[i])
    if entry.gpu_layers is None:
        partial = max_gpu_layers(entry.shape, _settings(entry, policy, -1), free[roomiest])
        least = max(1, math.ceil(policy.min_gpu_fraction * (entry.shape.n_layer + 1)))
        if partial is not None and partial.n_gpu_layers >= least:
            return [(roomiest, _placement(entry, slots[roomiest], partial))]
    best_free = max(free[roomiest], 0)
    layers = "" if entry.gpu_layers is None else f" at {entry.gpu_layers} GPU layers"
    reason = (
        f"needs {_gib(wanted.gpu_total_bytes)}{layers} with {_ctx_label(wanted.n_ctx)} context, "
        f"{_gib(best_free)} free on {slots[roomiest].label}"
    )
    return _cpu_only(entry, policy, reason, needs_gpu_bytes=wanted.gpu_total_bytes, best_free_bytes=best_free)


def _place_across(
    entry: LineupEntry, slots: list[GpuSlot], order: list[int], free: dict[int, int], policy: PlanPolicy
) -> list[tuple[int, Placement]] | CpuOnly:
    """A model llama.cpp splits over the GPUs `order` (by CUDA index, as it numbers them): whole, else
    with as many layers as fit, each GPU's share within that GPU's free memory."""
    memory = tuple(slots[i].vram_bytes for i in order)  # llama.cpp splits by free memory: the GPUs' own
    budgets = [free[i] for i in order]
    ngl = -1 if entry.gpu_layers is None else entry.gpu_layers
    wanted = estimate(entry.shape, _settings(entry, policy, ngl, memory=memory))
    result = wanted if fits(wanted, budgets) else None
    if result is None and entry.gpu_layers is None:
        partial = max_gpu_layers(entry.shape, _settings(entry, policy, -1, memory=memory), budgets)
        least = max(1, math.ceil(policy.min_gpu_fraction * (entry.shape.n_layer + 1)))
        result = partial if partial is not None and partial.n_gpu_layers >= least else None
    span = [slots[i].index for i in order]
    if result is not None:
        return [
            (i, _placement(entry, slots[i], result, device=k, span=span))
            for k, i in enumerate(order)
            if result.devices[k].total_bytes
        ]
    shares = " + ".join(
        f"{_gib(d.total_bytes)} on GPU{slots[i].index}" for d, i in zip(wanted.devices, order, strict=True)
    )
    room = " + ".join(f"{_gib(max(free[i], 0))} on GPU{slots[i].index}" for i in order)
    layers = "" if entry.gpu_layers is None else f" at {entry.gpu_layers} GPU layers"
    reason = f"needs {shares}{layers} with {_ctx_label(wanted.n_ctx)} context, free {room} ({slots[order[0]].node})"
    best_free = max(max(free[i] for i in order), 0)
    return _cpu_only(entry, policy, reason, needs_gpu_bytes=wanted.gpu_total_bytes, best_free_bytes=best_free)


def _ollama(
    entry: LineupEntry, slots: list[GpuSlot], free: dict[int, int], policy: PlanPolicy, versions: OllamaVersions
) -> dict[str, OllamaDecision | str | None]:
    """What Ollama will do with an Ollama endpoint's model on its node's GPUs as they stand now."""
    key = (entry.node or "", entry.endpoint or "")
    if key not in versions:
        return {}
    version, reported = versions[key]
    gpus = [
        OllamaGpu(name=s.name, index=s.index, free_bytes=max(free[i], 0))
        for i, s in enumerate(slots)
        if s.node == entry.node
    ]
    ctx = entry.ctx_size or entry.shape.context_length
    run = OllamaRun(
        version=version, version_reported=reported, num_ctx=max(ctx // entry.parallel, 1), num_parallel=entry.parallel,
        num_gpu=-1 if entry.gpu_layers is None else entry.gpu_layers, cuda_overhead_bytes=policy.gpu_overhead_bytes,
    )  # fmt: skip
    try:
        return {"ollama": ollama_decision(entry.shape, run, gpus)}
    except SettingsError as exc:
        return {"ollama_refused": str(exc)}


def plan_lineup(
    lineup: list[LineupEntry],
    slots: list[GpuSlot],
    policy: PlanPolicy = DEFAULT_POLICY,
    unsized: list[Unsized] | None = None,
    ollama_versions: OllamaVersions | None = None,
) -> Plan:
    """Place a lineup on GPUs; see the module docstring for the rules.

    `unsized` models are carried into the plan as they are, so it lists every model asked for.
    `ollama_versions` names the Ollama endpoints: their models also get Ollama's own decision.

    Raises:
        SettingsError: A model's settings are ones llama.cpp refuses (cache type vs. key width).
    """
    free = {i: s.vram_bytes - s.reserve_bytes for i, s in enumerate(slots)}
    placed: dict[int, list[Placement]] = {i: [] for i in range(len(slots))}
    cpu_only: list[CpuOnly] = []
    order = sorted(enumerate(lineup), key=lambda pair: (-pair[1].priority, pair[0]))
    for _, entry in order:
        outcome = _place(entry, slots, free, policy)
        ollama = _ollama(entry, slots, free, policy, ollama_versions or {})
        if isinstance(outcome, CpuOnly):
            cpu_only.append(outcome.model_copy(update=ollama))
            continue
        for i, placement in outcome:
            free[i] -= placement.gpu_bytes
            placed[i].append(placement.model_copy(update=ollama))
    gpus = [GpuUse(slot=s, placements=placed[i]) for i, s in enumerate(slots)]
    estimated = [e.name for e in lineup if e.shape.estimated]
    return Plan(gpus=gpus, cpu_only=cpu_only, unsized=list(unsized or []), estimated_models=estimated)
