"""The one base of the core's value objects: frozen, and strict about which fields exist.

Frozen because plans, facts, settings and reports are values: they are handed between the core,
Prefect tasks and the CLI, and none of them may change under a reader (a frozen model is also
hashable). Unknown fields are an error where the object is built, so a misspelt keyword fails
at once instead of vanishing. A model read from another program's answer, whose extra fields
are that program's business, says `extra="ignore"` in its own config (`homelab.ollama.api`).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

__all__ = ["Frozen"]


class Frozen(BaseModel):
    """A value object: immutable once built; unknown fields are a validation error."""

    model_config = ConfigDict(frozen=True, extra="forbid")
