"""Which Ollama the stand-in plays: the behaviours that differ between Ollama 0.12.x and 0.30+, each from its source.

Citations are to the GitHub repository ollama/ollama at the tags v0.12.11 and v0.33.0-rc2
(file:line); `docs/ollama-versions.md` lists them with the tests that check each one, and
`tests/cases/ollama_standin/behaviours.jsonl` holds one row per behaviour.

- GGUF rewrite on create (0.30+): an imported GGUF is copied through llama-quantize (`COPY`)
  into a new layer, so the model's blob is not the uploaded one (server/create.go:765-767 and
  `copyLayerWithLlamaQuantize`, :942, at v0.33.0-rc2; first in v0.30.0, commit 9db4bdbad).
  0.12 keeps the uploaded blob as the model layer.
- Pruning at start: blobs no manifest references are deleted when the server starts
  (server/routes.go:1963-1968 `PruneLayers` at v0.33.0-rc2; :1554-1559 at v0.12.11); 0.21+
  skips blobs younger than an hour (server/images.go:40 `layerPruneGracePeriod`, :897).
- `size_vram`: 0.30+ runs llama-server and reports its GPU buffers; 0.12 counts a fixed
  457 MiB per GPU on top (ml/device.go:348-352 `MinimumMemory` at v0.12.11).
- Template functions: 0.33 adds `yesterdayDate` (template/template.go:130 at v0.33.0-rc2).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from homelab.go_syntax import GO_BUILTINS, OLLAMA_FUNCTIONS
from homelab.ollama.check import COMPARABLE_SINCE, ollama_release

__all__ = ["NEWEST_VERSION", "OllamaBehaviour", "behaviour"]

NEWEST_VERSION = "0.33.0"
_MIB = 1 << 20


class OllamaBehaviour(BaseModel):
    """The version-dependent behaviours of one Ollama release, as the stand-in reproduces them."""

    model_config = ConfigDict(frozen=True)

    version: str
    rewrites_gguf: bool
    prune_grace_s: float
    gpu_minimum_bytes: int
    template_functions: frozenset[str]


def behaviour(version: str) -> OllamaBehaviour:
    """The behaviours of Ollama `version` (X.Y.Z): 0.12.x or 0.30 and later.

    Raises:
        ValueError: not X.Y.Z, or a release the stand-in does not model.
    """
    release = ollama_release(version)
    if release is None:
        raise ValueError(f"Ollama version must be X.Y.Z, got {version!r}")
    if release[:2] != (0, 12) and release < COMPARABLE_SINCE:
        raise ValueError(f"the stand-in models Ollama 0.12.x and 0.30 and later, not {version}")
    newer = release >= COMPARABLE_SINCE
    return OllamaBehaviour(
        version=version,
        rewrites_gguf=newer,
        prune_grace_s=3600.0 if newer else 0.0,
        gpu_minimum_bytes=0 if newer else 457 * _MIB,
        template_functions=GO_BUILTINS | OLLAMA_FUNCTIONS | ({"yesterdayDate"} if newer else set()),
    )
