"""ggml-alloc's allocation trace read back: where each tensor of a compute graph was placed.

A llama-server built with benchmarks/vram_alloc_trace.py prints, when GGML_ALLOC_TRACE is set,
every allocation and free ggml-alloc makes while it sizes the compute buffers, one allocator per
backend buffer, named by its address. Replaying one allocator gives its high-water mark (the
compute buffer llama.cpp logs) and the tensors alive when it was reached: the evidence behind the
placement rule in `homelab.vram.compute`. Parsing only; no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Peak", "Placement", "gpu_allocator", "placements", "replay"]

_ALLOC = re.compile(
    r"ggml_dyn_tallocr_alloc: \[(?P<alloc>0x[0-9a-f]+)\] allocating (?P<name>.+?) \((?P<size>\d+) bytes\)"
    r" - block \d+, offset (?P<offset>\d+), chunk 0"
)
_FREE = re.compile(
    r"ggml_gallocr_free_node: \[(?P<alloc>0x[0-9a-f]+)\] freeing .+? at \{chunk=0, offset=(?P<offset>\d+)\}"
)


@dataclass(frozen=True)
class Placement:
    """One tensor in a buffer: its name in the graph, offset and size in bytes."""

    name: str
    offset: int
    size: int

    @property
    def end(self) -> int:
        return self.offset + self.size


@dataclass(frozen=True)
class Peak:
    """An allocator's high-water mark and the tensors alive when it was set, by offset."""

    bytes: int
    tensors: list[Placement]


def gpu_allocator(text: str) -> str:
    """The allocator of the GPU buffer: the one that takes the scheduler's copies (`CUDA0#...`)."""
    for match in _ALLOC.finditer(text):
        if match["name"].startswith("CUDA"):
            return match["alloc"]
    raise ValueError("no GPU allocation in this trace")


def placements(text: str, allocator: str) -> list[Placement]:
    """Every allocation of one allocator, in order."""
    return [
        Placement(m["name"], int(m["offset"]), int(m["size"])) for m in _ALLOC.finditer(text) if m["alloc"] == allocator
    ]


def replay(text: str, allocator: str) -> Peak:
    """Replay one allocator's allocations and frees in order; in-place reuse needs no event."""
    live: dict[int, Placement] = {}
    peak = Peak(0, [])
    for line in text.splitlines():
        if (match := _ALLOC.search(line)) and match["alloc"] == allocator:
            placed = Placement(match["name"], int(match["offset"]), int(match["size"]))
            live[placed.offset] = placed
            if placed.end > peak.bytes:
                peak = Peak(placed.end, sorted(live.values(), key=lambda p: p.offset))
        elif (match := _FREE.search(line)) and match["alloc"] == allocator:
            live.pop(int(match["offset"]), None)
    return peak
