"""Model shapes for the VRAM tests, stored from the benchmark's GGUF files (no 300 MB model is
regenerated), and bare GGUF files for the estimator's refusals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from gguf import GGUFWriter

from homelab.vram.shape import ModelShape

__all__ = ["SHAPES", "stored_shape", "write_bare_gguf"]

SHAPES = Path(__file__).resolve().parent / "cases" / "vram" / "models"


def stored_shape(model: str) -> ModelShape:
    """The shape of a benchmark model (`benchmarks/vram_accuracy.py --export-shapes` wrote it)."""
    return ModelShape.model_validate_json((SHAPES / f"{model}.json").read_text())


def write_bare_gguf(path: Path, arch: str, keys: dict[str, int] | None = None) -> Path:
    """A GGUF of architecture `arch` with only `keys` (uint32) and one tiny tensor."""
    writer = GGUFWriter(path, arch)
    for key, value in (keys or {}).items():
        writer.add_uint32(key, value)
    writer.add_tensor("token_embd.weight", np.zeros((32, 8), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
