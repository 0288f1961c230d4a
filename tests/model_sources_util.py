"""Helpers of the model-source tests: a split GGUF (gguf-py's own shard writer), `homelab` run as a user runs it."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from gguf import GGMLQuantizationType, GGUFReader, GGUFWriter

from homelab.tiny_gguf import add_metadata, add_tokenizer, tiny_vocab, write_tiny_llama

__all__ = ["ROOT", "run_homelab", "write_split_llama"]

ROOT = Path(__file__).resolve().parents[1]
_HOMELAB = Path(sys.executable).parent / "homelab"


def write_split_llama(folder: Path, parts: int = 3, seed: int = 0) -> tuple[Path, list[Path]]:
    """The tiny model as one file, and the same model in `parts` parts named as llama.cpp's gguf-split names them."""
    single = write_tiny_llama(folder / "single.gguf", seed=seed)
    reader = GGUFReader(single)
    writer = GGUFWriter(folder / "m.gguf", "llama", split_max_tensors=math.ceil(len(reader.tensors) / parts))
    add_metadata(writer, "homelab-tiny", 2, 64, 4, 2, 128, 2048, GGMLQuantizationType.F32)
    add_tokenizer(writer, *tiny_vocab(512))
    for tensor in reader.tensors:
        writer.add_tensor(tensor.name, np.array(tensor.data))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return single, [folder / f"m-{n:05d}-of-{parts:05d}.gguf" for n in range(1, parts + 1)]


def run_homelab(hf_cache: Path, *args: str | Path) -> subprocess.CompletedProcess[str]:
    """`homelab ARGS` with the hub cache in `hf_cache`, plain output, no inventory from the environment."""
    env = {k: v for k, v in os.environ.items() if k not in {"FORCE_COLOR", "COLUMNS", "HOMELAB_INVENTORY"}}
    env |= {"NO_COLOR": "1", "COLUMNS": "200", "HF_HUB_CACHE": str(hf_cache)}
    return subprocess.run([str(_HOMELAB), *map(str, args)], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300, check=False)  # fmt: skip
