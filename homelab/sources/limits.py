"""Bounds and timeouts of every model-source transfer: downloads, resumes, ranged header reads."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StrictFloat, StrictInt, model_validator

from homelab.frozen import Frozen

__all__ = ["DEFAULT_FETCH_LIMITS", "FetchLimits"]

_TIB = 1 << 40
_MIB = 1 << 20
Bytes = Annotated[StrictInt, Field(gt=0)]


class FetchLimits(Frozen):
    """How much a source may send and how long it may take.

    `max_file_bytes` stops a server that claims, or sends, more than any model file holds (a
    huge Content-Length is refused before a byte is written; an endless body is cut there).
    `header_max_bytes` bounds what `homelab plan` fetches to read one file's GGUF header: real
    headers are a few MB (a 256k-token vocabulary is about 5 MB) whatever the file's size.
    """

    max_file_bytes: Bytes = Field(2 * _TIB, description="bytes, the most one model file (or part) may have")
    attempts: StrictInt = Field(4, ge=1, le=100, description="tries per file; each resumes where the last stopped")
    retry_wait_s: StrictFloat = Field(1.0, ge=0, le=600, description="seconds between tries")
    connect_s: StrictFloat = Field(10.0, gt=0, le=600, description="seconds to connect")
    read_s: StrictFloat = Field(60.0, gt=0, le=3600, description="seconds a transfer may stall")
    header_first_bytes: Bytes = Field(256 * 1024, description="bytes, the first range asked for a header")
    header_max_bytes: Bytes = Field(64 * _MIB, description="bytes, the most fetched to read one header")

    @model_validator(mode="after")
    def _ordered(self) -> FetchLimits:
        if self.header_first_bytes > self.header_max_bytes:
            raise ValueError("header_first_bytes must not exceed header_max_bytes")
        return self


DEFAULT_FETCH_LIMITS = FetchLimits()
