"""Endpoint probes: one async httpx check per runtime kind, each judging the body, not just the status.

A dead endpoint is data, not an exception: every probe returns a `ProbeResult` saying UP,
SLOW or DOWN, why, and how long it took. Each probe runs under its endpoint's own total
timeout (a slowloris that sends one byte a second still ends on time) and reads at most
`max_body_bytes` (a 100 MB answer costs no more memory than a small one).
"""

from __future__ import annotations

import asyncio
import errno
import json
import ssl
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel, ConfigDict, Field

from homelab.inventory import Endpoint, EndpointKind, Node, ProbeSettings

__all__ = [
    "EndpointState",
    "Reason",
    "LoadedModel",
    "ProbeResult",
    "ProbeLimits",
    "DEFAULT_PROBE_LIMITS",
    "probe_endpoint",
]


class EndpointState(StrEnum):
    """UP: a valid answer in time. SLOW: valid but late, or still loading. DOWN: anything else."""

    UP = "UP"
    SLOW = "SLOW"
    DOWN = "DOWN"


class Reason(StrEnum):
    """Why an endpoint got its state."""

    OK = "ok"
    SLOW = "slow"
    LOADING = "loading"
    REFUSED = "refused"
    TIMEOUT = "timeout"
    DNS = "dns"
    TLS = "tls"
    RESET = "reset"
    HTTP_STATUS = "http_status"
    BAD_BODY = "bad_body"
    TOO_LARGE = "too_large"
    ERROR = "error"


class LoadedModel(BaseModel):
    """A model resident in memory on the endpoint (Ollama's `/api/ps`)."""

    model_config = ConfigDict(frozen=True)

    name: str
    size_bytes: int = 0
    size_vram_bytes: int = 0


class ProbeResult(BaseModel):
    """What one probe of one endpoint found."""

    model_config = ConfigDict(frozen=True)

    node: str
    tier: str
    endpoint: str
    kind: EndpointKind
    url: str
    state: EndpointState
    reason: Reason
    detail: str = ""
    latency_ms: float
    checked_at: datetime
    models: list[str] = Field(default_factory=list, description="model names the endpoint says it serves")
    loaded: list[LoadedModel] = Field(default_factory=list)

    @property
    def serving(self) -> bool:
        """Answers requests now: UP, or merely slow (a loading server does not serve yet)."""
        return self.state is EndpointState.UP or self.reason is Reason.SLOW


class ProbeLimits(BaseModel):
    """Limits that protect the prober itself."""

    model_config = ConfigDict(frozen=True)

    max_body_bytes: int = Field(1_048_576, gt=0, description="bytes read from one answer before giving up")
    reset_retries: int = Field(1, ge=0, description="quick retries after a connection reset")


DEFAULT_PROBE_LIMITS = ProbeLimits()


class _Down(Exception):
    """Internal: ends a probe with a reason."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class _Loading(Exception):
    """Internal: the server answered that it is still loading its model."""


_Found = tuple[list[str], list[LoadedModel]]


class _Fetcher:
    """GETs JSON with a byte cap, a connection-reset retry and errors mapped to reasons."""

    def __init__(self, client: httpx.AsyncClient, base: str, settings: ProbeSettings, limits: ProbeLimits) -> None:
        self.client = client
        self.base = base
        self.timeout = httpx.Timeout(settings.total_s, connect=settings.connect_s)
        self.limits = limits

    async def get(self, path: str) -> tuple[int, Any]:
        """Status code and parsed JSON body (None when the body is empty)."""
        for attempt in range(self.limits.reset_retries + 1):
            try:
                return await self._get_once(path)
            except (httpx.ReadError, httpx.RemoteProtocolError, httpx.WriteError) as exc:
                if attempt == self.limits.reset_retries:
                    raise _Down(Reason.RESET, f"connection reset on {path}: {exc or type(exc).__name__}") from exc
            except httpx.TimeoutException as exc:
                raise _Down(Reason.TIMEOUT, f"{type(exc).__name__} on {path}") from exc
            except httpx.ConnectError as exc:
                raise _connect_failure(exc) from exc
            except httpx.HTTPError as exc:
                raise _Down(Reason.ERROR, f"{type(exc).__name__}: {exc}") from exc
        raise AssertionError("unreachable")

    async def _get_once(self, path: str) -> tuple[int, Any]:
        async with self.client.stream("GET", self.base + path, timeout=self.timeout) as response:
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > self.limits.max_body_bytes:
                raise _Down(Reason.TOO_LARGE, f"{path} announces {int(declared)} bytes (limit {self.limits.max_body_bytes})")
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > self.limits.max_body_bytes:
                    raise _Down(Reason.TOO_LARGE, f"{path} sent more than {self.limits.max_body_bytes} bytes")
            return response.status_code, _json_body(response, bytes(body), path)


def _json_body(response: httpx.Response, body: bytes, path: str) -> Any:
    if response.is_redirect:
        return None
    content_type = response.headers.get("content-type", "")
    if not body:
        return None
    if "json" not in content_type:
        raise _Down(Reason.BAD_BODY, f"{path} answered {content_type or 'no content type'}, expected JSON")
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise _Down(Reason.BAD_BODY, f"{path} answered invalid JSON: {exc}") from exc


def _connect_failure(exc: httpx.ConnectError) -> _Down:
    """The most specific reason for a failed connection (httpx wraps the OS error)."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ConnectionRefusedError) or getattr(cause, "errno", None) == errno.ECONNREFUSED:
            return _Down(Reason.REFUSED, "connection refused")
        if isinstance(cause, ssl.SSLError):
            return _Down(Reason.TLS, f"TLS: {cause.reason or cause}")
        if isinstance(cause, OSError) and cause.__class__.__name__ == "gaierror":
            return _Down(Reason.DNS, f"name does not resolve: {cause}")
        cause = cause.__cause__ or cause.__context__
    text = str(exc)
    if "Name or service not known" in text or "nodename nor servname" in text or "getaddrinfo" in text:
        return _Down(Reason.DNS, f"name does not resolve: {text}")
    if "refused" in text.lower():
        return _Down(Reason.REFUSED, "connection refused")
    return _Down(Reason.ERROR, f"cannot connect: {text or type(exc).__name__}")


def _expect_status(status: int, path: str) -> None:
    if status != 200:
        raise _Down(Reason.HTTP_STATUS, f"{path} answered HTTP {status}")


def _model_list(body: Any, key: str, name_key: str, path: str) -> list[str]:
    items = body.get(key) if isinstance(body, dict) else None
    if not isinstance(items, list) or not all(isinstance(i, dict) and isinstance(i.get(name_key), str) for i in items):
        raise _Down(Reason.BAD_BODY, f"{path} has no {key!r} list of models")
    return [item[name_key] for item in items]


async def _ollama(fetch: _Fetcher) -> _Found:
    status, tags = await fetch.get("/api/tags")
    _expect_status(status, "/api/tags")
    models = _model_list(tags, "models", "name", "/api/tags")
    status, ps = await fetch.get("/api/ps")
    loaded: list[LoadedModel] = []
    if status == 200 and isinstance(ps, dict) and isinstance(ps.get("models"), list):
        loaded = [
            LoadedModel(name=m["name"], size_bytes=int(m.get("size", 0)), size_vram_bytes=int(m.get("size_vram", 0)))
            for m in ps["models"]
            if isinstance(m, dict) and isinstance(m.get("name"), str)
        ]
    return models, loaded


async def _llamacpp(fetch: _Fetcher) -> _Found:
    status, body = await fetch.get("/health")
    if status == 503:
        raise _Loading()
    if status == 404:  # servers without /health (llama-cpp-python) are judged by /v1/models
        return await _openai(fetch)
    _expect_status(status, "/health")
    if not isinstance(body, dict) or body.get("status") != "ok":
        raise _Down(Reason.BAD_BODY, f'/health answered {str(body)[:80]!r}, expected {{"status": "ok"}}')
    status, listing = await fetch.get("/v1/models")
    models = _model_list(listing, "data", "id", "/v1/models") if status == 200 else []
    return models, []


async def _litellm(fetch: _Fetcher) -> _Found:
    # Never /health: LiteLLM answers it by calling every model, waiting up to 60 s on each
    # dead one. /health/liveliness only says the proxy process is alive, which is the question.
    status, body = await fetch.get("/health/liveliness")
    _expect_status(status, "/health/liveliness")
    if not (isinstance(body, str) and "alive" in body.lower()):
        raise _Down(Reason.BAD_BODY, f"/health/liveliness answered {str(body)[:80]!r}, expected \"I'm alive!\"")
    return [], []


async def _openai(fetch: _Fetcher) -> _Found:
    status, listing = await fetch.get("/v1/models")
    _expect_status(status, "/v1/models")
    return _model_list(listing, "data", "id", "/v1/models"), []


_PROBES: dict[EndpointKind, Callable[[_Fetcher], Awaitable[_Found]]] = {
    EndpointKind.OLLAMA: _ollama,
    EndpointKind.LLAMACPP: _llamacpp,
    EndpointKind.LITELLM: _litellm,
    EndpointKind.OPENAI: _openai,
}


async def probe_endpoint(
    client: httpx.AsyncClient,
    node: Node,
    endpoint: Endpoint,
    settings: ProbeSettings,
    limits: ProbeLimits = DEFAULT_PROBE_LIMITS,
) -> ProbeResult:
    """Probe one endpoint within `settings.total_s`; never raises for a bad endpoint.

    Args:
        client: shared async client; its own timeouts are overridden per request.
        node: the node the endpoint belongs to (for the result's node and tier).
        endpoint: what to probe; its kind picks the probe.
        settings: the endpoint's effective timeouts and slow threshold.
        limits: body size cap and reset retries.
    """
    checked_at = datetime.now(UTC)
    started = time.perf_counter()
    state, reason, detail = EndpointState.UP, Reason.OK, ""
    models: list[str] = []
    loaded: list[LoadedModel] = []
    try:
        if (urlsplit(endpoint.url).hostname or "").rstrip(".").endswith(".invalid"):
            # RFC 6761: .invalid names never resolve; answer without asking a resolver.
            raise _Down(Reason.DNS, f"name does not resolve: {urlsplit(endpoint.url).hostname} is under .invalid")
        async with asyncio.timeout(settings.total_s):
            models, loaded = await _PROBES[endpoint.kind](_Fetcher(client, endpoint.url, settings, limits))
    except _Loading:
        state, reason, detail = EndpointState.SLOW, Reason.LOADING, "/health answered 503: model still loading"
    except _Down as down:
        state, reason, detail = EndpointState.DOWN, down.reason, down.detail
    except TimeoutError:
        state, reason, detail = EndpointState.DOWN, Reason.TIMEOUT, f"no complete answer within {settings.total_s:g} s"
    latency_ms = (time.perf_counter() - started) * 1000
    if state is EndpointState.UP and latency_ms > settings.slow_ms:
        state, reason, detail = EndpointState.SLOW, Reason.SLOW, f"answered in {latency_ms:.0f} ms (slow over {settings.slow_ms} ms)"
    return ProbeResult(
        node=node.name,
        tier=node.tier,
        endpoint=endpoint.name,
        kind=endpoint.kind,
        url=endpoint.url,
        state=state,
        reason=reason,
        detail=detail,
        latency_ms=round(latency_ms, 1),
        checked_at=checked_at,
        models=models,
        loaded=loaded,
    )
