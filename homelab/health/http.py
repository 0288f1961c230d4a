"""Probe HTTP: GETs with a byte cap and bounded JSON, a reset retry, and transport errors mapped to reasons.

The half of probing that talks to the network; `homelab.health.probe` judges what comes back per
runtime kind. Everything here ends a probe with `Down(reason, detail)` rather than letting an
httpx, socket or parser error escape: a hostile endpoint is one DOWN result, never the end of
a sweep. Bodies are parsed by pydantic-core's JSON parser (jiter), which refuses nesting
deeper than `JSON_MAX_DEPTH` and integers longer than 4,300 digits with a ValueError, where
`json.loads` raised RecursionError on 5,000 nested brackets and lost every result.

`open_probe_client` builds the client every probe uses (a sweep, a health gate, the router's
refresh, recovery's checks): one connection pool per origin, no redirects, no proxies.
"""

from __future__ import annotations

import asyncio
import errno
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import httpx
import pydantic_core
from pydantic import BaseModel, ConfigDict, Field

from homelab.inventory import ProbeSettings
from homelab.redact import redact_url

__all__ = [
    "DEFAULT_CONNECTIONS_PER_ORIGIN",
    "DEFAULT_PROBE_LIMITS",
    "DETAIL_MAX_CHARS",
    "JSON_MAX_DEPTH",
    "Answer",
    "Down",
    "Fetcher",
    "ProbeLimits",
    "Reason",
    "open_probe_client",
    "serves",
    "target_url",
]

# The nesting pydantic-core's parser accepts (jiter's recursion limit); deeper is a bad body.
# Health answers are two or three levels deep.
JSON_MAX_DEPTH = 200


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


class ProbeLimits(BaseModel):
    """Limits that protect the prober itself."""

    model_config = ConfigDict(frozen=True)

    max_body_bytes: int = Field(
        1_048_576, gt=0, le=64 * 1_048_576, description="bytes read from one answer before giving up"
    )
    reset_retries: int = Field(1, ge=0, le=5, description="quick retries after a connection reset")


DEFAULT_PROBE_LIMITS = ProbeLimits()


# A detail quotes what a server sent (a Location, a content type, a garbled status line: each
# up to 64 KB) and is stored with every sweep, so it is cut here.
DETAIL_MAX_CHARS = 300


class Down(Exception):
    """Ends a probe with a reason (raised here and by the kind probes, caught by `probe_endpoint`)."""

    def __init__(self, reason: Reason, detail: str) -> None:
        if len(detail) > DETAIL_MAX_CHARS:
            detail = detail[: DETAIL_MAX_CHARS - 1] + "…"
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Answer:
    """One HTTP answer: its status, its JSON body (a GET's only for 200) and where a redirect points."""

    status: int
    body: Any = None
    location: str = ""


# Connections one probe client keeps open at once to one scheme://host:port (a reverse proxy
# in front of many endpoints); a sweep may ask for fewer (`SweepLimits`).
DEFAULT_CONNECTIONS_PER_ORIGIN = 256

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


class Fetcher:
    """GETs (and the few POSTs that ask what a model can do) with a byte cap, a connection-reset
    retry for GETs and transport errors mapped to reasons."""

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

    async def get(self, path: str) -> Answer:
        """The answer to GET `path`; raises `Down` for anything that is not an HTTP answer."""
        attempts = self.limits.reset_retries + 1
        for attempt in range(1, attempts + 1):
            try:
                return await self._once("GET", path)
            except httpx.HTTPError as exc:
                if attempt == attempts or not _is_reset(exc):
                    raise await self._plain_at_tls(exc, path) or _failure(exc, path, attempt) from exc
        raise AssertionError("unreachable")

    async def post(self, path: str, payload: Any) -> Answer:
        """The answer to POST `path` with a JSON body; its body is read whatever the status (an
        error's body says why). No reset retry: a POST is not assumed idempotent.

        Raises:
            Down: for anything that is not an HTTP answer.
        """
        try:
            return await self._once("POST", path, payload)
        except httpx.HTTPError as exc:
            raise _failure(exc, path, 1) from exc

    async def _plain_at_tls(self, exc: httpx.HTTPError, path: str) -> Down | None:
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
        return Down(Reason.TLS, f"{path}: the server speaks TLS on this port (an http:// URL; use https://)")

    async def _once(self, method: str, path: str, payload: Any = None) -> Answer:
        cap = self.limits.max_body_bytes
        request = self.client.stream(
            method,
            f"{self.base}{path}",
            headers=_HEADERS,
            auth=self.auth,
            timeout=self.timeout,
            follow_redirects=False,
            json=payload,
        )
        async with request as response:
            if response.status_code != 200 and method == "GET":
                # The body of an error or a redirect is not read: status and Location say enough.
                return Answer(response.status_code, location=redact_url(response.headers.get("location", "")))
            encoding = response.headers.get("content-encoding", "identity").lower()
            if encoding != "identity":
                raise Down(Reason.BAD_BODY, f"{path} answered {encoding}-encoded despite Accept-Encoding: identity")
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > cap:
                raise Down(Reason.TOO_LARGE, f"{path} announces {int(declared)} bytes (limit {cap})")
            body = bytearray()
            async for chunk in response.aiter_raw():
                body += chunk
                if len(body) > cap:
                    raise Down(Reason.TOO_LARGE, f"{path} sent more than {cap} bytes")
            parsed = _json_body(response.headers.get("content-type", ""), bytes(body), path)
            return Answer(response.status_code, parsed)


def _json_body(content_type: str, body: bytes, path: str) -> Any:
    """The parsed body; a 200 that is not JSON is a fault (a captive portal, a web UI, a proxy page).

    Raises:
        Down: BAD_BODY for a body that is not JSON, invalid, or nested deeper than `JSON_MAX_DEPTH`.
    """
    if not body:
        return None
    media_type = content_type.partition(";")[0].strip().lower()
    if media_type != "application/json" and not media_type.endswith("+json"):
        raise Down(Reason.BAD_BODY, f"{path} answered {content_type or 'no content type'}, expected JSON")
    try:
        return pydantic_core.from_json(body)
    except ValueError as exc:  # invalid UTF-8, syntax, "recursion limit exceeded", "number out of range"
        raise Down(Reason.BAD_BODY, f"{path} answered invalid JSON: {exc}") from exc


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


def _failure(exc: httpx.HTTPError, path: str, attempts: int) -> Down:
    """The one place httpx errors become reasons, the most specific first."""
    if isinstance(exc, httpx.TimeoutException):
        return Down(Reason.TIMEOUT, f"{type(exc).__name__} on {path}")
    if isinstance(exc, httpx.UnsupportedProtocol):
        return Down(Reason.BAD_URL, f"{exc}")
    if _is_reset(exc):
        tries = f"{attempts} attempts" if attempts > 1 else "no retry"
        return Down(Reason.RESET, f"connection reset on {path} ({tries}): {_why(exc)}")
    if isinstance(exc, httpx.ConnectError):
        return _connect_failure(exc)
    if isinstance(exc, httpx.TransportError):
        return Down(Reason.BAD_BODY, f"{path} answered something that is not HTTP: {exc}")
    return Down(Reason.ERROR, f"{type(exc).__name__} on {path}: {exc}")


def _why(exc: BaseException) -> str:
    """The operating system's words for a transport error, when httpx's message is empty."""
    for cause in _causes(exc):
        if isinstance(cause, OSError) and cause.strerror:
            return cause.strerror
    return str(exc) or type(exc).__name__


def _connect_failure(exc: httpx.ConnectError) -> Down:
    """The most specific reason for a failed connection (httpx wraps the OS error)."""
    for cause in _causes(exc):
        if isinstance(cause, ConnectionRefusedError) or getattr(cause, "errno", None) == errno.ECONNREFUSED:
            return Down(Reason.REFUSED, "connection refused")
        if isinstance(cause, ssl.SSLError):
            return Down(Reason.TLS, f"TLS handshake failed: {cause.reason or cause}")
        if isinstance(cause, socket.gaierror):
            return Down(Reason.DNS, f"name does not resolve: {cause}")
    return Down(Reason.ERROR, f"cannot connect: {_why(exc)}")


def serves(url: str, timeout_s: float = 2.0) -> bool:
    """Whether GET `url` answers 200 within `timeout_s`: a readiness poll for a server this
    machine just started (the demo's), where any failure only means "not yet"."""
    try:
        return httpx.get(url, timeout=timeout_s, trust_env=False).status_code == 200
    except httpx.HTTPError:
        return False


def target_url(url: str) -> httpx.URL:
    """The endpoint's URL as httpx reads it.

    Raises:
        Down: BAD_URL for a URL httpx refuses (`http://xn--:1` is an IDNA error), DNS for a
            host under `.invalid`, which never resolves (RFC 6761): no resolver is asked.
    """
    try:
        parsed = httpx.URL(url)
        host = parsed.host.rstrip(".")  # decodes the IDNA host: `xn--` fails here, not at connect
    except (httpx.InvalidURL, ValueError) as exc:  # idna.IDNAError, a UnicodeError, escapes httpx unwrapped
        raise Down(Reason.BAD_URL, f"cannot use this URL: {exc}") from exc
    if not host:
        raise Down(Reason.BAD_URL, "cannot use this URL: it names no host")
    if parsed.port is not None and not 0 < parsed.port < 65536:  # httpx lets them through to socket.connect
        raise Down(Reason.BAD_URL, f"cannot use this URL: port {parsed.port} is not in 1-65535")
    if host == "invalid" or host.endswith(".invalid"):
        raise Down(Reason.DNS, f"name does not resolve: {host} is under .invalid (RFC 6761)")
    return parsed


class _PoolPerOrigin(httpx.AsyncBaseTransport):
    """One connection pool per scheme://host:port instead of one big pool.

    httpcore's pool scans every connection it holds on each request and each close, so one
    pool for a 500-endpoint sweep costs O(n²) bookkeeping: over a second of CPU that then
    shows up as latency, and as false timeouts on a busy machine. A pool opens connections
    only as requests need them, up to `max_connections`; an origin with one endpoint holds
    one. Pools share one TLS context.
    """

    def __init__(self, max_connections: int) -> None:
        self._tls = httpx.create_ssl_context()
        self._max_connections = max_connections
        self._pools: dict[tuple[bytes, bytes, int | None], httpx.AsyncHTTPTransport] = {}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        origin = (request.url.raw_scheme, request.url.raw_host, request.url.port)
        pool = self._pools.get(origin)
        if pool is None:
            limits = httpx.Limits(max_connections=self._max_connections, max_keepalive_connections=0)
            pool = self._pools[origin] = httpx.AsyncHTTPTransport(verify=self._tls, limits=limits, trust_env=False)
        return await pool.handle_async_request(request)

    async def aclose(self) -> None:
        for pool in self._pools.values():
            await pool.aclose()


def open_probe_client(max_connections_per_origin: int = DEFAULT_CONNECTIONS_PER_ORIGIN) -> httpx.AsyncClient:
    """A client for probes and sweeps; redirects are not followed (a health URL that moves is a
    fault), proxies from the environment are ignored (probes go straight to the endpoint).

    Each origin's pool holds `max_connections_per_origin` connections: give a sweep's
    `SweepLimits.max_connections_per_origin`, the most that `probe_endpoints` lets run at once
    there, so a probe never waits for a pooled connection.
    """
    transport = _PoolPerOrigin(max_connections_per_origin)
    return httpx.AsyncClient(transport=transport, follow_redirects=False, trust_env=False)
