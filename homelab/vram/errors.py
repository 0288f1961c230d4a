"""What can go wrong while sizing a model: the VRAM planner's branch of the error tree.

    HomelabError
    └── VramError                          the VRAM planner cannot answer
        ├── ModelFileError (ValueError)    a GGUF file is missing, truncated, corrupt or no GGUF
        ├── UnsupportedModel (ValueError)  the metadata is readable but not a model the estimator knows
        ├── MetadataUnavailable            a server (Ollama, llama-server) gave no usable metadata
        ├── SettingsError (ValueError)     run settings that llama.cpp itself would refuse
        └── LineupError (ValueError)       a lineup file is unreadable or invalid

A lineup that does not fit is not an error: the planner returns CPU-only verdicts with reasons.
The lead may move `VramError` under `homelab/errors.py`; the names stay.
"""

from __future__ import annotations

from homelab.errors import HomelabError

__all__ = ["LineupError", "MetadataUnavailable", "ModelFileError", "SettingsError", "UnsupportedModel", "VramError"]


class VramError(HomelabError):
    """Root of the VRAM planner's errors; the CLI prints the message and exits 2."""


class ModelFileError(VramError, ValueError):
    """A model file cannot be read as GGUF; the message names the file and what is wrong."""


class UnsupportedModel(VramError, ValueError):
    """The model's architecture or shape is outside what the estimator models."""


class MetadataUnavailable(VramError):
    """A serving runtime did not answer with metadata the estimator can use."""


class SettingsError(VramError, ValueError):
    """Run settings that llama.cpp refuses (a quantized V cache without flash attention...)."""


class LineupError(VramError, ValueError):
    """A lineup file cannot be read, or names models the inventory does not serve."""
