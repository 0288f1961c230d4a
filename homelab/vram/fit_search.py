"""The state of one `homelab plan fit`: each model's ladders and where it stands, and what each GPU holds.

A model's ladders hold its choices best first (`homelab.vram.fit` says which); its place is one
GPU or, for a llama.cpp container that sees several (llama.cpp splits a model over every GPU it
sees, `-sm layer`), all of them, with each GPU's share taken from the estimate's devices. Every
estimate is made once and kept: a fit asks for the same settings many times.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from pydantic import Field, ValidationError

from homelab.errors import SettingsError
from homelab.frozen import Frozen
from homelab.inventory.settings import FitSettings
from homelab.vram.estimate import Estimate, estimate
from homelab.vram.planner import DEFAULT_POLICY, GpuSlot, LineupEntry
from homelab.vram.settings import CacheType, RunSettings
from homelab.vram.sizes import GIB, MIB

__all__ = ["FitEntry", "FitState", "ModelState", "Offload", "Place", "model_state", "size_text"]

Offload = tuple[int, int]  # (-ngl, --n-cpu-moe)
Place = tuple[int, ...]  # positions in the slot list: one GPU, or the GPUs llama.cpp splits the model over

# The flags fit chooses; the rest of a command line's memory flags (-ub, -b, -ot...) are kept.
_CHOSEN = ("cache_type_k", "cache_type_v", "flash_attn", "n_cpu_moe")
_SPLIT = ("tensor_split", "split_mode", "main_gpu")  # on one GPU there is nothing to split


class FitEntry(Frozen):
    """A model of the lineup as fit sees it: the planner's entry, and what fit may change."""

    entry: LineupEntry
    ollama: bool = Field(description="on an Ollama endpoint: num_ctx per sequence, num_gpu; no KV type or experts")
    ctx_asked: int = Field(gt=0, description="llama-server's -c the model asks for (Ollama: num_ctx x parallel)")
    keep: bool = Field(False, description="left as the cluster file sets it (fit.keep)")


@dataclass
class ModelState:
    """One model's ladders (best first), the places it may take, and where it stands."""

    fit: FitEntry
    ctxs: list[int]
    kvs: list[CacheType]
    offloads: list[Offload]
    places: list[Place]
    rung: dict[str, int] = field(default_factory=dict)  # knob -> index into its ladder
    place: Place | None = None
    why_cpu: str = "left to the CPU"

    @property
    def name(self) -> str:
        return self.fit.entry.name

    def at(self, **rungs: int) -> tuple[int, CacheType, Offload]:
        """(context, KV type, offload) at the current rungs, or with some changed."""
        r = self.rung | rungs
        return self.ctxs[r["ctx"]], self.kvs[r["kv"]], self.offloads[r["offload"]]


def _ctx_ladder(fit: FitEntry, settings: FitSettings) -> list[int]:
    """-c values: the ask, then each power of two per sequence below it, down to min_ctx."""
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
    """All layers; then (MoE) the experts of 1..n layers on the CPU; then fewer layers, to min_gpu_fraction."""
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


def _places(entry: LineupEntry, slots: list[GpuSlot]) -> list[Place]:
    """One GPU each, then (a container llama.cpp would split) all it sees, by CUDA index; -ts: only that split."""
    allowed = [
        i
        for i, s in enumerate(slots)
        if (entry.node is None or s.node == entry.node) and (entry.gpus is None or s.index in entry.gpus)
    ]
    split = [tuple(sorted(allowed, key=lambda i: slots[i].index))] if entry.spans_gpus and len(allowed) > 1 else []
    return split if split and entry.run.tensor_split else [(i,) for i in allowed] + split


def model_state(fit: FitEntry, slots: list[GpuSlot], settings: FitSettings) -> ModelState:
    """A model's ladders and places; it stands nowhere yet."""
    return ModelState(
        fit=fit,
        ctxs=_ctx_ladder(fit, settings),
        kvs=_kv_ladder(fit, settings),
        offloads=_offload_ladder(fit),
        places=_places(fit.entry, slots),
    )


def size_text(n: int) -> str:
    """GiB from 1 GiB up, MiB below: a shortfall of a few MiB stays visible."""
    return f"{n / GIB:.1f} GiB" if abs(n) >= GIB else f"{n / MIB:.0f} MiB"


class FitState:
    """The models, what each GPU holds, and the estimates made so far."""

    def __init__(self, models: list[ModelState], slots: list[GpuSlot], settings: FitSettings) -> None:
        self.models = models
        self.slots = slots
        self.settings = settings
        self._cache: dict[tuple[str, Place, int, CacheType, Offload], Estimate | None] = {}

    def run_settings(self, m: ModelState, place: Place, ctx: int, kv: CacheType, offload: Offload) -> RunSettings:
        """How llama-server runs `m` at these rungs: fit's choices over the file's other flags (a kept
        model: the file's own flags over fit's defaults); a split over its GPUs by their memory.

        Raises:
            ValidationError: A quantized V cache without flash attention (a kept model's args).
        """
        flags = m.fit.entry.run.updates()
        if len(place) == 1:
            flags = {k: v for k, v in flags.items() if k not in _SPLIT}
        if not m.fit.keep:
            flags = {k: v for k, v in flags.items() if k not in _CHOSEN}
        chosen = {
            "cache_type_k": kv,
            "cache_type_v": kv,
            "flash_attn": self.settings.flash_attn,
            "n_cpu_moe": offload[1],
        }
        memory = tuple(self.slots[i].vram_bytes for i in place) if len(place) > 1 else ()
        return RunSettings(
            ctx_size=ctx, parallel=m.fit.entry.parallel, n_gpu_layers=offload[0], device_memory_bytes=memory,
            gpu_overhead_bytes=DEFAULT_POLICY.gpu_overhead_bytes, **(chosen | flags),
        )  # fmt: skip

    def estimate(self, m: ModelState, place: Place, ctx: int, kv: CacheType, offload: Offload) -> Estimate | None:
        """The estimate for these settings; None when llama.cpp would refuse them (a cache type)."""
        key = (m.name, place if len(place) > 1 else (), ctx, kv, offload)
        if key not in self._cache:
            try:
                self._cache[key] = estimate(m.fit.entry.shape, self.run_settings(m, place, ctx, kv, offload))
            except (SettingsError, ValidationError):
                self._cache[key] = None
        return self._cache[key]

    def shares(self, m: ModelState, place: Place | None = None, **rungs: int) -> dict[int, int] | None:
        """Bytes on each GPU of the place (its own by default) at these rungs; None: llama.cpp refuses them."""
        where = place or m.place
        if where is None:
            return {}
        result = self.estimate(m, where, *m.at(**rungs))
        if result is None:
            return None
        if len(where) == 1:
            return {where[0]: result.gpu_total_bytes}
        return {i: d.total_bytes for i, d in zip(where, result.devices, strict=True) if d.total_bytes}

    def free(self, slot: int, without: ModelState | None = None) -> int:
        """What is left on a GPU below its reserve."""
        used = sum((self.shares(o) or {}).get(slot, 0) for o in self.models if o.place and o is not without)
        return self.slots[slot].vram_bytes - self.slots[slot].reserve_bytes - used

    def neighbours(self, m: ModelState, slot: int) -> str:
        names = [o.name for o in self.models if o.place and slot in o.place and o is not m]
        return f" beside {', '.join(names)}" if names else ""

    def shortfall(self, m: ModelState, place: Place, **rungs: int) -> tuple[int, int] | None:
        """(bytes short, on which GPU) at the place's tightest GPU; None when it fits there."""
        shares = self.shares(m, place, **rungs) or {}
        short = max(((need - self.free(i, without=m), i) for i, need in shares.items()), default=(0, place[0]))
        return short if short[0] > 0 else None

    def where_fits(self, m: ModelState, **rungs: int) -> Place | str:
        """The place `m` fits at these rungs (its own first, then the others in order), or why none."""
        if not m.places:
            return "no GPU it may use"
        if self.shares(m, m.place or m.places[0], **rungs) is None:
            return "llama.cpp refuses these settings (a cache type for its key width, or a quantized V without -fa)"
        own = [m.place] if m.place else []
        for place in own + [p for p in m.places if p != m.place]:
            if self.shortfall(m, place, **rungs) is None:
                return place
        home = m.place or max(m.places, key=lambda p: min(self.free(i, without=m) for i in p))
        short, slot = self.shortfall(m, home, **rungs) or (0, home[0])
        return f"needs {size_text(short)} more than {self.slots[slot].label} has left{self.neighbours(m, slot)}"

    def try_rungs(self, m: ModelState, **rungs: int) -> str:
        """Move `m` to these rungs where it fits ('' when it moved), else say why not."""
        where = self.where_fits(m, **rungs)
        if isinstance(where, str):
            return where
        m.rung |= rungs
        m.place = where
        return ""
