"""A stand-in for Ollama's HTTP API, for tests and the demo: this is NOT Ollama and runs no model.

No Ollama binary can be had on a machine without internet, yet the probes, the gateway and
the demo need something that answers Ollama's documented API faithfully: the same paths,
field names, status codes and NDJSON streaming, so a real client (LiteLLM's `ollama_chat/`
provider, httpx, the probes) cannot tell the difference. Replies are canned: a chat answers
with an echo of the last user message. Loading is bookkeeping only: a model "loads" on first
use or on an empty `/api/generate`, shows in `/api/ps` until its keep-alive runs out, and
unloads on `keep_alive: 0`.

Implemented: GET `/`, `/api/version`, `/api/tags`, `/api/ps`; POST `/api/show`, `/api/chat`,
`/api/generate`. Each endpoint is one method of `OllamaStandIn`, listed in `routes()`, so more
(`/api/create`, blobs, pull, delete) are added as methods without touching the others.

Run it: `python -m homelab.ollama_standin --port 11434 [--models models.json]`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import uvicorn
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

__all__ = [
    "OLLAMA_API_VERSION",
    "ModelSpec",
    "DEFAULT_MODELS",
    "parse_keep_alive",
    "OllamaStandIn",
    "build_app",
    "make_server",
    "serve",
    "main",
]

OLLAMA_API_VERSION = "0.12.6"  # the Ollama release whose documented API this follows
DEFAULT_KEEP_ALIVE_S = 300.0  # Ollama keeps a model loaded 5 minutes after its last use
_FOREVER = datetime(9999, 1, 1, tzinfo=UTC)
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def _full_name(name: str) -> str:
    """Ollama's canonical name: a tag is always present (`llama3.2` is `llama3.2:latest`)."""
    return name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"


class ModelSpec(BaseModel):
    """A model the stand-in pretends to have pulled."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, description="an Ollama tag; ':latest' is added when none is given")
    size: int = Field(gt=0, description="bytes on disk, also the bytes in memory when loaded")
    family: str = "llama"
    parameter_size: str = Field("1B", description="as Ollama prints it: '7.6B', '494.03M'")
    quantization_level: str = "Q4_K_M"
    context_length: int = Field(4096, gt=0)
    size_vram: int | None = Field(None, ge=0, description="bytes on the GPU when loaded; default: all of size")
    capabilities: tuple[str, ...] = ("completion",)

    @property
    def full_name(self) -> str:
        return _full_name(self.name)

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.full_name.encode()).hexdigest()

    def details(self) -> dict[str, Any]:
        return {
            "parent_model": "",
            "format": "gguf",
            "family": self.family,
            "families": [self.family],
            "parameter_size": self.parameter_size,
            "quantization_level": self.quantization_level,
        }

    def parameter_count(self) -> int:
        match = re.fullmatch(r"([\d.]+)\s*([KMBT]?)", self.parameter_size.strip().upper())
        if not match:
            return 0
        scale = {"": 1, "K": 10**3, "M": 10**6, "B": 10**9, "T": 10**12}[match.group(2)]
        return int(float(match.group(1)) * scale)


DEFAULT_MODELS: tuple[ModelSpec, ...] = (
    ModelSpec(name="qwen2.5:0.5b", size=397_821_319, family="qwen2", parameter_size="494.03M", context_length=32768),
    ModelSpec(name="llama3.2:1b", size=1_321_098_329, family="llama", parameter_size="1.2B", context_length=131072),
    ModelSpec(
        name="nomic-embed-text", size=274_302_450, family="nomic-bert", parameter_size="137M",
        quantization_level="F16", context_length=2048, capabilities=("embedding",),
    ),
)


def parse_keep_alive(value: Any) -> float:
    """Seconds from Ollama's `keep_alive`: a number of seconds or a Go duration ('5m', '1h30m').

    Negative means forever (returned as infinity); absent means the 5 minute default.
    """
    if value is None:
        return DEFAULT_KEEP_ALIVE_S
    if isinstance(value, bool):
        raise ValueError(f"invalid keep_alive {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        text = str(value).strip()
        sign = -1.0 if text.startswith("-") else 1.0
        text = text.lstrip("+-")
        if re.fullmatch(r"\d+(\.\d+)?", text):
            seconds = sign * float(text)
        elif text and re.fullmatch(f"(?:{_DURATION_PART.pattern})+", text):
            seconds = sign * sum(float(n) * _UNIT_S[unit] for n, unit in _DURATION_PART.findall(text))
        else:
            raise ValueError(f"invalid keep_alive {value!r}: use seconds or a duration like '5m'")
    return float("inf") if seconds < 0 else seconds


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _timestamp(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


class OllamaStandIn:
    """The stand-in's state (pulled models, loaded models) and one handler per API endpoint."""

    def __init__(self, models: Sequence[ModelSpec] = DEFAULT_MODELS) -> None:
        self.models: dict[str, ModelSpec] = {m.full_name: m for m in models}
        self.loaded: dict[str, datetime] = {}  # full name -> expires_at
        self.modified_at = datetime.now(UTC)

    def routes(self) -> list[Route]:
        return [
            Route("/", self.root, methods=["GET", "HEAD"]),
            Route("/api/version", self.version, methods=["GET"]),
            Route("/api/tags", self.tags, methods=["GET"]),
            Route("/api/ps", self.ps, methods=["GET"]),
            Route("/api/show", self.show, methods=["POST"]),
            Route("/api/chat", self.chat, methods=["POST"]),
            Route("/api/generate", self.generate, methods=["POST"]),
        ]

    # -- state ---------------------------------------------------------------------------

    def load(self, name: str, keep_alive_s: float) -> None:
        """Mark a model resident until its keep-alive runs out (0 unloads it)."""
        if keep_alive_s == 0:
            self.loaded.pop(name, None)
        elif keep_alive_s == float("inf"):
            self.loaded[name] = _FOREVER
        else:
            self.loaded[name] = datetime.now(UTC) + timedelta(seconds=keep_alive_s)

    def resident(self) -> dict[str, datetime]:
        """Loaded models whose keep-alive has not run out, dropping the rest."""
        now = datetime.now(UTC)
        self.loaded = {name: until for name, until in self.loaded.items() if until > now}
        return dict(self.loaded)

    # -- handlers ------------------------------------------------------------------------

    async def root(self, request: Request) -> Response:
        return PlainTextResponse("Ollama is running")

    async def version(self, request: Request) -> Response:
        return JSONResponse({"version": OLLAMA_API_VERSION})

    async def tags(self, request: Request) -> Response:
        entries = [
            {
                "name": m.full_name,
                "model": m.full_name,
                "modified_at": _timestamp(self.modified_at),
                "size": m.size,
                "digest": m.digest,
                "details": m.details(),
            }
            for m in self.models.values()
        ]
        return JSONResponse({"models": entries})

    async def ps(self, request: Request) -> Response:
        entries = []
        for name, until in self.resident().items():
            if (m := self.models.get(name)) is None:
                continue
            entries.append(
                {
                    "name": name,
                    "model": name,
                    "size": m.size,
                    "digest": m.digest,
                    "details": m.details(),
                    "expires_at": _timestamp(until),
                    "size_vram": m.size if m.size_vram is None else m.size_vram,
                    "context_length": m.context_length,
                }
            )
        return JSONResponse({"models": entries})

    async def show(self, request: Request) -> Response:
        body = await _json_object(request)
        if isinstance(body, Response):
            return body
        name = body.get("model") or body.get("name")  # "name" is the older spelling
        if not isinstance(name, str) or not name:
            return _error(400, "model is required")
        m = self.models.get(_full_name(name))
        if m is None:
            return _error(404, f"model '{name}' not found")
        return JSONResponse(
            {
                "modelfile": f"# Modelfile generated by the homelab Ollama stand-in\nFROM {m.full_name}\n",
                "parameters": "",
                "template": "{{ .Prompt }}",
                "details": m.details(),
                "model_info": {
                    "general.architecture": m.family,
                    "general.parameter_count": m.parameter_count(),
                    "general.quantization_version": 2,
                    f"{m.family}.context_length": m.context_length,
                },
                "capabilities": list(m.capabilities),
                "modified_at": _timestamp(self.modified_at),
            }
        )

    async def chat(self, request: Request) -> Response:
        body = await _json_object(request)
        if isinstance(body, Response):
            return body
        messages = body.get("messages") or []
        if not isinstance(messages, list):
            return _error(400, "messages must be a list")
        user = [m.get("content", "") for m in messages if isinstance(m, dict) and m.get("role") == "user"]
        prompt = str(user[-1]) if user else ""
        return self._answer(body, prompt, wrap=lambda text: {"message": {"role": "assistant", "content": text}})

    async def generate(self, request: Request) -> Response:
        body = await _json_object(request)
        if isinstance(body, Response):
            return body
        prompt = body.get("prompt") or ""
        return self._answer(body, str(prompt), wrap=lambda text: {"response": text})

    # -- answering -----------------------------------------------------------------------

    def _answer(self, body: dict[str, Any], prompt: str, wrap: Callable[[str], dict[str, Any]]) -> Response:
        """Shared by chat and generate: load or unload, then reply whole or as NDJSON."""
        name = body.get("model")
        if not isinstance(name, str) or not name:
            return _error(400, "model is required")
        full = _full_name(name)
        if full not in self.models:
            return _error(404, f'model "{name}" not found, try pulling it first')
        try:
            keep_alive_s = parse_keep_alive(body.get("keep_alive"))
        except ValueError as exc:
            return _error(400, str(exc))
        self.load(full, keep_alive_s)
        head = {"model": full, "created_at": _timestamp(datetime.now(UTC))}
        if not prompt:  # an empty request only loads (or, with keep_alive 0, unloads) the model
            reason = "unload" if keep_alive_s == 0 else "load"
            return JSONResponse(head | wrap("") | {"done": True, "done_reason": reason})
        words = f"Stand-in reply to: {prompt}".split(" ")
        pieces = [w if i == 0 else f" {w}" for i, w in enumerate(words)]
        done = {"done": True, "done_reason": "stop"} | _stats(len(prompt.split()), len(pieces))
        if body.get("stream", True) is False:
            return JSONResponse(head | wrap("".join(pieces)) | done)

        async def lines() -> AsyncIterator[bytes]:
            for piece in pieces:
                yield json.dumps(head | wrap(piece) | {"done": False}).encode() + b"\n"
            yield json.dumps(head | wrap("") | done).encode() + b"\n"

        return StreamingResponse(lines(), media_type="application/x-ndjson")


def _stats(prompt_tokens: int, reply_tokens: int) -> dict[str, int]:
    """Ollama's timing and token counters (durations in nanoseconds), plausible and small."""
    return {
        "total_duration": 1_000_000 * (reply_tokens + 1),
        "load_duration": 100_000,
        "prompt_eval_count": prompt_tokens,
        "prompt_eval_duration": 100_000 * max(prompt_tokens, 1),
        "eval_count": reply_tokens,
        "eval_duration": 1_000_000 * reply_tokens,
    }


async def _json_object(request: Request) -> dict[str, Any] | Response:
    """The request body as a JSON object, or the 400 Ollama answers for anything else."""
    try:
        body = json.loads(await request.body() or b"{}")
    except ValueError:
        return _error(400, "invalid JSON in request body")
    if not isinstance(body, dict):
        return _error(400, "request body must be a JSON object")
    return body


def build_app(models: Sequence[ModelSpec] = DEFAULT_MODELS) -> Starlette:
    """The ASGI app of a fresh stand-in; its state is at `app.state.standin`."""
    standin = OllamaStandIn(models)
    app = Starlette(routes=standin.routes())
    app.state.standin = standin
    return app


def make_server(host: str, port: int, models: Sequence[ModelSpec] = DEFAULT_MODELS) -> uvicorn.Server:
    """A uvicorn server for the stand-in, not yet started (`run()` blocks; set `should_exit` to stop)."""
    config = uvicorn.Config(build_app(models), host=host, port=port, log_level="warning", lifespan="off")
    return uvicorn.Server(config)


def serve(host: str, port: int, models: Sequence[ModelSpec] = DEFAULT_MODELS) -> None:
    """Serve the stand-in until interrupted."""
    make_server(host, port, models).run()


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m homelab.ollama_standin`: serve the stand-in on 127.0.0.1 by default."""
    parser = argparse.ArgumentParser(prog="python -m homelab.ollama_standin", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=11434)
    parser.add_argument("--models", help="JSON file with a list of models (name, size, family, ...)")
    args = parser.parse_args(argv)
    models: Sequence[ModelSpec] = DEFAULT_MODELS
    if args.models:
        try:
            with open(args.models, encoding="utf-8") as file:
                models = TypeAdapter(list[ModelSpec]).validate_json(file.read())
        except (OSError, ValidationError) as exc:
            parser.error(f"--models {args.models}: {exc}")
    print(f"Ollama stand-in (not Ollama) on http://{args.host}:{args.port} with {len(models)} models", flush=True)
    serve(args.host, args.port, models)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
