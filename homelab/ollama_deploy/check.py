"""After a rollout: is each planned model loaded, and does its `size_vram` agree with the VRAM plan?

The plan's figure is homelab's estimate of the model's own GPU buffers (weights, KV cache,
compute; not the CUDA context, which Ollama does not count either); `size_vram` is what Ollama
reports it put on the GPU. They never agree
to the byte (Ollama sizes its own buffers), so a difference within `vram_tolerance` of the plan
counts as matching; a larger one is reported, not failed: the model serves either way, but the
plan's headroom on that GPU is not what it says.
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict

from homelab.ollama_deploy.api import RunningModel
from homelab.ollama_deploy.desired import OllamaDesired

__all__ = ["LoadCheck", "check_loads"]

_MIB = 1 << 20


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

    def summary(self) -> str:
        where = f"{self.model} on {self.endpoint}"
        if not self.loaded:
            return f"{where}: not loaded"
        vram = f"size_vram {self.size_vram / _MIB:.1f} MiB"  # type: ignore[operator]
        if self.planned_gpu_bytes is None or self.difference_bytes is None:
            return f"{where}: {vram} (no VRAM plan for it)"
        diff = self.difference_bytes / _MIB
        verdict = "matches the plan" if self.matches else "differs from the plan"
        return f"{where}: {vram}, plan {self.planned_gpu_bytes / _MIB:.1f} MiB ({diff:+.1f} MiB): {verdict}"


def check_loads(
    desired: OllamaDesired, running: Mapping[str, Mapping[str, RunningModel]], tolerance: float
) -> list[LoadCheck]:
    """Compare each endpoint's `/api/ps` with the plan.

    Args:
        running: endpoint -> its loaded models by name (`OllamaAPI.running`).
        tolerance: share of the plan's bytes a difference may be and still match.
    """
    checks = []
    for e in desired.endpoints:
        loaded = running.get(e.endpoint, {})
        for m in e.models:
            found = loaded.get(m.name)
            if found is None:
                checks.append(LoadCheck(endpoint=e.endpoint, model=m.name, loaded=False))
                continue
            planned = m.planned_gpu_bytes
            diff = None if planned is None else found.size_vram - planned
            matches = None if diff is None or planned is None else abs(diff) <= tolerance * planned
            checks.append(
                LoadCheck(
                    endpoint=e.endpoint, model=m.name, loaded=True, size_vram=found.size_vram,
                    planned_gpu_bytes=planned, difference_bytes=diff, matches=matches,
                )
            )  # fmt: skip
    return checks
