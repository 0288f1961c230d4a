"""How the stand-in answers, as Ollama does: JSON errors, request bodies, NDJSON progress streams.

Ollama streams progress (`/api/pull`, `/api/create`) as one JSON object per line. An error found
before the first line is an HTTP status with `{"error": ...}`; one found after it arrives as a
last line `{"error": ...}` in a 200 stream, so a client must look at both.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterable
from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

__all__ = ["Line", "error", "json_object", "model_request", "progress", "timestamp"]

# A progress line, or a callable run when its turn comes (e.g. committing the model) that
# returns the line, so a client that reads only half the stream sees only half the work done.
Line = dict[str, Any] | Callable[[], dict[str, Any]]


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def timestamp(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


async def json_object(request: Request) -> dict[str, Any] | Response:
    """The request body as a JSON object, or the 400 Ollama answers for anything else."""
    try:
        body = json.loads(await request.body() or b"{}")
    except ValueError:
        return error(400, "invalid JSON in request body")
    if not isinstance(body, dict):
        return error(400, "request body must be a JSON object")
    return body


async def model_request(request: Request) -> tuple[dict[str, Any], str] | Response:
    """The body and the model it names (`model`, or the older `name`), or the 400 Ollama answers."""
    body = await json_object(request)
    if isinstance(body, Response):
        return body
    name = body.get("model") or body.get("name")
    if not isinstance(name, str) or not name:
        return error(400, "model is required")
    return body, name


def progress(lines: Iterable[Line], stream: bool) -> Response:
    """NDJSON progress lines, or with `stream: false` only the last one (Ollama's `waitForStream`).

    An error line may carry the HTTP `status` it is answered with when not streamed (500
    otherwise), as server/routes.go `streamResponse` (:2097 at v0.33.0-rc2) reads it.
    """
    if not stream:
        last: dict[str, Any] = {}
        for line in lines:
            last = line() if callable(line) else line
            if "error" in last:
                return error(int(last.get("status", 500)), last["error"])
        return JSONResponse(last)

    async def body() -> AsyncIterator[bytes]:
        for line in lines:
            shown = line() if callable(line) else line
            # An error's status sets the HTTP status when not streamed; a stream shows only the error.
            yield json.dumps({"error": shown["error"]} if "error" in shown else shown).encode() + b"\n"

    return StreamingResponse(body(), media_type="application/x-ndjson")
