"""llama.cpp's own memory figures, read from a llama-server log: the ground truth of the estimator.

While loading, llama-server prints one line per buffer it allocates (model weights per device,
KV cache, output, compute). Those figures are what the estimator must reproduce, so they are
parsed here, apart from any I/O, into the same components the estimator returns. Sizes are
printed in MiB with two decimals, so every figure read back is exact to about 5 KiB.

Buffer names tell host from device: `CPU`, `CPU_Mapped` and `CPU_REPACK` are plain host memory,
`CUDA_Host` (and other `*_Host`) is pinned host memory a GPU backend uses for transfers, anything
else (`CUDA0`, `ROCm1`, `Vulkan0`, `Metal`) lives on a GPU.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict

__all__ = ["MIB", "LoggedBuffers", "is_gpu_buffer", "parse_llama_log"]

MIB = 1024 * 1024

_BUFFER = re.compile(
    r"(?P<where>load_tensors|llama_kv_cache|sched_reserve|llama_context):\s+(?P<name>\S+)\s+"
    r"(?P<kind>model|KV|compute|output) buffer size =\s+(?P<mib>[0-9.]+) MiB"
)
_CELLS = re.compile(r"llama_kv_cache_iswa: creating\s+(?P<kind>non-SWA|SWA) KV cache, size = (?P<cells>\d+) cells")
_PLAIN_CELLS = re.compile(r"llama_kv_cache: size =\s+[0-9.]+ MiB \(\s*(?P<cells>\d+) cells")


def is_gpu_buffer(name: str) -> bool:
    """Whether a llama.cpp buffer name is device memory (not CPU, CPU_Mapped, CUDA_Host...)."""
    return not (name.startswith("CPU") or name.endswith("_Host"))


class LoggedBuffers(BaseModel):
    """The buffers one llama-server start allocated, summed into the estimator's components."""

    model_config = ConfigDict(frozen=True)

    command: str = ""
    backend: Literal["cuda", "cpu"] = "cpu"
    weights_gpu_bytes: int = 0
    weights_cpu_bytes: int = 0
    kv_gpu_bytes: int = 0
    kv_cpu_bytes: int = 0
    compute_gpu_bytes: int = 0
    compute_host_bytes: int = 0
    output_bytes: int = 0
    kv_cells: int | None = None
    swa_cells: int | None = None


def _component(kind: str, name: str) -> str:
    gpu = is_gpu_buffer(name)
    if kind == "model":
        return "weights_gpu_bytes" if gpu else "weights_cpu_bytes"
    if kind == "KV":
        return "kv_gpu_bytes" if gpu else "kv_cpu_bytes"
    if kind == "compute":
        return "compute_gpu_bytes" if gpu else "compute_host_bytes"
    return "output_bytes"


def parse_llama_log(text: str) -> LoggedBuffers:
    """Sum a llama-server log's buffer lines into components (bytes, rounded from MiB).

    The first line, when it starts with `# `, is taken as the command line (the capture script
    writes it there). A log that names any buffer other than the CPU's came from a GPU build
    (`backend="cuda"`; other GPU backends are reported as such too). KV cells are the non-SWA
    cache's cells per stream; `swa_cells` is set only for models with a sliding-window cache.
    """
    sums: dict[str, float] = {}
    fields: dict[str, object] = {}
    lines = text.splitlines()
    if lines and lines[0].startswith("# "):
        fields["command"] = lines[0][2:]
    for line in lines:
        if match := _BUFFER.search(line):
            if match["name"] not in ("CPU", "CPU_Mapped", "CPU_REPACK"):
                fields["backend"] = "cuda"
            key = _component(match["kind"], match["name"])
            sums[key] = sums.get(key, 0.0) + float(match["mib"])
        elif match := _CELLS.search(line):
            fields["kv_cells" if match["kind"] == "non-SWA" else "swa_cells"] = int(match["cells"])
        elif (match := _PLAIN_CELLS.search(line)) and "kv_cells" not in fields:
            fields["kv_cells"] = int(match["cells"])
    byte_sums = {key: round(mib * MIB) for key, mib in sums.items()}
    return LoggedBuffers.model_validate(fields | byte_sums)
