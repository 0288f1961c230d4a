"""Timeouts and limits of an Ollama deployment: how long each kind of call may take, how loads are awaited.

Units are in the field names. Defaults suit a home LAN and models of a few GB: an upload or a
pull is bounded by its progress (a read timeout between chunks), not by its total length;
a load may take minutes on a slow disk.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from homelab.frozen import Frozen

__all__ = ["DEFAULT_OLLAMA_DEPLOY_SETTINGS", "LoadWait", "OllamaDeploySettings", "OllamaTimeouts"]


class OllamaTimeouts(Frozen):
    """Per call: connecting, an answer to a quick call, the gap between chunks of a stream, a load."""

    connect_s: float = Field(5.0, gt=0)
    read_s: float = Field(30.0, gt=0, description="quick calls: show, ps, tags, HEAD, delete, unload")
    stream_gap_s: float = Field(300.0, gt=0, description="uploads, pulls, creates: the longest silence")
    load_s: float = Field(600.0, gt=0, description="a preload: Ollama answers once the model is in memory")


class LoadWait(Frozen):
    """How a preloaded model is awaited in `/api/ps`: polled every `interval_s` up to `timeout_s`."""

    interval_s: float = Field(0.5, gt=0)
    timeout_s: float = Field(120.0, gt=0)

    @model_validator(mode="after")
    def _interval_within_timeout(self) -> LoadWait:
        if self.interval_s > self.timeout_s:
            raise ValueError(f"interval_s ({self.interval_s}) must not exceed timeout_s ({self.timeout_s})")
        return self


class OllamaDeploySettings(Frozen):
    """Everything about an Ollama rollout that is not in the inventory."""

    timeouts: OllamaTimeouts = OllamaTimeouts()
    load_wait: LoadWait = LoadWait()
    vram_tolerance: float = Field(
        0.10, ge=0, description="size_vram within this share of the plan's GPU bytes counts as matching"
    )


DEFAULT_OLLAMA_DEPLOY_SETTINGS = OllamaDeploySettings()
