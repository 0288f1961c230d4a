"""The KV cache, layer by layer (llama-kv-cache.cpp): rows of keys and values for every cell.

Each layer holds, per stream, `cells` rows of `n_embd_k_gqa` keys and `n_embd_v_gqa` values in
the cache type; quantized types pack 32 values into a block (q8_0: 34 bytes, q4_0: 18). Sliding-
window layers keep only `swa_cells` per stream. A layer's cache lives where the layer's weights
live, so `-ngl` moves KV to the GPU layer by layer. Multi-head latent attention (deepseek2)
caches one compressed row per token and layer (kv_lora_rank + RoPE values) and no V.
"""

from __future__ import annotations

from dataclasses import dataclass

from homelab.errors import SettingsError
from homelab.vram.settings import Context, RunSettings
from homelab.vram.shape import ModelShape, row_bytes, type_size

__all__ = ["LayerCache", "kv_layers"]


@dataclass(frozen=True)
class LayerCache:
    """One layer's cache: cells per stream, K and V bytes over all streams."""

    cells: int
    k_bytes: int
    v_bytes: int

    @property
    def bytes(self) -> int:
        return self.k_bytes + self.v_bytes


def _row(cache_type: str, width: int, what: str) -> int:
    block, _ = type_size(cache_type)
    if width % block:
        raise SettingsError(
            f"a {cache_type} {what} cache needs rows that divide by {block}; this model's are {width} wide"
        )
    return row_bytes(cache_type, width)


def kv_layers(shape: ModelShape, settings: RunSettings, ctx: Context) -> list[LayerCache]:
    """Every layer's cache, in layer order.

    Raises:
        SettingsError: The cache type's blocks do not divide the model's key or value width.
    """
    out = []
    for il in range(shape.n_layer):
        cells = ctx.cells(shape.swa_layers[il])
        if il >= shape.n_layer_trunk:  # a multi-token-prediction block: filtered out of the cache
            out.append(LayerCache(cells, 0, 0))
            continue
        k = _row(settings.cache_type_k, shape.n_embd_k_gqa(il), "K") * cells * ctx.n_stream
        # MLA reads V as a view of the compressed K row: no V cache (llama-kv-cache.cpp `has_v`).
        v = 0 if shape.mla else _row(settings.cache_type_v, shape.n_embd_v_gqa(il), "V") * cells * ctx.n_stream
        out.append(LayerCache(cells, k, v))
    return out
