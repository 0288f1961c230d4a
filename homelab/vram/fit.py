"""A lineup that fits itself: each model's context, offload, KV cache type and GPU, chosen together.

Each model gets a bounded ladder per knob, best first:

  context  what it asks (`fit.max_ctx`, else its `ctx_size` / Ollama `num_ctx`), then each power
           of two below, down to `fit.min_ctx` per sequence
  KV type  `fit.kv_types` in order (a quantized V cache only with flash attention: the section
           refuses the rest); Ollama models f16, as its server's default
  offload  all layers on the GPU; for a mixture of experts then the experts of 1, 2, ... all
           layers on the CPU (`--n-cpu-moe`: attention and the KV cache stay on the GPU, where
           they pay most); then fewer GPU layers, down to the planner's `min_gpu_fraction`
  GPU      the GPUs it may use (its node's; a container's `gpus`)

The search starts every model at the bottom of each ladder, placed in priority order on the GPU
where it fits most tightly; a model that fits nowhere even so is left to the CPU. Then, criterion
by criterion in `fit.prefer` order (full_gpu, context, fewer_cpu_experts, kv_precision by
default), models climb that ladder: higher priority first, models of equal priority one rung each
in turn, each rung taken only if the model still fits on its GPU (or on another it may use)
beside everything placed. Nothing ever climbs down, so no GPU is ever over-committed, and every
model placed at the start stays placed.

Why this is enough: a lineup is a handful of models on one to three GPUs, and a model's ladders
hold a few hundred settings, so an exhaustive search over their product is out of reach while
this one estimates each setting at most once. What it gives up is a lower-priority model that
would gain much from an earlier model giving up a little within the same criterion; the
reasoning lines say where each model stopped and what the next rung would have needed, and
`priority` or `keep` steer it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field

from pydantic import Field, ValidationError

from homelab.errors import SettingsError
from homelab.frozen import Frozen
from homelab.inventory.models import FitPreference, FitSettings
from homelab.vram.estimate import Estimate, estimate
from homelab.vram.planner import DEFAULT_POLICY, GpuSlot, LineupEntry, Unsized
from homelab.vram.settings import CacheType, RunSettings
from homelab.vram.sizes import GIB, MIB

__all__ = ["FitEntry", "FitGpu", "FittedModel", "LineupFit", "fit_entries"]

_FULL_PRECISION = ("f32", "f16", "bf16")


class FitEntry(Frozen):
    """A model of the lineup as fit sees it: the planner's entry, and what fit may change."""

    entry: LineupEntry
    ollama: bool = Field(description="on an Ollama endpoint: num_ctx per sequence, num_gpu; no KV type or experts")
    ctx_asked: int = Field(gt=0, description="llama-server's -c the model asks for (Ollama: num_ctx x parallel)")
    keep: bool = Field(False, description="left as the cluster file sets it (fit.keep)")


class FittedModel(Frozen):
    """One model's choice, and why."""

    model: str
    endpoint: str | None
    node: str | None
    ollama: bool
    kept: bool
    gpu: str | None = Field(description="the GPU's label; None: left to the CPU")
    gpu_index: int | None
    ctx_size: int = Field(description="llama-server's -c (Ollama: num_ctx x parallel)")
    ctx_asked: int
    parallel: int
    n_gpu_layers: int
    n_layers_total: int
    n_cpu_moe: int = Field(description="--n-cpu-moe: the first N layers' experts on the CPU")
    n_moe_layers: int = Field(description="layers with routed experts (0: a dense model, or one Ollama runs)")
    cache_type: CacheType
    flash_attn: bool
    gpu_bytes: int
    cpu_bytes: int
    reasons: list[str] = Field(description="the summary first, then where each criterion stopped and why")


class FitGpu(Frozen):
    """A GPU and the models fitted on it."""

    slot: GpuSlot
    models: list[str]
    used_bytes: int
    free_bytes: int = Field(description="left below the reserve")


class LineupFit(Frozen):
    """Every model of the lineup: fitted (on a GPU or the CPU) or unsized."""

    order: list[FitPreference]
    gpus: list[FitGpu]
    models: list[FittedModel]
    unsized: list[Unsized] = Field(default_factory=list)
    on_demand: list[str] = Field(default_factory=list, description="Ollama models without deploy: it loads them")


Offload = tuple[int, int]  # (-ngl, --n-cpu-moe)


@dataclass
class _Model:
    """One model's ladders (best first) and where it stands on each."""

    fit: FitEntry
    ctxs: list[int]
    kvs: list[CacheType]
    offloads: list[Offload]
    gpus: list[int]
    rung: dict[str, int] = field(default_factory=dict)  # knob -> index into its ladder
    gpu: int | None = None
    why_cpu: str = "left to the CPU"

    @property
    def name(self) -> str:
        return self.fit.entry.name

    def at(self, **rungs: int) -> tuple[int, CacheType, Offload]:
        r = self.rung | rungs
        return self.ctxs[r["ctx"]], self.kvs[r["kv"]], self.offloads[r["offload"]]


def _ctx_ladder(fit: FitEntry, settings: FitSettings) -> list[int]:
    """-c values, best first: the ask, then each power of two per sequence below it, down to min_ctx."""
    if fit.keep:
        return [fit.entry.ctx_size or fit.ctx_asked]
    parallel = fit.entry.parallel
    steps = [fit.ctx_asked]
    per_seq = 1 << (fit.ctx_asked // parallel).bit_length() - 1 if fit.ctx_asked >= parallel else 0
    while per_seq >= settings.min_ctx:
        if per_seq * parallel < fit.ctx_asked:
            steps.append(per_seq * parallel)
        per_seq //= 2
    return steps


def _offload_ladder(fit: FitEntry) -> list[Offload]:
    shape, entry = fit.entry.shape, fit.entry
    layers = shape.n_layer + 1
    if fit.keep:
        return [(layers if entry.gpu_layers is None else entry.gpu_layers, entry.run.n_cpu_moe or 0)]
    # -ot and --cpu-moe in the file's args place the experts first (the first match wins): fit leaves them.
    pinned = entry.run.cpu_moe or entry.run.override_tensor
    moe = shape.n_layer if shape.n_expert and not fit.ollama and not pinned else 0
    least = max(1, math.ceil(DEFAULT_POLICY.min_gpu_fraction * layers))
    return [(layers, k) for k in range(moe + 1)] + [(n, moe) for n in range(layers - 1, least - 1, -1)]


def _kv_ladder(fit: FitEntry, settings: FitSettings) -> list[CacheType]:
    if fit.keep:
        return [fit.entry.run.cache_type_v or "f16"]
    return ["f16"] if fit.ollama else list(settings.kv_types)


# The flags fit chooses; the rest of a command line's memory flags (-ub, -b, -ot...) are kept.
_CHOSEN = ("cache_type_k", "cache_type_v", "flash_attn", "n_cpu_moe")
_SPLIT = ("tensor_split", "split_mode", "main_gpu")  # one GPU: nothing to split


class _Search:
    """The state of one fit: the models, what each GPU holds, and the estimates made so far."""

    def __init__(self, models: list[_Model], slots: list[GpuSlot], settings: FitSettings) -> None:
        self.models = models
        self.slots = slots
        self.settings = settings
        self.cache: dict[tuple[str, int, CacheType, Offload], Estimate | None] = {}

    def run_settings(self, m: _Model, ctx: int, kv: CacheType, offload: Offload) -> RunSettings:
        """How llama-server runs `m` at these rungs: fit's choices over the file's other flags (a kept
        model: the file's own flags over fit's defaults).

        Raises:
            ValidationError: A quantized V cache without flash attention (a kept model's args).
        """
        flags = {k: v for k, v in m.fit.entry.run.updates().items() if k not in _SPLIT}
        chosen = {
            "cache_type_k": kv,
            "cache_type_v": kv,
            "flash_attn": self.settings.flash_attn,
            "n_cpu_moe": offload[1],
        }
        if not m.fit.keep:
            flags = {k: v for k, v in flags.items() if k not in _CHOSEN}
        return RunSettings(
            ctx_size=ctx, parallel=m.fit.entry.parallel, n_gpu_layers=offload[0],
            gpu_overhead_bytes=DEFAULT_POLICY.gpu_overhead_bytes, **(chosen | flags),
        )  # fmt: skip

    def estimate(self, m: _Model, ctx: int, kv: CacheType, offload: Offload) -> Estimate | None:
        """The estimate for these settings; None when llama.cpp would refuse them (a cache type)."""
        key = (m.name, ctx, kv, offload)
        if key not in self.cache:
            try:
                self.cache[key] = estimate(m.fit.entry.shape, self.run_settings(m, ctx, kv, offload))
            except (SettingsError, ValidationError):
                self.cache[key] = None
        return self.cache[key]

    def bytes_of(self, m: _Model, **rungs: int) -> int | None:
        result = self.estimate(m, *m.at(**rungs))
        return None if result is None else result.gpu_total_bytes

    def free(self, gpu: int, without: _Model | None = None) -> int:
        slot = self.slots[gpu]
        used = sum(self.bytes_of(m) or 0 for m in self.models if m.gpu == gpu and m is not without)
        return slot.vram_bytes - slot.reserve_bytes - used

    def neighbours(self, m: _Model, gpu: int) -> str:
        names = [o.name for o in self.models if o.gpu == gpu and o is not m]
        return f" beside {', '.join(names)}" if names else ""

    def where_fits(self, m: _Model, **rungs: int) -> int | str:
        """The GPU `m` fits on at these rungs (its own first, then the others it may use), or why none."""
        need = self.bytes_of(m, **rungs)
        if need is None:
            return "llama.cpp refuses that cache type for this model's key width"
        gpus = [m.gpu] if m.gpu is not None else []
        for gpu in gpus + [g for g in m.gpus if g not in gpus]:
            if need <= self.free(gpu, without=m):
                return gpu
        home = m.gpu if m.gpu is not None else max(m.gpus, key=lambda g: self.free(g, without=m))
        short = need - self.free(home, without=m)
        return f"needs {_size(short)} more than {self.slots[home].label} has left{self.neighbours(m, home)}"

    def try_rungs(self, m: _Model, **rungs: int) -> str:
        """Move `m` to these rungs where it fits ('' when it moved), else say why not."""
        where = self.where_fits(m, **rungs)
        if isinstance(where, str):
            return where
        m.rung |= rungs
        m.gpu = where
        return ""


def _size(n: int) -> str:
    """GiB from 1 GiB up, MiB below: a shortfall of a few MiB stays visible."""
    return f"{n / GIB:.1f} GiB" if abs(n) >= GIB else f"{n / MIB:.0f} MiB"


def _start(search: _Search) -> None:
    """Every model at the bottom of its ladders, placed by priority where it fits most tightly."""
    order = sorted(enumerate(search.models), key=lambda p: (-p[1].fit.entry.priority, p[0]))
    for _, m in order:
        m.rung = {"ctx": len(m.ctxs) - 1, "kv": len(m.kvs) - 1, "offload": len(m.offloads) - 1}
        need = search.bytes_of(m)
        fitting = [g for g in m.gpus if need is not None and need <= search.free(g)]
        if fitting:
            m.gpu = min(fitting, key=search.free)
            continue
        best = max(m.gpus, key=search.free, default=None)
        where = (
            f"{_size(max(search.free(best), 0))} free on {search.slots[best].label}" if best is not None else "no GPU"
        )
        needs = "llama.cpp refuses its cache types" if need is None else f"needs {_size(need)} at its smallest"
        m.why_cpu = f"left to the CPU: {needs} (ctx {m.ctxs[-1]}, {m.offloads[-1][0]} layers), {where}"


# Each criterion climbs one ladder: (knob, the rung it aims at: None one step up, 0 the top).
_CLIMBS: dict[FitPreference, tuple[str, int | None]] = {
    "full_gpu": ("offload", 0),
    "context": ("ctx", None),
    "fewer_cpu_experts": ("offload", None),
    "kv_precision": ("kv", None),
}


def _climb(search: _Search, m: _Model, criterion: FitPreference) -> bool:
    """One rung up for `m` (the nearest better rung that fits); False when none does."""
    knob, target = _CLIMBS[criterion]
    here = m.rung[knob]
    rungs = [target] if target is not None else list(range(here - 1, -1, -1))
    for rung in rungs:
        if rung >= here:
            return False
        why = search.try_rungs(m, **{knob: rung})
        if not why:
            return True
    return False


def _groups(models: list[_Model]) -> Iterator[list[_Model]]:
    """Placed models by priority, highest first; equal priorities together in lineup order."""
    placed = [m for m in models if m.gpu is not None]
    for priority in sorted({m.fit.entry.priority for m in placed}, reverse=True):
        yield [m for m in placed if m.fit.entry.priority == priority]


def _run(search: _Search) -> None:
    _start(search)
    for criterion in search.settings.order:
        for group in _groups(search.models):
            moved = True
            while moved:  # one rung each in turn, until none of the group can climb
                moved = False
                for m in group:
                    moved = _climb(search, m, criterion) or moved


def _moe_layers(m: _Model) -> int:
    """Layers whose experts --n-cpu-moe can move (Ollama has no such option)."""
    return m.fit.entry.shape.n_layer if m.fit.entry.shape.n_expert and not m.fit.ollama else 0


def _offload_words(m: _Model, offload: Offload) -> str:
    layers, cpu_moe = offload
    words = f"{layers}/{m.fit.entry.shape.n_layer + 1} layers"
    if _moe_layers(m):
        words += f", {cpu_moe} of {_moe_layers(m)} layers' experts on CPU"
    return words


def _step(m: _Model, knob: str) -> str:
    """The rung above `m`'s on one ladder, against where it stands: what it could not get."""
    here = m.at()
    up = m.at(**{knob: m.rung[knob] - 1})
    if knob == "ctx":
        return f"ctx {up[0]} instead of {here[0]}"
    if knob == "kv":
        return f"{up[1]} KV instead of {here[1]}"
    (layers, cpu_moe), (now_layers, now_cpu_moe) = up[2], here[2]
    if layers != now_layers:
        return f"{layers} GPU layers instead of {now_layers}"
    return f"{cpu_moe} layers' experts on CPU instead of {now_cpu_moe}"


def _explain(m: _Model, search: _Search, result: Estimate | None) -> list[str]:
    """The summary line, then one line per knob below its best: the next rung up, and why it was not taken."""
    ctx, kv, offload = m.at()
    if m.gpu is None or result is None:
        return [f"{m.name}: {m.why_cpu}"]
    asked = f"ctx {m.fit.ctx_asked} → {ctx}" if ctx != m.fit.ctx_asked else f"ctx {ctx}"
    flash = " (flash attention on)" if search.settings.flash_attn else ""
    kept = " (kept as the file sets it)" if m.fit.keep else ""
    lines = [
        f"{m.name}: {_offload_words(m, offload)}, {asked}, {kv} KV{flash}: "
        f"{_size(result.gpu_total_bytes)} on {search.slots[m.gpu].label}{kept}"
    ]
    for knob in ("offload", "ctx", "kv"):
        if m.rung[knob]:  # why the next rung up is not taken, against the lineup as it ends
            why = search.where_fits(m, **{knob: m.rung[knob] - 1})
            order = "would fit now (a model moved to another GPU after this one's turn)"
            lines.append(f"{m.name}: {_step(m, knob)} {order if isinstance(why, int) else why}")
    return lines


def _fitted(m: _Model, search: _Search) -> FittedModel:
    ctx, kv, offload = m.at()
    result = search.estimate(m, ctx, kv, offload) if m.gpu is not None else None
    cpu = result or estimate(
        m.fit.entry.shape,
        RunSettings(ctx_size=ctx, parallel=m.fit.entry.parallel, n_gpu_layers=0, backend="cpu"),
    )
    return FittedModel(
        model=m.name, endpoint=m.fit.entry.endpoint, node=m.fit.entry.node, ollama=m.fit.ollama, kept=m.fit.keep,
        gpu=None if m.gpu is None else search.slots[m.gpu].label,
        gpu_index=None if m.gpu is None else search.slots[m.gpu].index,
        ctx_size=ctx, ctx_asked=m.fit.ctx_asked, parallel=m.fit.entry.parallel,
        n_gpu_layers=offload[0] if result else 0, n_layers_total=m.fit.entry.shape.n_layer + 1,
        n_cpu_moe=offload[1] if result else 0, n_moe_layers=_moe_layers(m),
        cache_type=kv, flash_attn=search.run_settings(m, ctx, kv, offload).flash_attn if result else False,
        gpu_bytes=result.gpu_total_bytes if result else 0, cpu_bytes=cpu.cpu_total_bytes,
        reasons=_explain(m, search, result),
    )  # fmt: skip


def fit_entries(
    entries: list[FitEntry],
    slots: list[GpuSlot],
    settings: FitSettings,
    unsized: list[Unsized] | None = None,
    on_demand: list[str] | None = None,
) -> LineupFit:
    """Choose each model's context, offload, KV cache type and GPU; see the module docstring.

    `unsized` models are carried into the result as they are, so it lists every model asked for.
    """
    models = [
        _Model(
            fit=e,
            ctxs=_ctx_ladder(e, settings),
            kvs=_kv_ladder(e, settings),
            offloads=_offload_ladder(e),
            gpus=[
                i
                for i, s in enumerate(slots)
                if (e.entry.node is None or s.node == e.entry.node)
                and (e.entry.gpus is None or s.index in e.entry.gpus)
            ],
        )
        for e in entries
    ]
    search = _Search(models, slots, settings)
    _run(search)
    fitted = [_fitted(m, search) for m in models]
    gpus = [
        FitGpu(
            slot=s,
            models=[m.name for m in models if m.gpu == i],
            used_bytes=s.vram_bytes - s.reserve_bytes - search.free(i),
            free_bytes=search.free(i),
        )
        for i, s in enumerate(slots)
    ]
    return LineupFit(
        order=settings.order, gpus=gpus, models=fitted, unsized=list(unsized or []), on_demand=list(on_demand or [])
    )
