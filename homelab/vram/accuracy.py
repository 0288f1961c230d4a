"""The estimator checked against llama.cpp's own buffer figures, component by component.

A capture (benchmarks/vram_capture.py) is a folder with `runs.json` (the model specs and one
entry per llama-server start: context, sequences, cache type, flash attention, GPU layers) and
the filtered log of each start. Every run is compared on six components; an estimate is good
when it is within 3 % or 16 MiB of the logged figure, whichever is larger. Shared by the
benchmark script and the regression test, so both judge alike.

Captures on several devices (benchmarks/vram_rpc_capture.py: two llama.cpp RPC devices) also
record the split flags (-ts, -sm, -mg, --n-cpu-moe, -ot), and `check_devices` compares each
device's weights, KV and compute with the estimate's per-device figures.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from homelab.vram.estimate import Estimate, estimate
from homelab.vram.llama_log import LoggedBuffers, parse_llama_log
from homelab.vram.settings import Backend, RunSettings
from homelab.vram.shape import ModelShape
from homelab.vram.sizes import MIB

__all__ = [
    "ABS_BOUND_BYTES",
    "COMPONENTS",
    "REL_BOUND",
    "CapturedRun",
    "ComponentCheck",
    "Summary",
    "check_devices",
    "check_run",
    "load_capture",
    "settings_for",
    "summarize",
]

# estimate field -> logged field; the same names on both sides.
COMPONENTS = (
    "weights_gpu_bytes",
    "weights_cpu_bytes",
    "kv_gpu_bytes",
    "kv_cpu_bytes",
    "compute_gpu_bytes",
    "compute_host_bytes",
)
REL_BOUND = 0.03
ABS_BOUND_BYTES = 16 * MIB
_REL_FLOOR = 64 * MIB
_SPLIT_FIELDS = ("devices", "tensor_split", "split_mode", "main_gpu", "n_cpu_moe", "override_tensor")
_DEVICE_PARTS = ("weights_bytes", "kv_bytes", "compute_bytes")


class CapturedRun(BaseModel):
    """One llama-server start of a capture, with what its log says."""

    model_config = ConfigDict(frozen=True)

    id: str
    model: str
    ctx: int
    parallel: int
    cache_type: str
    flash_attn: bool
    ngl: int
    logged: LoggedBuffers
    # Several devices (RPC captures): how many the run used, and llama-server's flags as written.
    devices: int = 1
    tensor_split: str = ""
    split_mode: str = "layer"
    main_gpu: int = 0
    n_cpu_moe: int = 0
    override_tensor: str = ""  # -ot as captured; `=RPC1` names device 1 whatever its port was


class ComponentCheck(BaseModel):
    """One component of one run: logged and estimated bytes, and whether they agree."""

    model_config = ConfigDict(frozen=True)

    run: str
    model: str
    backend: str
    component: str
    logged_bytes: int
    estimated_bytes: int

    @property
    def error_bytes(self) -> int:
        return self.estimated_bytes - self.logged_bytes

    @property
    def bound_bytes(self) -> float:
        return max(REL_BOUND * self.logged_bytes, ABS_BOUND_BYTES)

    @property
    def relative_error(self) -> float:
        """|error| / logged; 1.0 for anything estimated where llama.cpp logged nothing."""
        if self.logged_bytes:
            return abs(self.error_bytes) / self.logged_bytes
        return 0.0 if self.error_bytes == 0 else 1.0

    @property
    def ok(self) -> bool:
        return abs(self.error_bytes) <= self.bound_bytes


class Summary(BaseModel):
    """Totals over a set of checks; the relative error is taken over components of 64 MiB or more.

    Below that the 16 MiB floor of the bound applies, and a relative figure of a 0.5 MiB buffer
    says nothing about a plan.
    """

    model_config = ConfigDict(frozen=True)

    checks: int
    within: int
    max_abs_error_bytes: int
    max_relative_error: float

    @property
    def share_within(self) -> float:
        return self.within / self.checks if self.checks else 1.0


def load_capture(folder: Path) -> tuple[list[dict[str, Any]], list[CapturedRun]]:
    """The model specs and the loaded runs of a capture folder (runs that failed to load are skipped)."""
    data = json.loads((folder / "runs.json").read_text())
    runs = []
    for run in data["runs"]:
        if not run.get("loaded", True):
            continue
        logged = parse_llama_log((folder / run["log"]).read_text(errors="replace"))
        fields = {k: run[k] for k in ("id", "model", "ctx", "parallel", "cache_type", "flash_attn", "ngl")}
        fields |= {k: run[k] for k in _SPLIT_FIELDS if k in run}
        runs.append(CapturedRun(**fields, logged=logged))
    return data["cases"]["models"], runs


def estimator_backend(logged: LoggedBuffers) -> Backend:
    """The build the estimate models: the log's (CUDA, CPU only, or RPC devices)."""
    return logged.backend


def _overrides(run: CapturedRun) -> tuple[tuple[str, str], ...]:
    """`-ot` pairs as captured: devices by llama.cpp's name (`RPC1`, `CUDA1`), ports left out."""
    return tuple(
        (pattern, device)
        for pattern, _, device in (item.partition("=") for item in run.override_tensor.split(",") if item)
    )


def settings_for(run: CapturedRun) -> RunSettings:
    """The run settings of a captured start (its build: CUDA when the log shows a GPU buffer)."""
    backend = estimator_backend(run.logged)
    split = tuple(float(x) for x in run.tensor_split.split(",")) if run.tensor_split else None
    return RunSettings(
        ctx_size=run.ctx,
        parallel=run.parallel,
        cache_type_k=run.cache_type,
        cache_type_v=run.cache_type,
        flash_attn=run.flash_attn,
        n_gpu_layers=run.ngl,
        backend=backend,
        tensor_split=split,
        split_mode=run.split_mode,
        main_gpu=run.main_gpu,
        n_cpu_moe=run.n_cpu_moe,
        override_tensor=_overrides(run),
    )


def check_run(shape: ModelShape, run: CapturedRun) -> tuple[Estimate, list[ComponentCheck]]:
    """Estimate one captured run and compare each component with its log."""
    result = estimate(shape, settings_for(run))
    checks = [
        ComponentCheck(
            run=run.id,
            model=run.model,
            backend=run.logged.backend,
            component=name,
            logged_bytes=getattr(run.logged, name),
            estimated_bytes=getattr(result, name),
        )
        for name in COMPONENTS
    ]
    return result, checks


def check_devices(shape: ModelShape, run: CapturedRun, result: Estimate | None = None) -> list[ComponentCheck]:
    """Each device's weights, KV and compute, logged against estimated (`device1.kv_bytes`...).

    Devices are matched by llama.cpp's index; one side's missing device counts as zero bytes.
    """
    result = result or estimate(shape, settings_for(run))
    logged = {d.index: d for d in run.logged.devices}
    estimated = {d.index: d for d in result.devices}
    return [
        ComponentCheck(
            run=run.id,
            model=run.model,
            backend=run.logged.backend,
            component=f"device{index}.{part}",
            logged_bytes=getattr(logged[index], part) if index in logged else 0,
            estimated_bytes=getattr(estimated[index], part) if index in estimated else 0,
        )
        for index in sorted(logged.keys() | estimated.keys())
        for part in _DEVICE_PARTS
    ]


def summarize(checks: list[ComponentCheck]) -> Summary:
    """Counts and worst errors of a set of checks."""
    return Summary(
        checks=len(checks),
        within=sum(c.ok for c in checks),
        max_abs_error_bytes=max((abs(c.error_bytes) for c in checks), default=0),
        max_relative_error=max((c.relative_error for c in checks if c.logged_bytes >= _REL_FLOOR), default=0.0),
    )
