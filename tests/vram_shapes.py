"""Model shapes for the VRAM tests, stored from the benchmark's GGUF files (no 300 MB model is regenerated)."""

from __future__ import annotations

from pathlib import Path

from homelab.vram.shape import ModelShape

__all__ = ["SHAPES", "stored_shape"]

SHAPES = Path(__file__).resolve().parent / "cases" / "vram" / "models"


def stored_shape(model: str) -> ModelShape:
    """The shape of a benchmark model (`benchmarks/vram_accuracy.py --export-shapes` wrote it)."""
    return ModelShape.model_validate_json((SHAPES / f"{model}.json").read_text())
