"""Routing many requests: one JSON line in, one JSON line out, in order, whatever each line holds.

Why one output line per input line, even for a line that is not valid JSON: whoever reads the
output pairs it with the input by position, so a skipped line would shift every answer after
it. A bad line gets `{"line": N, "category": null, "model": null, "error": ...}` and is
reported on stderr by the caller; the lines after it are routed as usual.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from homelab.errors import RequestError
from homelab.router.choose import Decision

__all__ = ["DEFAULT_ENDPOINT", "BadLine", "RequestLine", "read_request_lines", "route_lines"]

DEFAULT_ENDPOINT = "/v1/chat/completions"
# Keys of a decision that go into a batch output line (the candidate list stays out: too long).
_LINE_KEYS = (
    "category",
    "confidence",
    "needs",
    "model",
    "url",
    "node",
    "endpoint",
    "fallbacks",
    "reason",
    "health_age_s",
    "health_source",
    "basis",
)


@dataclass(frozen=True, slots=True)
class RequestLine:
    """A line that holds a request: `{"endpoint": PATH, "body": {...}}` (an `id` is kept)."""

    number: int
    endpoint: str
    body: Any
    id: Any = None


@dataclass(frozen=True, slots=True)
class BadLine:
    """A line that does not: what is wrong with it."""

    number: int
    error: str
    id: Any = None


def _parse(number: int, text: str) -> RequestLine | BadLine:
    try:
        item = json.loads(text)
    except json.JSONDecodeError as exc:
        return BadLine(number, f"not valid JSON: {exc.msg} at column {exc.colno}")
    except RecursionError:
        return BadLine(number, "not valid JSON: nested too deeply")
    if not isinstance(item, dict):
        return BadLine(number, f"expected a JSON object, got {type(item).__name__}")
    endpoint = item.get("endpoint", DEFAULT_ENDPOINT)
    if not isinstance(endpoint, str):
        return BadLine(number, "endpoint is not a string", item.get("id"))
    if "body" not in item:
        return BadLine(number, "no body", item.get("id"))
    return RequestLine(number, endpoint, item["body"], item.get("id"))


def read_request_lines(lines: Iterable[str]) -> Iterator[RequestLine | BadLine]:
    """Parse JSON lines (numbered from 1, blank lines skipped but counted)."""
    for number, text in enumerate(lines, start=1):
        if text.strip():
            yield _parse(number, text)


def route_lines(
    lines: Iterable[str],
    decide: Callable[[str, Any], Decision],
    on_error: Callable[[int, str], None] | None = None,
) -> Iterator[dict[str, Any]]:
    """One output object per non-blank input line, in order.

    Args:
        lines: the request file's lines.
        decide: (endpoint, body) -> Decision; may raise `RequestError` for a body it cannot read.
        on_error: called with (line number, message) for each line that could not be routed.
    """
    for item in read_request_lines(lines):
        head: dict[str, Any] = {"line": item.number}
        if item.id is not None:
            head["id"] = item.id
        if isinstance(item, RequestLine):
            try:
                decision = decide(item.endpoint, item.body)
            except RequestError as exc:
                item = BadLine(item.number, str(exc), item.id)
            else:
                yield head | decision.model_dump(mode="json", include=set(_LINE_KEYS))
                continue
        if on_error is not None:
            on_error(item.number, item.error)
        yield head | {"category": None, "model": None, "error": item.error}
