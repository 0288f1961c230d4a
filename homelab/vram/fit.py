"""A lineup that fits itself: each model's context, offload, KV cache type and GPU, chosen together.

Each model gets a bounded ladder per knob, best first (`fit_search` holds them):

  context  what it asks (`fit.max_ctx`, else its `ctx_size` / Ollama `num_ctx`), then each power
           of two per sequence below it, down to `fit.min_ctx`
  KV type  `fit.kv_types` in order (a quantized V cache only with flash attention: the section
           refuses the rest); Ollama models f16, its server's default
  offload  all layers on the GPU; for a mixture of experts then the experts of 1, 2, ... all
           layers on the CPU (`--n-cpu-moe`: attention and the KV cache stay on the GPU, where
           they pay most); then fewer GPU layers, down to the planner's `min_gpu_fraction`
  GPU      each GPU it may use (its node's; a container's `gpus`), then, for a container that
           sees several, all of them (llama.cpp splits it by their memory; `-ts` keeps its split)

The search starts every model at the bottom of each ladder, placed in priority order where it
fits most tightly (a split only where no single GPU holds it); a model that fits nowhere even so
is left to the CPU. Then, criterion by criterion in `fit.prefer` order (full_gpu, context,
fewer_cpu_experts, kv_precision by default), models climb that criterion's ladder: higher
priority first, equal priorities one rung each in turn (lineup order first), each rung taken only
if the model still fits where it is (or in another place it may take) beside everything placed.
Nothing ever climbs down, so no GPU is ever over-committed and every model placed at the start
stays placed.

Why this is enough: a lineup is a handful of models on one to three GPUs, and a model's ladders
hold a few hundred settings, so an exhaustive search over their product is out of reach, while
this one estimates a model at a few hundred settings at most (each once). What it gives up is a
lower-priority model that would gain much from an earlier one giving up a little within the same
criterion; the reasoning lines say where each model stopped and what the next rung would have
needed, and `priority` (lineup file) or `fit.keep` steer it.
"""

from __future__ import annotations

from collections.abc import Iterator

from pydantic import Field

from homelab.frozen import Frozen
from homelab.inventory.settings import FitPreference, FitSettings
from homelab.vram.estimate import Estimate, estimate
from homelab.vram.fit_search import FitEntry, FitState, ModelState, Offload, model_state, size_text
from homelab.vram.planner import GpuSlot, Unsized
from homelab.vram.settings import CacheType, RunSettings

__all__ = ["FitEntry", "FitGpu", "FittedModel", "LineupFit", "fit_entries"]


class FittedModel(Frozen):
    """One model's choice, and why."""

    model: str
    endpoint: str | None
    node: str | None
    ollama: bool
    kept: bool
    gpu: str | None = Field(description="the GPU's label (a split: each, joined by ' + '); None: left to the CPU")
    gpu_indexes: list[int] = Field(description="CUDA indexes of its GPUs, in llama.cpp's order")
    gpu_shares: list[int] = Field(description="bytes on each of those GPUs")
    pin_gpu: bool = Field(description="--write gives its container `gpus: [i]`; llama.cpp would split it otherwise")
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
    reasons: list[str] = Field(description="the summary first, then the next step up of each choice and why not")


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


def _start(state: FitState) -> None:
    """Every model at the bottom of its ladders, placed by priority where it fits most tightly."""
    order = sorted(enumerate(state.models), key=lambda p: (-p[1].fit.entry.priority, p[0]))
    for _, m in order:
        m.rung = {"ctx": len(m.ctxs) - 1, "kv": len(m.kvs) - 1, "offload": len(m.offloads) - 1}
        fitting = [p for p in m.places if state.shares(m, p) is not None and state.shortfall(m, p) is None]
        if fitting:  # one GPU before a split; of those, the one left with the least room
            m.place = min(fitting, key=lambda p: (len(p), min(state.free(i) for i in p)))
            continue
        why = state.where_fits(m)
        ctx, _, (layers, _) = m.at()
        m.why_cpu = f"left to the CPU: even at ctx {ctx} with {layers} GPU layers it {why}"


# Each criterion climbs one ladder: (knob, the rung it aims at: None one step up, 0 the top).
_CLIMBS: dict[FitPreference, tuple[str, int | None]] = {
    "full_gpu": ("offload", 0),
    "context": ("ctx", None),
    "fewer_cpu_experts": ("offload", None),
    "kv_precision": ("kv", None),
}


def _climb(state: FitState, m: ModelState, criterion: FitPreference) -> bool:
    """One rung up for `m` (the nearest better rung that fits); False when none does."""
    knob, target = _CLIMBS[criterion]
    here = m.rung[knob]
    for rung in [target] if target is not None else range(here - 1, -1, -1):
        if rung >= here:
            return False
        if not state.try_rungs(m, **{knob: rung}):
            return True
    return False


def _groups(models: list[ModelState]) -> Iterator[list[ModelState]]:
    """Placed models by priority, highest first; equal priorities together in lineup order."""
    placed = [m for m in models if m.place is not None]
    for priority in sorted({m.fit.entry.priority for m in placed}, reverse=True):
        yield [m for m in placed if m.fit.entry.priority == priority]


def _run(state: FitState) -> None:
    _start(state)
    for criterion in state.settings.order:
        for group in _groups(state.models):
            moved = True
            while moved:  # one rung each in turn, until none of the group can climb
                moved = False
                for m in group:
                    moved = _climb(state, m, criterion) or moved


def _moe_layers(m: ModelState) -> int:
    """Layers whose experts --n-cpu-moe can move (Ollama has no such option)."""
    return m.fit.entry.shape.n_layer if m.fit.entry.shape.n_expert and not m.fit.ollama else 0


def _offload_words(m: ModelState, offload: Offload) -> str:
    layers, cpu_moe = offload
    words = f"{layers}/{m.fit.entry.shape.n_layer + 1} layers"
    if _moe_layers(m):
        words += f", {cpu_moe} of {_moe_layers(m)} layers' experts on CPU"
    return words


def _step(m: ModelState, knob: str) -> str:
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


def _label(state: FitState, m: ModelState) -> str:
    return " + ".join(state.slots[i].label for i in m.place or ())


def _explain(m: ModelState, state: FitState, result: Estimate | None) -> list[str]:
    """The summary line, then one line per knob below its best: the next rung up, and why it was not taken."""
    ctx, kv, offload = m.at()
    if m.place is None or result is None:
        return [f"{m.name}: {m.why_cpu}"]
    asked = f"ctx {m.fit.ctx_asked} → {ctx}" if ctx != m.fit.ctx_asked else f"ctx {ctx}"
    flash = " (flash attention on)" if state.run_settings(m, m.place, ctx, kv, offload).flash_attn else ""
    kept = " (kept as the file sets it)" if m.fit.keep else ""
    lines = [
        f"{m.name}: {_offload_words(m, offload)}, {asked}, {kv} KV{flash}: "
        f"{size_text(result.gpu_total_bytes)} on {_label(state, m)}{kept}"
    ]
    for knob in ("offload", "ctx", "kv"):
        if m.rung[knob]:  # why the next rung up is not taken, against the lineup as it ends
            why = state.where_fits(m, **{knob: m.rung[knob] - 1})
            moved = "would fit now (a model moved to other GPUs after this one's turn)"
            lines.append(f"{m.name}: {_step(m, knob)} {why if isinstance(why, str) else moved}")
    return lines


def _fitted(m: ModelState, state: FitState) -> FittedModel:
    ctx, kv, offload = m.at()
    result = state.estimate(m, m.place, ctx, kv, offload) if m.place else None
    cpu = result or estimate(
        m.fit.entry.shape, RunSettings(ctx_size=ctx, parallel=m.fit.entry.parallel, n_gpu_layers=0, backend="cpu")
    )
    shares = state.shares(m) or {}
    return FittedModel(
        model=m.name, endpoint=m.fit.entry.endpoint, node=m.fit.entry.node, ollama=m.fit.ollama, kept=m.fit.keep,
        gpu=_label(state, m) or None, gpu_indexes=[state.slots[i].index for i in m.place or ()],
        gpu_shares=[shares.get(i, 0) for i in m.place or ()],
        pin_gpu=bool(m.place) and len(m.place or ()) == 1 and m.fit.entry.spans_gpus,
        ctx_size=ctx, ctx_asked=m.fit.ctx_asked, parallel=m.fit.entry.parallel,
        n_gpu_layers=offload[0] if result else 0, n_layers_total=m.fit.entry.shape.n_layer + 1,
        n_cpu_moe=offload[1] if result else 0, n_moe_layers=_moe_layers(m), cache_type=kv,
        flash_attn=state.run_settings(m, m.place, ctx, kv, offload).flash_attn if result and m.place else False,
        gpu_bytes=result.gpu_total_bytes if result else 0, cpu_bytes=cpu.cpu_total_bytes,
        reasons=_explain(m, state, result),
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
    state = FitState([model_state(e, slots, settings) for e in entries], slots, settings)
    _run(state)
    gpus = [
        FitGpu(
            slot=s,
            models=[m.name for m in state.models if m.place and i in m.place],
            used_bytes=s.vram_bytes - s.reserve_bytes - state.free(i),
            free_bytes=state.free(i),
        )
        for i, s in enumerate(slots)
    ]
    return LineupFit(
        order=settings.order,
        gpus=gpus,
        models=[_fitted(m, state) for m in state.models],
        unsized=list(unsized or []),
        on_demand=list(on_demand or []),
    )
