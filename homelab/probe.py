"""Endpoint probes: one async httpx check per runtime kind, each judging the body, not just the status.

A dead endpoint is data, not an exception: every probe returns a `ProbeResult` saying UP,
SLOW or DOWN, why, and how long it took. Each probe runs under its endpoint's own total
timeout (a slowloris that sends one byte a second still ends on time) and reads at most
`max_body_bytes` of undecoded bytes (a 100 MB answer, or a gzip bomb, costs no more memory
than a small one). Bodies are parsed by pydantic-core's JSON parser (jiter), which refuses
nesting deeper than `JSON_MAX_DEPTH` and integers longer than 4,300 digits with a ValueError,
where `json.loads` would raise RecursionError on 5,000 nested brackets and lose the sweep.
The URL in a result has its user-info redacted (`homelab.redact`): results are printed,
stored and published.
"""

from __future__ import annotations

import asyncio
import errno
import socket
import ssl
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import httpx
import pydantic_core
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from homelab.inventory import Endpoint, EndpointKind, Node, ProbeSettings
from homelab.redact import redact_url

__all__ = [
    "EndpointState",
    "Reason",
    "LoadedModel",
    "ProbeResult",
    "ProbeLimits",
    "DEFAULT_PROBE_LIMITS",
    "JSON_MAX_DEPTH",
    "probe_endpoint",
]

# The nesting pydantic-core's parser accepts (jiter's recursion limit); deeper is a bad body.
# Health answers are two or three levels deep.
JSON_MAX_DEPTH = 200


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
    BAD_URL = "bad_url"
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


@dataclass(frozen=True)
class _Answer:
    """One HTTP answer: its status, its JSON body (parsed only for 200) and where a redirect points."""

    status: int
    body: Any = None
    location: str = ""


_Found = tuple[list[str], list[LoadedModel]]
# Ask for the body as sent: the cap then counts the bytes that cost memory, and a small
# compressed answer cannot inflate past it.
_HEADERS = {"accept": "application/json", "accept-encoding": "identity"}


def _is_reset(exc: httpx.HTTPError) -> bool:
    """A connection the server dropped (RST, or closed before answering): worth one quick retry.

    An RST that lands while the client is still finishing its connect surfaces as a
    ConnectError caused by ECONNRESET, so the cause chain is checked too.
    """
    if isinstance(exc, httpx.ReadError | httpx.WriteError):
        return True
    if isinstance(exc, httpx.RemoteProtocolError):
        return "disconnected" in str(exc).lower()
    return isinstance(exc, httpx.ConnectError) and any(
        isinstance(cause, ConnectionResetError) for cause in _causes(exc)
    )


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """`exc` and everything it was raised from, including the members of exception groups."""
    seen: set[int] = set()
    pending: list[BaseException] = [exc]
    while pending:
        cause = pending.pop()
        if id(cause) in seen:
            continue
        seen.add(id(cause))
        yield cause
        pending += [c for c in (cause.__cause__, cause.__context__) if c is not None]
        if isinstance(cause, BaseExceptionGroup):
            pending += cause.exceptions


class _Fetcher:
    """GETs with a byte cap, a connection-reset retry and transport errors mapped to reasons."""

    def __init__(
        self, client: httpx.AsyncClient, base: httpx.URL, settings: ProbeSettings, limits: ProbeLimits
    ) -> None:
        self.client = client
        # Credentials in the URL travel as an Authorization header instead, so the request's
        # URL, which httpx logs ("HTTP Request: GET ..."), never carries them.
        self.auth = httpx.BasicAuth(base.username, base.password) if base.userinfo else None
        self.base = base.copy_with(username=None, password=None)
        self.timeout = httpx.Timeout(settings.total_s, connect=settings.connect_s)
        self.connect_s = settings.connect_s
        self.limits = limits

    async def get(self, path: str) -> _Answer:
        """The answer to GET `path`; raises `_Down` for anything that is not an HTTP answer."""
        attempts = self.limits.reset_retries + 1
        for attempt in range(1, attempts + 1):
            try:
                return await self._get_once(path)
            except httpx.HTTPError as exc:
                if attempt == attempts or not _is_reset(exc):
                    raise await self._plain_at_tls(exc, path) or _failure(exc, path, attempt) from exc
        raise AssertionError("unreachable")

    async def _plain_at_tls(self, exc: httpx.HTTPError, path: str) -> _Down | None:
        """TLS, when an http:// request was dropped or garbled because the port speaks TLS.

        A TLS server that reads a plain request closes without an HTTP answer (OpenSSL
        stops at the "GET " it finds where a record header should be, ssl/record/rec_layer_s3.c
        SSL_R_HTTP_REQUEST) or sends an alert that is no status line: either alone reads as a
        reset or a non-HTTP answer. One handshake on the same port tells them apart.
        """
        if self.base.scheme != "http" or not (_is_reset(exc) or isinstance(exc, httpx.RemoteProtocolError)):
            return None
        if not await _speaks_tls(self.base.raw_host.decode("ascii"), self.base.port or 80, self.connect_s):
            return None
        return _Down(Reason.TLS, f"{path}: the server speaks TLS on this port (an http:// URL; use https://)")

    async def _get_once(self, path: str) -> _Answer:
        cap = self.limits.max_body_bytes
        request = self.client.stream(
            "GET", f"{self.base}{path}", headers=_HEADERS, auth=self.auth, timeout=self.timeout,
            follow_redirects=False,
        )
        async with request as response:
            if response.status_code != 200:
                # The body of an error or a redirect is not read: status and Location say enough.
                return _Answer(response.status_code, location=redact_url(response.headers.get("location", "")))
            encoding = response.headers.get("content-encoding", "identity").lower()
            if encoding != "identity":
                raise _Down(Reason.BAD_BODY, f"{path} answered {encoding}-encoded despite Accept-Encoding: identity")
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > cap:
                raise _Down(Reason.TOO_LARGE, f"{path} announces {int(declared)} bytes (limit {cap})")
            body = bytearray()
            async for chunk in response.aiter_raw():
                body += chunk
                if len(body) > cap:
                    raise _Down(Reason.TOO_LARGE, f"{path} sent more than {cap} bytes")
            return _Answer(200, _json_body(response.headers.get("content-type", ""), bytes(body), path))


def _json_body(content_type: str, body: bytes, path: str) -> Any:
    """The parsed body; a 200 that is not JSON is a fault (a captive portal, a web UI, a proxy page).

    Raises:
        _Down: BAD_BODY for a body that is not JSON, invalid, or nested deeper than `JSON_MAX_DEPTH`.
    """
    if not body:
        return None
    media_type = content_type.partition(";")[0].strip().lower()
    if media_type != "application/json" and not media_type.endswith("+json"):
        raise _Down(Reason.BAD_BODY, f"{path} answered {content_type or 'no content type'}, expected JSON")
    try:
        return pydantic_core.from_json(body)
    except ValueError as exc:  # invalid UTF-8, syntax, "recursion limit exceeded", "number out of range"
        raise _Down(Reason.BAD_BODY, f"{path} answered invalid JSON: {exc}") from exc


async def _speaks_tls(host: str, port: int, timeout_s: float) -> bool:
    """Whether `host:port` completes a TLS handshake (certificate not checked: only the protocol is asked)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        async with asyncio.timeout(timeout_s):
            _, writer = await asyncio.open_connection(host, port, ssl=context)
    except (OSError, TimeoutError):  # ssl.SSLError is an OSError: a plain server answers the hello with text
        return False
    writer.transport.abort()  # no close_notify exchange: the answer is known
    return True


def _failure(exc: httpx.HTTPError, path: str, attempts: int) -> _Down:
    """The one place httpx errors become reasons, the most specific first."""
    if isinstance(exc, httpx.TimeoutException):
        return _Down(Reason.TIMEOUT, f"{type(exc).__name__} on {path}")
    if isinstance(exc, httpx.UnsupportedProtocol):
        return _Down(Reason.BAD_URL, f"{exc}")
    if _is_reset(exc):
        tries = f"{attempts} attempts" if attempts > 1 else "no retry"
        return _Down(Reason.RESET, f"connection reset on {path} ({tries}): {_why(exc)}")
    if isinstance(exc, httpx.ConnectError):
        return _connect_failure(exc)
    if isinstance(exc, httpx.TransportError):
        return _Down(Reason.BAD_BODY, f"{path} answered something that is not HTTP: {exc}")
    return _Down(Reason.ERROR, f"{type(exc).__name__} on {path}: {exc}")


def _why(exc: BaseException) -> str:
    """The operating system's words for a transport error, when httpx's message is empty."""
    for cause in _causes(exc):
        if isinstance(cause, OSError) and cause.strerror:
            return cause.strerror
    return str(exc) or type(exc).__name__


def _connect_failure(exc: httpx.ConnectError) -> _Down:
    """The most specific reason for a failed connection (httpx wraps the OS error)."""
    for cause in _causes(exc):
        if isinstance(cause, ConnectionRefusedError) or getattr(cause, "errno", None) == errno.ECONNREFUSED:
            return _Down(Reason.REFUSED, "connection refused")
        if isinstance(cause, ssl.SSLError):
            return _Down(Reason.TLS, f"TLS handshake failed: {cause.reason or cause}")
        if isinstance(cause, socket.gaierror):
            return _Down(Reason.DNS, f"name does not resolve: {cause}")
    return _Down(Reason.ERROR, f"cannot connect: {_why(exc)}")


def _require_200(answer: _Answer, path: str) -> Any:
    """The body of a 200 answer; any other status is a fault, redirects included."""
    if 300 <= answer.status < 400:
        target = f" to {answer.location}" if answer.location else ""
        raise _Down(Reason.HTTP_STATUS, f"{path} redirects{target} (HTTP {answer.status}; health URLs must not move)")
    if answer.status != 200:
        raise _Down(Reason.HTTP_STATUS, f"{path} answered HTTP {answer.status}")
    return answer.body


def _model_list(body: Any, key: str, name_key: str, path: str) -> list[str]:
    items = body.get(key) if isinstance(body, dict) else None
    if not isinstance(items, list) or not all(isinstance(i, dict) and isinstance(i.get(name_key), str) for i in items):
        raise _Down(Reason.BAD_BODY, f"{path} has no {key!r} list of models")
    return [item[name_key] for item in items]


class _Resident(BaseModel):
    """One entry of Ollama's `/api/ps`: only the fields the probe keeps."""

    name: str
    size: int = 0
    size_vram: int = 0


class _Ps(BaseModel):
    models: list[_Resident]


async def _ollama(fetch: _Fetcher) -> _Found:
    models = _model_list(_require_200(await fetch.get("/api/tags"), "/api/tags"), "models", "name", "/api/tags")
    answer = await fetch.get("/api/ps")
    if answer.status == 404:  # Ollama before 0.1.38 has no /api/ps: it serves, we just cannot see VRAM
        return models, []
    try:
        ps = _Ps.model_validate(_require_200(answer, "/api/ps"))
    except ValidationError as exc:
        raise _Down(Reason.BAD_BODY, f"/api/ps has no valid 'models' list: {exc.errors()[0]['msg']}") from exc
    loaded = [LoadedModel(name=m.name, size_bytes=m.size, size_vram_bytes=m.size_vram) for m in ps.models]
    return models, loaded


async def _llamacpp(fetch: _Fetcher) -> _Found:
    answer = await fetch.get("/health")
    if answer.status == 503:  # llama-server answers 503 until its model is in memory
        raise _Loading()
    if answer.status == 404:  # servers without /health (llama-cpp-python) are judged by /v1/models
        return await _openai(fetch)
    body = _require_200(answer, "/health")
    if not isinstance(body, dict) or body.get("status") != "ok":
        raise _Down(Reason.BAD_BODY, f'/health answered {str(body)[:80]!r}, expected {{"status": "ok"}}')
    return await _openai(fetch)


async def _litellm(fetch: _Fetcher) -> _Found:
    # Never /health: LiteLLM answers it by calling every model, waiting up to 60 s on each
    # dead one. /health/liveliness only says the proxy process is alive, which is the question;
    # the models behind it are probed on their own endpoints.
    body = _require_200(await fetch.get("/health/liveliness"), "/health/liveliness")
    if not (isinstance(body, str) and "alive" in body.lower()):
        raise _Down(Reason.BAD_BODY, f"/health/liveliness answered {str(body)[:80]!r}, expected \"I'm alive!\"")
    return [], []


async def _openai(fetch: _Fetcher) -> _Found:
    body = _require_200(await fetch.get("/v1/models"), "/v1/models")
    return _model_list(body, "data", "id", "/v1/models"), []


_PROBES: dict[EndpointKind, Callable[[_Fetcher], Awaitable[_Found]]] = {
    EndpointKind.OLLAMA: _ollama,
    EndpointKind.LLAMACPP: _llamacpp,
    EndpointKind.LITELLM: _litellm,
    EndpointKind.OPENAI: _openai,
}


def _target(url: str) -> httpx.URL:
    """The endpoint's URL as httpx reads it.

    Raises:
        _Down: BAD_URL for a URL httpx refuses (`http://xn--:1` is an IDNA error), DNS for a
            host under `.invalid`, which never resolves (RFC 6761): no resolver is asked.
    """
    try:
        parsed = httpx.URL(url)
        host = parsed.host.rstrip(".")  # decodes the IDNA host: `xn--` fails here, not at connect
    except (httpx.InvalidURL, ValueError) as exc:  # idna.IDNAError, a UnicodeError, escapes httpx unwrapped
        raise _Down(Reason.BAD_URL, f"cannot use this URL: {exc}") from exc
    if not host:
        raise _Down(Reason.BAD_URL, "cannot use this URL: it names no host")
    if parsed.port is not None and not 0 < parsed.port < 65536:  # httpx lets them through to socket.connect
        raise _Down(Reason.BAD_URL, f"cannot use this URL: port {parsed.port} is not in 1-65535")
    if host == "invalid" or host.endswith(".invalid"):
        raise _Down(Reason.DNS, f"name does not resolve: {host} is under .invalid (RFC 6761)")
    return parsed


async def probe_endpoint(
    client: httpx.AsyncClient,
    node: Node,
    endpoint: Endpoint,
    settings: ProbeSettings,
    limits: ProbeLimits = DEFAULT_PROBE_LIMITS,
) -> ProbeResult:
    """Probe one endpoint within `settings.total_s`; never raises for a bad endpoint.

    Args:
        client: shared async client; its timeouts are overridden per request, redirects never followed.
        node: the node the endpoint belongs to (for the result's node and tier).
        endpoint: what to probe; its kind picks the probe.
        settings: the endpoint's effective timeouts and slow threshold.
        limits: body size cap and reset retries.

    Returns:
        The state, the reason and a readable detail, the latency, and the models the endpoint lists.
    """
    checked_at = datetime.now(UTC)
    started = time.perf_counter()
    state, reason, detail = EndpointState.UP, Reason.OK, ""
    models: list[str] = []
    loaded: list[LoadedModel] = []
    try:
        fetcher = _Fetcher(client, _target(endpoint.url), settings, limits)
        async with asyncio.timeout(settings.total_s):
            models, loaded = await _PROBES[endpoint.kind](fetcher)
    except _Loading:
        state, reason, detail = EndpointState.SLOW, Reason.LOADING, "/health answered 503: model still loading"
    except _Down as down:
        state, reason, detail = EndpointState.DOWN, down.reason, down.detail
    except TimeoutError:
        state, reason, detail = EndpointState.DOWN, Reason.TIMEOUT, f"no complete answer within {settings.total_s:g} s"
    latency_ms = (time.perf_counter() - started) * 1000
    if state is EndpointState.UP and latency_ms > settings.slow_ms:
        state, reason = EndpointState.SLOW, Reason.SLOW
        detail = f"answered in {latency_ms:.0f} ms (slow over {settings.slow_ms} ms)"
    return ProbeResult(
        node=node.name,
        tier=node.tier,
        endpoint=endpoint.name,
        kind=endpoint.kind,
        url=redact_url(endpoint.url),
        state=state,
        reason=reason,
        detail=detail,
        latency_ms=round(latency_ms, 1),
        checked_at=checked_at,
        models=models,
        loaded=loaded,
    )
