"""Ollama 0.12's layer placement, ported line by line: which layers go on which GPU, given sizes and free memory.

Two algorithms, by release (GitHub ollama/ollama, file:line at the tag named):

- `layout` (v0.12.11 for its llama.cpp runner, every 0.12.x for its own engine): `buildLayout`
  (llm/server.go:884-943 at v0.12.11) takes from each GPU's free memory its minimum (457 MiB on
  CUDA, ml/device.go:348-353), OLLAMA_GPU_OVERHEAD and the graph of a GPU already in use;
  `assignLayers` (:1009-1045) packs the layers onto as few GPUs as possible, dropping the output
  layer when not everything fits; `findBestFit` (:1051-1081) bisects a capacity factor so the
  layers spread evenly; `greedyFit` (:1083-1109) fills GPUs from the last layer down. The loop in
  `llamaServer.Load` (:560-583) gives each GPU in use the graph and lays out again until the
  number of GPUs stops growing; before it, one layer and its cache come off every GPU's free
  memory as a buffer (:480-488).
- `estimate` (v0.12.0 to v0.12.10, llm/memory.go at v0.12.10): `estimateGPULayers` (:154-437)
  deals the layers round-robin over the GPUs that can hold the graph, the minimum and two layers,
  and `pickBestFullFitByLibrary` (:21-64) first tries the fewest GPUs that hold everything.

Go's float32 arithmetic is kept (the capacity factor multiplies a float32 of the free bytes), so
a split across two GPUs is Ollama's to the layer. Only CUDA GPUs of one kind are modelled (no
Metal, no iGPU, one library); OLLAMA_SCHED_SPREAD unset; the model loaded without another
needing eviction (`requireFull` false).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Assigned", "GpuFree", "estimate_layers", "layout_layers"]

_F32 = np.float32


@dataclass(frozen=True)
class GpuFree:
    """One GPU as Ollama sees it: its position in the node's list and its free bytes."""

    position: int
    free_bytes: int


@dataclass(frozen=True)
class Assigned:
    """Ollama's decision: layers per GPU position, and its estimate of the bytes on each (graph included)."""

    layers: dict[int, int]
    bytes: dict[int, int]
    graph_bytes: int  # the graph Ollama counts on each GPU it uses

    @property
    def count(self) -> int:
        return sum(self.layers.values())


Layout = list[tuple[int, list[int]]]  # GPULayersList: (GPU position, layers) in list order


def _total(layout: Layout) -> int:
    return sum(len(layers) for _, layers in layout)


def _greedy_fit(layers: list[int], gpus: list[GpuFree], capacity: np.float32, requested: int) -> Layout:
    """`greedyFit` (llm/server.go:1083-1109): from the last layer down, spilling to the next GPU back."""
    device = len(gpus) - 1
    out: Layout = [(gpus[device].position, [])]
    free = int(_F32(gpus[device].free_bytes) * capacity)
    for i in range(len(layers) - 1, -1, -1):
        if requested >= 0 and len(layers) - 1 - i >= requested:
            break
        while layers[i] > free:
            device -= 1
            if device < 0:
                return out
            out.insert(0, (gpus[device].position, []))
            free = int(_F32(gpus[device].free_bytes) * capacity)
        out[0][1].insert(0, i)
        free -= layers[i]
    return out


def _find_best_fit(layers: list[int], gpus: list[GpuFree], requested: int, force: bool) -> Layout:
    """`findBestFit` (:1051-1081): the smallest capacity factor that still places the most layers."""
    high, low = _F32(1000 if requested >= 0 and force else 1), _F32(0)
    best = _greedy_fit(layers, gpus, high, requested)
    most = _total(best)
    while high - low > _F32(1e-6):
        mid = (low + high) / _F32(2)
        trial = _greedy_fit(layers, gpus, mid, requested)
        if _total(trial) == most:
            high, best = mid, trial
        else:
            low = mid
    return best


def _assign_layers(layers: list[int], gpus: list[GpuFree], requested: int, last_used: int) -> Layout:
    """`assignLayers` (:1009-1045): fewest GPUs first; without the output layer if not all fit."""
    out: Layout = []
    for _ in range(2):
        requested = min(len(layers), requested)
        for i in range(last_used, len(gpus)):
            out = _find_best_fit(layers, gpus[: i + 1], requested, force=i == len(gpus) - 1)
            if _total(out) in (len(layers), requested):
                break
        if _total(out) == len(layers):
            return out
        layers = layers[:-1]
    return out


def _build_layout(
    layers: list[int], gpus: list[GpuFree], reserve: int, graphs: dict[int, int], requested: int
) -> Layout:
    """`buildLayout` (:884-943) for one library: each GPU's free less its reserve and its graph."""
    ordered = sorted(gpus, key=lambda g: -g.free_bytes)  # ByFreeMemory reversed; stable for equal free
    last_used = max((i for i, g in enumerate(ordered) if graphs.get(g.position)), default=0)
    usable = [GpuFree(g.position, max(g.free_bytes - reserve - graphs.get(g.position, 0), 0)) for g in ordered]
    return _assign_layers(layers, usable, requested, last_used)


def layout_layers(
    layers: list[int], gpus: list[GpuFree], reserve: int, graphs: tuple[int, int], requested: int = -1
) -> Assigned:
    """Ollama's placement by `buildLayout` and the `Load` loop around it (module docstring).

    Args:
        layers: bytes of each layer Ollama places (weights and cache), the output layer last.
        gpus: the node's GPUs, free bytes as Ollama sees them (already less any one-layer buffer).
        reserve: per GPU: the minimum (457 MiB) plus OLLAMA_GPU_OVERHEAD.
        graphs: (partial, full) graph sizes; a GPU in use is charged the larger while laying out.
        requested: num_gpu; -1 lets Ollama decide.
    """
    graphs_on: dict[int, int] = {}
    layout: Layout = []
    while True:  # llm/server.go:560-583: more GPUs used -> give them the graph, lay out again
        previous = layout
        layout = _build_layout(layers, gpus, reserve, graphs_on, requested)
        if len(layout) <= len(previous):
            break
        graphs_on = {position: max(graphs) for position, _ in layout}
    # :585-606: the full graph only when every layer is on a GPU; every GPU listed gets it.
    graph = graphs[1] if _total(layout) == len(layers) else graphs[0]
    counts = {position: len(placed) for position, placed in layout}
    used = {position: sum(layers[i] for i in placed) + graph for position, placed in layout}
    return Assigned(counts, used, graph)


def _deal(gpus: list[GpuFree], sizes: list[int], output: int, e: _Old, requested: int) -> tuple[list[int], list[int]]:
    """`estimateGPULayers`' placement (llm/memory.go:270-371 at v0.12.10): (layers, bytes) per GPU, graph aside."""
    split, alloc = [0] * len(gpus), [0] * len(gpus)
    with_space = [i for i, g in enumerate(gpus) if g.free_bytes >= e.overhead + e.graph + e.minimum + 2 * e.buffer]
    for i in with_space:
        alloc[i] += e.minimum + e.buffer  # the graph waits until partial or full is known
    count = 0

    def place(index: int, size: int, drop: bool) -> bool:
        nonlocal count
        for j in range(len(with_space), 0, -1):
            g = with_space[index % j]
            if gpus[g].free_bytes > e.overhead + alloc[g] + e.graph + size:
                alloc[g] += size
                split[g] += 1
                count += 1
                return True
            if drop:  # a layer that does not fit takes its GPU out of the deal (:338-340)
                del with_space[index % j]
        return False

    for i in range(len(sizes) - 1, -1, -1):
        if not (requested >= 0 and count >= requested):
            place(i, sizes[i], drop=True)
    if output and (requested < 0 or count < requested):
        place(count, output, drop=False)
    return split, alloc


@dataclass(frozen=True)
class _Old:
    """What `estimateGPULayers` reserves: per-GPU minimum, OLLAMA_GPU_OVERHEAD, one-layer buffer, largest graph."""

    minimum: int
    overhead: int
    buffer: int
    graph: int


def _estimate_on(
    gpus: list[GpuFree],
    sizes: list[int],
    output: int,
    graphs: tuple[int, int],
    reserve: tuple[int, int],
    requested: int,
) -> Assigned:
    partial, full = graphs
    if len(gpus) > 1:  # multigpu should always use the partial graph size (:253-256)
        full = partial
    old = _Old(reserve[0], reserve[1], sizes[0] if sizes else 0, max(partial, full))
    split, alloc = _deal(gpus, sizes, output, old, requested)
    count, n = sum(split), len(sizes)
    fully = count >= n and (output == 0 or count >= n + 1)  # fullyLoaded (:347-371)
    graph = full if fully else partial
    if count == 0:  # "insufficient VRAM to load any model layers" (:426-429)
        return Assigned({}, {}, graph)
    # GPUSizes (:374-383, :435): the minimum and the buffer on every GPU that had room, the graph where layers went
    counts = {gpus[i].position: split[i] for i in range(len(gpus)) if split[i]}
    used = {gpus[i].position: alloc[i] + (graph if split[i] else 0) for i in range(len(gpus)) if alloc[i]}
    return Assigned(counts, used, graph)


def estimate_layers(
    sizes: list[int],
    output: int,
    gpus: list[GpuFree],
    graphs: tuple[int, int],
    reserve: tuple[int, int],
    requested: int = -1,
) -> Assigned:
    """Ollama 0.12.0-0.12.10's placement for its llama.cpp runner (module docstring).

    Args:
        sizes: per block, Ollama's weights plus cache (`blk.N` + kv[N]); block 0 is also the buffer.
        output: the output layer's bytes.
        gpus: the node's GPUs, free bytes as Ollama sees them.
        graphs: (partial, full) graph sizes.
        reserve: (minimum per GPU, OLLAMA_GPU_OVERHEAD).
        requested: num_gpu; -1 lets Ollama decide.

    Returns:
        Layers per GPU (Ollama hands llama.cpp the count and this tensor split) and each GPU's
        allocation, which counts the minimum and the one-layer buffer (`GPUSizes`, :430-436).
    """
    ordered = sorted(gpus, key=lambda g: -g.free_bytes)
    whole = len(sizes) + 1 if requested < 0 else requested
    for n in range(1, len(ordered) + 1):  # pickBestFullFitByLibrary: the fewest GPUs that hold it all
        trial = _estimate_on(ordered[:n], sizes, output, graphs, reserve, requested)
        if trial.count > 0 and trial.count >= whole:
            return trial
    return _estimate_on(gpus, sizes, output, graphs, reserve, requested)  # partial: every GPU, as listed
