"""A tiny random-weight multimodal projector (`--mmproj`) that llama.cpp's llama-server loads.

With one beside a tiny text model, a real llama-server reports `modalities.vision` in `/props`
and accepts image parts in `/v1/chat/completions`, so vision discovery and image routing run
against the real binary. The projector is llava's: a CLIP-style vision transformer, then a
two-layer MLP (`mm.0`, `mm.2`) into the text model's embedding width; among the projector types
in llama.cpp's `tools/mtmd/clip.cpp` it needs the fewest tensors and no extra metadata.

Shapes follow gguf-py's convention, ggml's `ne` reversed (see `homelab.tiny_gguf`).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from gguf import GGMLQuantizationType

from homelab.tiny_gguf import gguf_file

__all__ = ["write_tiny_mmproj"]

# CLIP's normalisation, as llava's converter writes it; clip.cpp refuses a file without both.
_IMAGE_MEAN = (0.48145466, 0.4578275, 0.40821073)
_IMAGE_STD = (0.26862954, 0.26130258, 0.27577711)


def write_tiny_mmproj(
    path: str | os.PathLike[str],
    *,
    n_embd_text: int = 64,
    n_embd: int = 32,
    n_head: int = 2,
    n_ff: int = 64,
    n_layer: int = 2,
    image_size: int = 32,
    patch_size: int = 8,
    seed: int = 0,
) -> Path:
    """Write a llava-style projector GGUF for a text model `n_embd_text` wide; same arguments, same bytes.

    Args:
        path: Where to write the file (parent directories must exist).
        n_embd_text: Embedding width of the text model it feeds; llama-server refuses a mismatch.
        n_embd: Width of the vision transformer; must divide by `n_head`.
        n_head: Attention heads of the vision transformer.
        n_ff: Feed-forward width of the vision transformer; must differ from `n_embd`, or clip.cpp
            takes the file for an old export with up and down swapped.
        n_layer: Vision transformer blocks; llava's graph runs all but the last.
        image_size: Side of the square the image is resized to, in pixels.
        patch_size: Side of one patch in pixels; must divide `image_size`.
        seed: Seed of the weights.

    Returns:
        The path written.

    Raises:
        ValueError: Widths, heads or sizes that do not fit together.
    """
    if n_embd % n_head or image_size % patch_size or n_ff == n_embd or n_layer < 1:
        raise ValueError(
            f"need n_embd ({n_embd}) divisible by n_head ({n_head}), image_size ({image_size}) by patch_size "
            f"({patch_size}), n_ff ({n_ff}) != n_embd and n_layer ({n_layer}) >= 1"
        )
    n_patches = (image_size // patch_size) ** 2
    out = Path(path)
    with gguf_file(out, "clip") as writer:
        writer.add_name("homelab-tiny-mmproj")
        writer.add_file_type(0)  # all F32
        writer.add_bool("clip.has_vision_encoder", True)
        writer.add_string("clip.projector_type", "mlp")
        writer.add_bool("clip.use_gelu", True)
        writer.add_uint32("clip.vision.image_size", image_size)
        writer.add_uint32("clip.vision.patch_size", patch_size)
        writer.add_uint32("clip.vision.embedding_length", n_embd)
        writer.add_uint32("clip.vision.feed_forward_length", n_ff)
        writer.add_uint32("clip.vision.block_count", n_layer)
        writer.add_uint32("clip.vision.projection_dim", n_embd_text)
        writer.add_uint32("clip.vision.attention.head_count", n_head)
        writer.add_float32("clip.vision.attention.layer_norm_epsilon", 1e-5)
        writer.add_array("clip.vision.image_mean", list(_IMAGE_MEAN))
        writer.add_array("clip.vision.image_std", list(_IMAGE_STD))
        for name, array in _tensors(n_embd_text, n_embd, n_ff, n_layer, patch_size, n_patches, seed):
            writer.add_tensor(name, array, raw_dtype=GGMLQuantizationType.F32)
    return out


def _tensors(
    n_embd_text: int, n_embd: int, n_ff: int, n_layer: int, patch_size: int, n_patches: int, seed: int
) -> list[tuple[str, np.ndarray]]:
    """The projector's tensors in clip.cpp's names (`clip-impl.h`), in file order."""
    rng = np.random.default_rng(seed)

    def weight(*shape: int) -> np.ndarray:
        # Small weights keep the random activations finite.
        return rng.standard_normal(shape, dtype=np.float32) * 0.02

    def norm(prefix: str) -> list[tuple[str, np.ndarray]]:
        return [(f"{prefix}.weight", np.ones(n_embd, np.float32)), (f"{prefix}.bias", np.zeros(n_embd, np.float32))]

    # The patch embedding is a convolution: ggml kernel {patch, patch, 3, n_embd}.
    out = [
        ("v.patch_embd.weight", weight(n_embd, 3, patch_size, patch_size)),
        ("v.position_embd.weight", weight(n_patches, n_embd)),
    ]
    for i in range(n_layer):
        blk = f"v.blk.{i}"
        out += norm(f"{blk}.ln1")
        out += [(f"{blk}.attn_{part}.weight", weight(n_embd, n_embd)) for part in ("q", "k", "v", "out")]
        out += norm(f"{blk}.ln2")
        out += [(f"{blk}.ffn_up.weight", weight(n_ff, n_embd)), (f"{blk}.ffn_down.weight", weight(n_embd, n_ff))]
    out += [
        ("mm.0.weight", weight(n_embd_text, n_embd)),
        ("mm.0.bias", np.zeros(n_embd_text, np.float32)),
        ("mm.2.weight", weight(n_embd_text, n_embd_text)),
        ("mm.2.bias", np.zeros(n_embd_text, np.float32)),
    ]
    return out
