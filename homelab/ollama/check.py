"""After a rollout: is each planned model loaded, and does its `size_vram` agree with the VRAM plan?

The plan's figure is homelab's estimate of the model's own GPU buffers (weights, KV cache,
compute; not the CUDA context, which Ollama does not count either); `size_vram` is what Ollama
reports it put on the GPU. They never agree
to the byte (Ollama sizes its own buffers), so a difference within `vram_tolerance` of the plan
counts as matching; a larger one is reported, not failed: the model serves either way, but the
plan's headroom on that GPU is not what it says.

What `size_vram` means depends on the version (`/api/version`): from 0.30 Ollama runs
llama-server and reports the sum of its GPU buffers, which the plan models; 0.12 reports a
load-time estimate with a fixed 457 MiB per GPU (ml/device.go:348 at v0.12.11) and, with its
own engine, CPU-resident parts too. There the figures are "not comparable": said, never failed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field

from homelab.ollama.api import RunningModel
from homelab.ollama.desired import OllamaDesired

__all__ = ["COMPARABLE_SINCE", "LoadCheck", "check_loads", "ollama_release"]

_MIB = 1 << 20
_RELEASE = re.compile(r"v?(\d{1,4})\.(\d{1,4})\.(\d{1,4})(?:-\S*)?")
COMPARABLE_SINCE = (0, 30, 0)  # llama-server only (first in v0.30.0, commit 9db4bdbad)


def ollama_release(version: str) -> tuple[int, int, int] | None:
    """`0.33.0-rc2` as (0, 33, 0); None for anything else."""
    match = _RELEASE.fullmatch(version.strip())
    return (int(match.group(1)), int(match.group(2)), int(match.group(3))) if match else None


class LoadCheck(BaseModel):
    """One planned model after the rollout."""

    model_config = ConfigDict(frozen=True)

    endpoint: str
    model: str
    loaded: bool
    size_vram: int | None = None
    planned_gpu_bytes: int | None = None
    difference_bytes: int | None = None
    matches: bool | None = None
    version: str | None = Field(None, description="the endpoint's Ollama version")
    comparable: bool = Field(True, description="False: this version's size_vram is not what the plan models")

    def summary(self) -> str:
        where = f"{self.model} on {self.endpoint}"
        if not self.loaded:
            return f"{where}: not loaded"
        vram = f"size_vram {self.size_vram / _MIB:.1f} MiB"  # type: ignore[operator]
        if not self.comparable:
            return f"{where}: {vram}, not comparable with the plan (Ollama {self.version} counts it differently)"
        if self.planned_gpu_bytes is None or self.difference_bytes is None:
            return f"{where}: {vram} (no VRAM plan for it)"
        diff = self.difference_bytes / _MIB
        verdict = "matches the plan" if self.matches else "differs from the plan"
        return f"{where}: {vram}, plan {self.planned_gpu_bytes / _MIB:.1f} MiB ({diff:+.1f} MiB): {verdict}"


def check_loads(
    desired: OllamaDesired,
    running: Mapping[str, Mapping[str, RunningModel]],
    tolerance: float,
    versions: Mapping[str, str] | None = None,
) -> list[LoadCheck]:
    """Compare each endpoint's `/api/ps` with the plan.

    Args:
        running: endpoint -> its loaded models by name (`OllamaAPI.running`).
        tolerance: share of the plan's bytes a difference may be and still match.
        versions: endpoint -> its Ollama version; one before 0.30 (or unknown) is not compared.
    """
    checks = []
    for e in desired.endpoints:
        loaded = running.get(e.endpoint, {})
        version = (versions or {}).get(e.endpoint)
        release = ollama_release(version) if version is not None else None
        comparable = versions is None or (release is not None and release >= COMPARABLE_SINCE)
        for m in e.models:
            found = loaded.get(m.name)
            if found is None:
                checks.append(LoadCheck(endpoint=e.endpoint, model=m.name, loaded=False, version=version))
                continue
            planned = m.planned_gpu_bytes
            diff = None if planned is None or not comparable else found.size_vram - planned
            matches = None if diff is None or planned is None else abs(diff) <= tolerance * planned
            checks.append(
                LoadCheck(
                    endpoint=e.endpoint, model=m.name, loaded=True, size_vram=found.size_vram,
                    planned_gpu_bytes=planned, difference_bytes=diff, matches=matches, version=version,
                    comparable=comparable,
                )
            )  # fmt: skip
    return checks
