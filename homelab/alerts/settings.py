"""The cluster file's `notify:` section: the Prefect blocks alerts go through, which events, quiet hours, repeats.

    notify:
      blocks: [custom-webhook/phone, slack-webhook/homelab]   # BLOCK-TYPE-SLUG/BLOCK-NAME
      events: [node_down, recovery_failed, recovered]          # the default: all three
      quiet_hours: "23:00-07:00"
      timezone: Europe/Berlin                                  # of quiet_hours; default UTC
      urgent: {events: [node_down], tiers: [primary]}          # still sent in quiet hours
      min_repeat: 30m                                          # one message per node and kind within it

Blocks are named as Prefect loads them (`Block.load("slack-webhook/homelab")`): a block name is
unique only within its type. The blocks themselves, with their webhook URLs and tokens, live in
Prefect (created in the UI or with `Block.save`), never in this file.
"""

from __future__ import annotations

import re
from datetime import time, timedelta
from enum import StrEnum
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BeforeValidator, Field

from homelab.frozen import Frozen
from homelab.go_syntax import go_duration_s

__all__ = ["MAX_MIN_REPEAT", "MIN_MIN_REPEAT", "AlertKind", "BlockRef", "Notify", "QuietHours", "Urgent"]

# Below a minute a flapping node still sends a message a sweep; past a day an outage the next
# day is swallowed by yesterday's message.
MIN_MIN_REPEAT = timedelta(minutes=1)
MAX_MIN_REPEAT = timedelta(days=1)
_MAX_ZONE_CHARS = 64
# Prefect's block type slugs are lower-case words with dashes; document names are bounded here.
_BLOCK_REF = re.compile(r"[a-z0-9][a-z0-9-]{0,99}/[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
_QUIET = re.compile(r"\s*([01]\d|2[0-3]):([0-5]\d)\s*-\s*([01]\d|2[0-3]):([0-5]\d)\s*")


class AlertKind(StrEnum):
    """What a message is about."""

    NODE_DOWN = "node_down"
    RECOVERY_FAILED = "recovery_failed"  # the recovery failed or gave up after its bounded attempts
    RECOVERED = "recovered"


def _block_ref(value: str) -> str:
    if not _BLOCK_REF.fullmatch(value):
        shown = value if len(value) <= 80 else value[:77] + "..."
        raise ValueError(
            f"{shown!r} is not a block reference: write BLOCK-TYPE-SLUG/BLOCK-NAME, e.g. custom-webhook/phone"
        )
    return value


BlockRef = Annotated[str, AfterValidator(_block_ref)]


class QuietHours(Frozen):
    """A daily window, in local time, that may wrap past midnight (23:00-07:00)."""

    start: time
    end: time

    @classmethod
    def parse(cls, value: object) -> object:
        """`"HH:MM-HH:MM"` into start and end; anything else is left to pydantic."""
        if not isinstance(value, str):
            return value
        match = _QUIET.fullmatch(value[:32])
        if match is None or len(value) > 32:
            raise ValueError(f"{value[:32]!r} is not a window: write HH:MM-HH:MM on a 24-hour clock, e.g. 23:00-07:00")
        start, end = time(int(match[1]), int(match[2])), time(int(match[3]), int(match[4]))
        if start == end:
            raise ValueError(f"{value!r} starts where it ends: give a window of at least a minute")
        return {"start": start, "end": end}

    def contains(self, local: time) -> bool:
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"


class Urgent(Frozen):
    """What is still sent in quiet hours: these event kinds, on these tiers (no tiers: every tier)."""

    events: list[AlertKind] = Field(default_factory=list)
    tiers: list[str] = Field(default_factory=list)


def _zone(value: str) -> str:
    if len(value) <= _MAX_ZONE_CHARS:
        try:
            ZoneInfo(value)
            return value
        except (ZoneInfoNotFoundError, ValueError):  # ValueError: a key such as "../x" that is no zone name
            pass
    raise ValueError(f"{value[:_MAX_ZONE_CHARS]!r} is not a time zone: write an IANA name such as Europe/Berlin or UTC")


def _duration(value: object) -> object:
    """`30m`, `1h30m` (Go's duration syntax, as Ollama's keep_alive) or plain seconds."""
    if isinstance(value, str):
        return timedelta(seconds=go_duration_s(value.strip()))
    return value


def _repeat_bounds(value: timedelta) -> timedelta:
    if not MIN_MIN_REPEAT <= value <= MAX_MIN_REPEAT:
        raise ValueError("must be between 1m and 24h")
    return value


class Notify(Frozen):
    """Where alerts go and when (see the module docstring for the YAML)."""

    blocks: Annotated[list[BlockRef], Field(min_length=1, max_length=20)]
    events: Annotated[list[AlertKind], Field(min_length=1)] = Field(default_factory=lambda: list(AlertKind))
    quiet_hours: Annotated[QuietHours | None, BeforeValidator(QuietHours.parse)] = None
    timezone: Annotated[str, AfterValidator(_zone)] = "UTC"
    urgent: Urgent = Urgent()
    min_repeat: Annotated[timedelta, BeforeValidator(_duration), AfterValidator(_repeat_bounds)] = timedelta(minutes=30)

    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)
