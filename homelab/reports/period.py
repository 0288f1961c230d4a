"""The period a report covers, parsed from what a person types (`7d`, `36h`, `2w`, an ISO date).

Why a type of its own: every query clips to it, and "now" is fixed once per report so that
rows stamped in the future (a node with a skewed clock) are left out consistently and counted.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from pydantic import BaseModel, ConfigDict, model_validator

from homelab.errors import ReportError

__all__ = ["MAX_PERIOD", "Period", "parse_since"]

_SPAN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([mhdw])\s*$")
_UNIT_S = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
# Longer than any history a home cluster keeps; a bigger span (99999999999d) would overflow
# datetime arithmetic instead of being refused.
MAX_PERIOD = timedelta(days=3660)


class Period(BaseModel):
    """[start, end) in UTC; `end` is the report's "now" and no row after it is counted."""

    model_config = ConfigDict(frozen=True)

    start: datetime
    end: datetime

    @model_validator(mode="after")
    def _ordered(self) -> Period:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("period bounds must be timezone-aware")
        if self.start >= self.end:
            raise ValueError(f"period start {self.start.isoformat()} is not before its end {self.end.isoformat()}")
        return self

    @property
    def days(self) -> float:
        return (self.end - self.start).total_seconds() / 86400


def parse_since(since: str, now: datetime | None = None) -> Period:
    """`7d` (also `m`, `h`, `w`) back from now, or an ISO date/time as the start.

    Raises:
        ReportError: neither form, a start not in the past, or one more than `MAX_PERIOD` ago.
    """
    end = (now or datetime.now(UTC)).astimezone(UTC)
    shown = repr(since) if len(since) <= 40 else repr(since[:37] + "...")
    if match := _SPAN.match(since):
        seconds = float(match[1]) * _UNIT_S[match[2]]
        if seconds > MAX_PERIOD.total_seconds():
            raise ReportError(
                f"--since {shown}: longer than {MAX_PERIOD.days} days, the longest period a report covers"
            )
        start = end - timedelta(seconds=seconds)
    else:
        try:
            start = datetime.fromisoformat(since.strip())
            start = start.replace(tzinfo=UTC) if start.tzinfo is None else start.astimezone(UTC)
        except (ValueError, OverflowError):  # OverflowError: year 1 moved to UTC falls before year 1
            raise ReportError(f"--since {shown}: expected a span such as 7d, 36h, 2w, or an ISO date") from None
    if start >= end:
        raise ReportError(f"--since {shown}: the start {start.isoformat()} is not in the past")
    if end - start > MAX_PERIOD:
        raise ReportError(f"--since {shown}: the start {start.isoformat()} is more than {MAX_PERIOD.days} days ago")
    return Period(start=start, end=end)
