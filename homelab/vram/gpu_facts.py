"""GPU facts from `nvidia-smi`: the command to run on a node and a pure parser of what it printed.

A fact, as in pyinfra: a command plus `process(output)`, with no I/O here, so the parser is
tested on captured output (tests/cases/nvidia_smi/) and the command can run over any
connector. A node without GPUs, or without the NVIDIA driver, is a finding reported as such
(`GpuStatus.NO_GPU`, `GpuStatus.NO_NVIDIA_SMI`), not an error: a NAS tier has neither.
"""

from __future__ import annotations

import math
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

__all__ = [
    "MIB",
    "NVIDIA_SMI_QUERY",
    "GpuFact",
    "GpuReading",
    "GpuStatus",
    "VramSample",
    "VramSource",
    "gpu_fact",
    "gpu_samples",
    "parse_nvidia_smi",
]

# CSV without header or units: numbers in MiB and percent, one line per GPU.
NVIDIA_SMI_QUERY = (
    "nvidia-smi --query-gpu=index,name,memory.used,memory.total,utilization.gpu --format=csv,noheader,nounits"
)
MIB = 1024 * 1024
# What a shell returns or prints when the program is not installed: 127 and "command not found"
# from POSIX shells; 9009 (MSG_DIR_BAD_COMMAND_OR_FILE) and "'nvidia-smi' is not recognized as an
# internal or external command" from cmd.exe, Windows OpenSSH's default shell; "The term
# 'nvidia-smi' is not recognized as the name of a cmdlet" (exit 1) from PowerShell. On Windows
# nvidia-smi comes with the NVIDIA driver.
_NOT_FOUND_EXIT = (127, 9009)
_NOT_FOUND_TEXT = ("command not found", "not found", "no such file or directory", "is not recognized as")
# nvidia-smi's own words when the driver is there but no GPU is (exit status 6 on recent drivers).
_NO_DEVICE_TEXT = ("no devices were found", "no devices found")
# Fields nvidia-smi prints for values a GPU or driver cannot report (vGPU, MIG, old cards).
_UNKNOWN = {"[n/a]", "n/a", "[not supported]", "not supported", "[unknown error]", "[insufficient permissions]", ""}
_FIELDS = 5


class GpuStatus(StrEnum):
    """OK: readings parsed. NO_GPU / NO_NVIDIA_SMI: nothing to sample, by design. FAILED: a real fault."""

    OK = "ok"
    NO_GPU = "no_gpu"
    NO_NVIDIA_SMI = "no_nvidia_smi"
    FAILED = "failed"


class GpuReading(BaseModel):
    """One GPU's line; a value the GPU does not report ("[N/A]", "[Not Supported]") is None."""

    model_config = ConfigDict(frozen=True)

    index: int
    name: str
    used_bytes: int | None
    total_bytes: int | None
    utilization_pct: float | None


class GpuFact(BaseModel):
    """What sampling one node's GPUs found, with `detail` saying why when there are no readings."""

    model_config = ConfigDict(frozen=True)

    node: str
    sampled_at: datetime
    status: GpuStatus
    gpus: list[GpuReading] = []
    detail: str = ""


def _number(field: str) -> float | None:
    text = field.strip()
    if text.lower() in _UNKNOWN:
        return None
    value = float(text)
    if not math.isfinite(value):  # "inf" would overflow int(); "nan" is no reading either
        raise ValueError(f"not a finite number: {text!r}")
    return value


def _mib(field: str) -> int | None:
    value = _number(field)
    return None if value is None else int(value * MIB)


def _reading(line: str, lineno: int) -> GpuReading:
    # GPU names contain no commas in practice, but split from the right so one could.
    head, *rest = line.rsplit(",", _FIELDS - 2)
    index, _, name = head.partition(",")
    if len(rest) != _FIELDS - 2 or not name:
        raise ValueError(f"line {lineno}: expected {_FIELDS} comma-separated fields, got {line!r}")
    try:
        return GpuReading(
            index=int(index.strip()),
            name=name.strip(),
            used_bytes=_mib(rest[0]),
            total_bytes=_mib(rest[1]),
            utilization_pct=_number(rest[2]),
        )
    except ValueError as exc:
        raise ValueError(f"line {lineno}: {exc}: {line!r}") from None


def parse_nvidia_smi(output: str) -> list[GpuReading]:
    """Parse the CSV of `NVIDIA_SMI_QUERY`: one reading per non-blank line, in GPU order.

    Raises:
        ValueError: a line is not the five fields asked for (the message names the line).
    """
    lines = [(n, line) for n, line in enumerate(output.splitlines(), start=1) if line.strip()]
    return [_reading(line, n) for n, line in lines]


def gpu_fact(node: str, sampled_at: datetime, exit_status: int, stdout: str, stderr: str = "") -> GpuFact:
    """Judge one run of `NVIDIA_SMI_QUERY` on `node`: readings, or why there are none.

    Args:
        node: the node's name in the inventory.
        sampled_at: when the command ran (UTC).
        exit_status: the remote exit status (127, or cmd.exe's 9009: the shell found no nvidia-smi).
        stdout: what the command printed.
        stderr: its error output, searched for the shells' "not found" / "is not recognized" and
            nvidia-smi's "No devices were found".
    """
    said = f"{stdout}\n{stderr}".strip()
    lowered = said.lower()
    fact = {"node": node, "sampled_at": sampled_at}
    if exit_status in _NOT_FOUND_EXIT or (exit_status != 0 and any(t in lowered for t in _NOT_FOUND_TEXT)):
        return GpuFact(**fact, status=GpuStatus.NO_NVIDIA_SMI, detail="nvidia-smi is not installed on this node")
    if any(t in lowered for t in _NO_DEVICE_TEXT):
        return GpuFact(**fact, status=GpuStatus.NO_GPU, detail="nvidia-smi found no GPU")
    if exit_status != 0:
        first = said.splitlines()[0] if said else "no output"
        return GpuFact(**fact, status=GpuStatus.FAILED, detail=f"nvidia-smi exited {exit_status}: {first}")
    try:
        readings = parse_nvidia_smi(stdout)
    except ValueError as exc:
        return GpuFact(**fact, status=GpuStatus.FAILED, detail=f"unreadable nvidia-smi output: {exc}")
    if not readings:
        return GpuFact(**fact, status=GpuStatus.NO_GPU, detail="nvidia-smi listed no GPU")
    return GpuFact(**fact, status=GpuStatus.OK, gpus=readings)


class VramSource(StrEnum):
    """Where a VRAM figure came from: a whole GPU (nvidia-smi) or one loaded model (its server's API)."""

    NVIDIA_SMI = "nvidia-smi"
    OLLAMA = "ollama"
    LLAMA_SERVER = "llama-server"


class VramSample(BaseModel):
    """One row of the history's `vram_samples`: a GPU's use (model None) or one model's (gpu_index None).

    Figures are bytes; None where the source did not report them ("[N/A]").
    """

    model_config = ConfigDict(frozen=True)

    sampled_at: datetime
    node: str
    source: VramSource
    gpu_index: int | None = None
    gpu_name: str = ""
    model: str | None = None
    used_bytes: int | None = None
    total_bytes: int | None = None
    utilization_pct: float | None = None


def gpu_samples(fact: GpuFact) -> list[VramSample]:
    """The fact's readings as history rows (none for a node without GPUs or without nvidia-smi)."""
    return [
        VramSample(
            sampled_at=fact.sampled_at,
            node=fact.node,
            source=VramSource.NVIDIA_SMI,
            gpu_index=g.index,
            gpu_name=g.name,
            used_bytes=g.used_bytes,
            total_bytes=g.total_bytes,
            utilization_pct=g.utilization_pct,
        )
        for g in fact.gpus
    ]
