"""The stand-in's server: Ollama's query and inference endpoints, the app, and `python -m homelab_app.ollama_standin`.

Replies are canned: a chat answers with an echo of the last user message, an embedding with 8
numbers. Loading is bookkeeping only: a model "loads" on first use or on an empty
`/api/generate` or `/api/embed` (taking `load_delay_s`), shows in `/api/ps` until its
keep-alive runs out, and unloads on `keep_alive: 0`. An embedding model cannot chat or generate
(a 400, as in Ollama). Management (blobs, create, pull, delete) is in `manage.py`; what differs
by Ollama version in `versions.py`.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import time
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import uvicorn
from pydantic import TypeAdapter, ValidationError
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from homelab_app.ollama_standin.manage import ModelAdmin, gguf_model_data, shown_model_info
from homelab_app.ollama_standin.models import DEFAULT_MODELS, ModelSpec, full_name, parse_keep_alive
from homelab_app.ollama_standin.replies import error, json_object, model_request, timestamp
from homelab_app.ollama_standin.state import LoadRecord, StandInOptions, StandInState
from homelab_app.ollama_standin.versions import NEWEST_VERSION

__all__ = ["OllamaStandIn", "build_app", "main", "make_server", "serve"]

_PARAMETER_COLUMN = 30  # `ollama show` pads parameter names to this width


def _pulled_model_info(m: ModelSpec) -> dict[str, Any]:
    """The GGUF keys of a model the stand-in pretends to have pulled (it has no file, so no tensor table)."""
    vocabulary = {"tokenizer.ggml.tokens": [f"<t{i}>" for i in range(m.n_vocab)]} if m.n_vocab else {}
    return {
        "general.architecture": m.family,
        "general.parameter_count": m.parameter_count(),
        "general.quantization_version": 2,
        f"{m.family}.context_length": m.context_length,
        **({f"{m.family}.block_count": m.block_count} if m.block_count is not None else {}),
        **m.gguf_keys,
        **vocabulary,
    }


class OllamaStandIn(StandInState):
    """The stand-in's state and one handler per API endpoint (management ones in `ModelAdmin`)."""

    def __init__(self, models: Sequence[ModelSpec] = DEFAULT_MODELS, options: StandInOptions | None = None) -> None:
        super().__init__(models, options or StandInOptions())
        self.admin = ModelAdmin(self)

    def routes(self) -> list[Route]:
        return [
            Route("/", self.root, methods=["GET", "HEAD"]),
            Route("/api/version", self.version, methods=["GET"]),
            Route("/api/tags", self.tags, methods=["GET"]),
            Route("/api/ps", self.ps, methods=["GET"]),
            Route("/api/show", self.show, methods=["POST"]),
            Route("/api/chat", self.chat, methods=["POST"]),
            Route("/api/generate", self.generate, methods=["POST"]),
            Route("/api/embed", self.embed, methods=["POST"]),
            *self.admin.routes(),
        ]

    async def root(self, request: Request) -> Response:
        return PlainTextResponse("Ollama is running")

    async def version(self, request: Request) -> Response:
        return JSONResponse({"version": self.options.ollama_version})

    async def tags(self, request: Request) -> Response:
        entries = [
            {
                "name": m.full_name,
                "model": m.full_name,
                "modified_at": timestamp(self.modified_at),
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
                    "expires_at": timestamp(until),
                    "size_vram": self.size_vram(m),
                    "context_length": m.context(),
                }
            )
        return JSONResponse({"models": entries})

    async def show(self, request: Request) -> Response:
        asked = await model_request(request)
        if isinstance(asked, Response):
            return asked
        body, name = asked
        m = self.find(name)
        if m is None:
            return error(404, f"model '{name}' not found")
        verbose = body.get("verbose") is True
        described = shown_model_info(_pulled_model_info(m), verbose)
        tensors: list[dict[str, Any]] = []
        if m.blob and self.blobs.has(m.blob):  # a created model: its GGUF, as Ollama reads it
            described, tensors = gguf_model_data(self.blobs.path(m.blob), verbose)
        return JSONResponse(
            {
                "modelfile": _modelfile(m),
                "parameters": _parameters_text(m.parameters),
                "template": m.template if m.template is not None else "{{ .Prompt }}",
                "details": m.details(),
                "model_info": described,
                **({"tensors": tensors} if tensors else {}),
                "capabilities": list(m.capabilities),
                **({"license": "\n".join(m.license)} if m.license else {}),  # server/routes.go:1462
                "modified_at": timestamp(self.modified_at),
            }
        )

    async def chat(self, request: Request) -> Response:
        body = await json_object(request)
        if isinstance(body, Response):
            return body
        messages = body.get("messages") or []
        if not isinstance(messages, list):
            return error(400, "messages must be a list")
        user = [m.get("content", "") for m in messages if isinstance(m, dict) and m.get("role") == "user"]
        prompt = str(user[-1]) if user else ""
        return await self._answer(
            body, prompt, wrap=lambda text: {"message": {"role": "assistant", "content": text}}, what="chat"
        )

    async def generate(self, request: Request) -> Response:
        body = await json_object(request)
        if isinstance(body, Response):
            return body
        prompt = body.get("prompt") or ""
        return await self._answer(body, str(prompt), wrap=lambda text: {"response": text}, what="generate")

    async def embed(self, request: Request) -> Response:
        """`/api/embed`: loads the model with the request's keep_alive; no input only loads it.

        server/routes.go `EmbedHandler` (:795-863 at v0.33.0-rc2): input a string or a list of
        strings, `{"model", "embeddings": []}` for none. Vectors are canned (8 numbers).
        """
        body = await json_object(request)
        if isinstance(body, Response):
            return body
        try:
            keep_alive_s = parse_keep_alive(body.get("keep_alive"))
        except ValueError as exc:
            return error(400, str(exc))
        given = body.get("input")
        inputs = ([given] if given else []) if isinstance(given, str) else given if given is not None else []
        if not isinstance(inputs, list) or not all(isinstance(i, str) for i in inputs):
            return error(400, "invalid input type")
        name = body.get("model")
        full = full_name(name) if isinstance(name, str) and name else None
        if full is None or full not in self.models:
            return error(404, f"model '{name}' not found")
        await self._load(full, keep_alive_s)
        vectors = [[round(b / 255, 3) for b in hashlib.sha256(text.encode()).digest()[:8]] for text in inputs]
        return JSONResponse({"model": name, "embeddings": vectors})

    async def _load(self, name: str, keep_alive_s: float | None) -> None:
        """Load (taking `load_delay_s`, recorded) or unload; a resident model only gets its keep-alive renewed."""
        if keep_alive_s != 0 and name not in self.resident():
            started = time.monotonic()
            await asyncio.sleep(self.options.load_delay_s)
            self.loads.append(LoadRecord(model=name, started=started, finished=time.monotonic()))
        self.load(name, keep_alive_s)

    async def _answer(
        self, body: dict[str, Any], prompt: str, wrap: Callable[[str], dict[str, Any]], what: str
    ) -> Response:
        """Shared by chat and generate: load or unload, then reply whole or as NDJSON.

        keep_alive is read first (a bad one is the 400 of binding the request); an empty
        request with keep_alive 0 unloads before capabilities are checked; a model without
        `completion` (an embedding model) is a 400 `"NAME" does not support generate` (server/
        routes.go:404-414 and :466-468 at v0.33.0-rc2; :373 at v0.12.11).
        """
        try:
            keep_alive_s = parse_keep_alive(body.get("keep_alive"))
        except ValueError as exc:
            return error(400, str(exc))
        name = body.get("model")
        if not isinstance(name, str) or not name:
            return error(400, "model is required")
        full = full_name(name)
        if full not in self.models:
            return error(404, f'model "{name}" not found, try pulling it first')
        head = {"model": full, "created_at": timestamp(datetime.now(UTC))}
        if not prompt and keep_alive_s == 0:
            self.load(full, 0)
            return JSONResponse(head | wrap("") | {"done": True, "done_reason": "unload"})
        if "completion" not in self.models[full].capabilities:
            return error(400, f"{json.dumps(name)} does not support {what}")
        await self._load(full, keep_alive_s)
        if not prompt:  # an empty request only loads the model
            return JSONResponse(head | wrap("") | {"done": True, "done_reason": "load"})
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


def _parameter_value(value: Any) -> str:
    """Go's `%#v` as `ollama show` prints parameters: numbers bare, strings quoted."""
    return (
        json.dumps(value) if isinstance(value, str) else str(value).lower() if isinstance(value, bool) else str(value)
    )


def _parameters_text(parameters: dict[str, Any]) -> str:
    lines = []
    for key in sorted(parameters):
        values = parameters[key] if isinstance(parameters[key], list) else [parameters[key]]
        lines += [f"{key:<{_PARAMETER_COLUMN}} {_parameter_value(v)}" for v in values]
    return "\n".join(lines)


def _modelfile(m: ModelSpec) -> str:
    """The Modelfile `ollama show --modelfile` prints: FROM the blob, then template and parameters."""
    source = f"/stand-in/blobs/sha256-{m.blob.removeprefix('sha256:')}" if m.blob else m.full_name
    lines = ["# Modelfile generated by the homelab Ollama stand-in", f"FROM {source}"]
    if m.template is not None:
        lines.append(f'TEMPLATE """{m.template}"""')
    for key in sorted(m.parameters):
        values = m.parameters[key] if isinstance(m.parameters[key], list) else [m.parameters[key]]
        lines += [f"PARAMETER {key} {_parameter_value(v)}" for v in values]
    return "\n".join(lines) + "\n"


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


class _RequestLog:
    """Pure ASGI middleware: every request's method and path, into the state's `requests`."""

    def __init__(self, app: ASGIApp, log: list[tuple[str, str]]) -> None:
        self.app = app
        self.log = log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.log.append((scope["method"], scope["path"]))
        await self.app(scope, receive, send)


def build_app(models: Sequence[ModelSpec] = DEFAULT_MODELS, options: StandInOptions | None = None) -> Starlette:
    """The ASGI app of a fresh stand-in; its state is at `app.state.standin`."""
    standin = OllamaStandIn(models, options)
    app = Starlette(routes=standin.routes(), middleware=[Middleware(_RequestLog, log=standin.requests)])
    app.state.standin = standin
    return app


def make_server(
    host: str, port: int, models: Sequence[ModelSpec] = DEFAULT_MODELS, options: StandInOptions | None = None
) -> uvicorn.Server:
    """A uvicorn server for the stand-in, not yet started (`run()` blocks; set `should_exit` to stop)."""
    config = uvicorn.Config(build_app(models, options), host=host, port=port, log_level="warning", lifespan="off")
    return uvicorn.Server(config)


def serve(
    host: str, port: int, models: Sequence[ModelSpec] = DEFAULT_MODELS, options: StandInOptions | None = None
) -> None:
    """Serve the stand-in until interrupted."""
    make_server(host, port, models, options).run()


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m homelab_app.ollama_standin`: serve the stand-in on 127.0.0.1 by default."""
    parser = argparse.ArgumentParser(
        prog="python -m homelab_app.ollama_standin", description="A stand-in for Ollama's HTTP API (NOT Ollama)."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=11434)
    parser.add_argument("--models", help="JSON file with a list of models (name, size, family, ...)")
    parser.add_argument("--ollama-version", default=NEWEST_VERSION, help="the Ollama release to play (0.12.x, 0.30+)")
    parser.add_argument("--models-dir", help="OLLAMA_MODELS: blobs and manifests, kept across restarts")
    parser.add_argument("--num-parallel", type=int, default=1, help="OLLAMA_NUM_PARALLEL")
    parser.add_argument("--load-delay", type=float, default=0.0, help="seconds a model takes to load")
    parser.add_argument(
        "--fail-create", metavar="MESSAGE", help="test-only fault: answer every /api/create with 500 MESSAGE"
    )
    args = parser.parse_args(argv)
    models: Sequence[ModelSpec] = DEFAULT_MODELS
    if args.models:
        try:
            with open(args.models, encoding="utf-8") as file:
                models = TypeAdapter(list[ModelSpec]).validate_json(file.read())
        except (OSError, ValidationError) as exc:
            parser.error(f"--models {args.models}: {exc}")
    try:
        options = StandInOptions(
            ollama_version=args.ollama_version, models_dir=args.models_dir, num_parallel=args.num_parallel,
            load_delay_s=args.load_delay, create_error=args.fail_create,
        )  # fmt: skip
    except ValidationError as exc:
        parser.error(str(exc.errors()[0]["msg"]))
    print(
        f"Ollama stand-in (not Ollama) playing Ollama {args.ollama_version} on http://{args.host}:{args.port} "
        f"with {len(models)} models",
        flush=True,
    )
    serve(args.host, args.port, models, options)
    return 0
