"""Endpoint probes: one async httpx check per runtime kind, each judging the body, not just the status.

A dead endpoint is data, not an exception: every probe returns a `ProbeResult` saying UP,
SLOW or DOWN, why, and how long it took. Each probe runs under its endpoint's own total
timeout (a slowloris that sends one byte a second still ends on time) and reads at most
`max_body_bytes` of undecoded bytes (a 100 MB answer, or a gzip bomb, costs no more memory
than a small one), parsed with bounded depth (`homelab.health.http` does the network half).
The URL in a result has its user-info redacted (`homelab.redact`): results are printed,
stored and published.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from homelab.health.http import (
    DEFAULT_PROBE_LIMITS,
    JSON_MAX_DEPTH,
    Answer,
    Down,
    Fetcher,
    ProbeLimits,
    Reason,
    target_url,
)
from homelab.inventory import Capability, Endpoint, EndpointKind, Node, ProbeSettings
from homelab.inventory.capabilities import from_ollama
from homelab.redact import redact_url

__all__ = [
    "DEFAULT_PROBE_LIMITS",
    "JSON_MAX_DEPTH",
    "EndpointState",
    "LoadedModel",
    "ProbeLimits",
    "ProbeResult",
    "Reason",
    "probe_endpoint",
]


class EndpointState(StrEnum):
    """UP: a valid answer in time. SLOW: valid but late, or still loading. DOWN: anything else."""

    UP = "UP"
    SLOW = "SLOW"
    DOWN = "DOWN"


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
    capabilities: dict[str, list[Capability]] = Field(
        default_factory=dict, description="what the server says each of the endpoint's models can do, by model name"
    )

    @property
    def serving(self) -> bool:
        """Answers requests now: UP, or merely slow (a loading server does not serve yet)."""
        return self.state is EndpointState.UP or self.reason is Reason.SLOW


class _Loading(Exception):
    """Internal: the server answered that it is still loading its model."""


_Found = tuple[list[str], list[LoadedModel]]


def _require_200(answer: Answer, path: str) -> Any:
    """The body of a 200 answer; any other status is a fault, redirects included."""
    if 300 <= answer.status < 400:
        target = f" to {answer.location}" if answer.location else ""
        raise Down(Reason.HTTP_STATUS, f"{path} redirects{target} (HTTP {answer.status}; health URLs must not move)")
    if answer.status != 200:
        raise Down(Reason.HTTP_STATUS, f"{path} answered HTTP {answer.status}")
    return answer.body


def _model_list(body: Any, key: str, name_key: str, path: str) -> list[str]:
    items = body.get(key) if isinstance(body, dict) else None
    if not isinstance(items, list) or not all(isinstance(i, dict) and isinstance(i.get(name_key), str) for i in items):
        raise Down(Reason.BAD_BODY, f"{path} has no {key!r} list of models")
    return [item[name_key] for item in items]


class _Resident(BaseModel):
    """One entry of Ollama's `/api/ps`: only the fields the probe keeps."""

    name: str
    size: int = 0
    size_vram: int = 0


class _Ps(BaseModel):
    models: list[_Resident]


async def _ollama(fetch: Fetcher) -> _Found:
    models = _model_list(_require_200(await fetch.get("/api/tags"), "/api/tags"), "models", "name", "/api/tags")
    answer = await fetch.get("/api/ps")
    if answer.status == 404:  # Ollama before 0.1.38 has no /api/ps: it serves, we just cannot see VRAM
        return models, []
    try:
        ps = _Ps.model_validate(_require_200(answer, "/api/ps"))
    except ValidationError as exc:
        raise Down(Reason.BAD_BODY, f"/api/ps has no valid 'models' list: {exc.errors()[0]['msg']}") from exc
    loaded = [LoadedModel(name=m.name, size_bytes=m.size, size_vram_bytes=m.size_vram) for m in ps.models]
    return models, loaded


async def _llamacpp(fetch: Fetcher) -> _Found:
    answer = await fetch.get("/health")
    if answer.status == 503:  # llama-server answers 503 until its model is in memory
        raise _Loading()
    if answer.status == 404:  # servers without /health (llama-cpp-python) are judged by /v1/models
        return await _openai(fetch)
    body = _require_200(answer, "/health")
    if not isinstance(body, dict) or body.get("status") != "ok":
        raise Down(Reason.BAD_BODY, f'/health answered {str(body)[:80]!r}, expected {{"status": "ok"}}')
    return await _openai(fetch)


async def _litellm(fetch: Fetcher) -> _Found:
    # Never /health: LiteLLM answers it by calling every model, waiting up to 60 s on each
    # dead one. /health/liveliness only says the proxy process is alive, which is the question;
    # the models behind it are probed on their own endpoints.
    body = _require_200(await fetch.get("/health/liveliness"), "/health/liveliness")
    if not (isinstance(body, str) and "alive" in body.lower()):
        raise Down(Reason.BAD_BODY, f'/health/liveliness answered {str(body)[:80]!r}, expected "I\'m alive!"')
    return [], []


async def _openai(fetch: Fetcher) -> _Found:
    body = _require_200(await fetch.get("/v1/models"), "/v1/models")
    return _model_list(body, "data", "id", "/v1/models"), []


async def _ollama_capabilities(fetch: Fetcher, names: list[str]) -> dict[str, list[Capability]]:
    """`/api/show` of each model: Ollama derives `capabilities` from the GGUF, its projector and
    its template (server/images.go:112-138 at v0.33.0-rc2)."""

    async def one(name: str) -> tuple[str, list[Capability]] | None:
        try:
            answer = await fetch.post("/api/show", {"model": name})
        except Down:
            return None
        words = answer.body.get("capabilities") if answer.status == 200 and isinstance(answer.body, dict) else None
        if not isinstance(words, list):  # an Ollama before 0.6.4 says nothing: unknown, not "none"
            return None
        return name, from_ollama([w for w in words[:32] if isinstance(w, str)])

    found = await asyncio.gather(*(one(name) for name in names))
    return dict(item for item in found if item is not None)


async def _llamacpp_capabilities(fetch: Fetcher, names: list[str]) -> dict[str, list[Capability]]:
    """One server, one model: `/props` says whether it takes images (`modalities.vision`, with
    `--mmproj`) and whether its template takes tools (`chat_template_caps.supports_tools`);
    a POST to `/v1/embeddings` without input says whether it embeds, computing nothing: 501
    "does not support embeddings" without `--embeddings`, 400 "\"input\" or \"content\" must
    be provided" with it (tools/server/server-context.cpp `get_res_props` and
    `handle_embeddings_impl`, llama.cpp as built by scripts/build-llama-server.sh)."""
    props = _require_200(await fetch.get("/props"), "/props")
    embeddings = await fetch.post("/v1/embeddings", {})
    error = embeddings.body.get("error") if isinstance(embeddings.body, dict) else None
    message = str(error.get("message", "")) if isinstance(error, dict) else ""
    if embeddings.status == 400 and "must be provided" in message:
        # `--embeddings` restricts the server to embeddings; its model is an embedding model.
        have = [Capability.EMBEDDING]
    else:
        modalities = props.get("modalities") if isinstance(props, dict) else None
        caps = props.get("chat_template_caps") if isinstance(props, dict) else None
        have = [Capability.COMPLETION]
        if isinstance(modalities, dict) and modalities.get("vision") is True:
            have.append(Capability.VISION)
        if isinstance(caps, dict) and caps.get("supports_tools") is True:
            have.append(Capability.TOOLS)
    return dict.fromkeys(names, have)


_DISCOVERIES: dict[EndpointKind, Callable[[Fetcher, list[str]], Awaitable[dict[str, list[Capability]]]]] = {
    EndpointKind.OLLAMA: _ollama_capabilities,
    EndpointKind.LLAMACPP: _llamacpp_capabilities,
}


async def _discover(
    fetcher: Fetcher, endpoint: Endpoint, listed: list[str], left_s: float
) -> dict[str, list[Capability]]:
    """What the endpoint's models of the cluster file can do, within the probe's remaining time.

    Best effort: the endpoint has already answered its health check, so a server that cannot
    say (an older version, an error, no time left) leaves its models' capabilities unknown
    rather than turning the endpoint DOWN. Ollama is asked only about models it lists; a
    llama-server serves one model, whatever name the cluster file gives it.
    """
    discover = _DISCOVERIES.get(endpoint.kind)
    served = {name.removesuffix(":latest") for name in listed}
    names = [m.name for m in endpoint.models]
    if endpoint.kind is EndpointKind.OLLAMA:
        names = [name for name in names if name.removesuffix(":latest") in served]
    if discover is None or not names or left_s <= 0:
        return {}
    try:
        async with asyncio.timeout(left_s):
            return await discover(fetcher, names)
    except (Down, TimeoutError):
        return {}


_PROBES: dict[EndpointKind, Callable[[Fetcher], Awaitable[_Found]]] = {
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
    capabilities: dict[str, list[Capability]] = {}
    fetcher: Fetcher | None = None
    try:
        fetcher = Fetcher(client, target_url(endpoint.url), settings, limits)
        async with asyncio.timeout(settings.total_s):
            models, loaded = await _PROBES[endpoint.kind](fetcher)
    except _Loading:
        state, reason, detail = EndpointState.SLOW, Reason.LOADING, "/health answered 503: model still loading"
    except Down as down:
        state, reason, detail = EndpointState.DOWN, down.reason, down.detail
    except TimeoutError:
        state, reason, detail = EndpointState.DOWN, Reason.TIMEOUT, f"no complete answer within {settings.total_s:g} s"
    latency_ms = (time.perf_counter() - started) * 1000
    if state is EndpointState.UP and latency_ms > settings.slow_ms:
        state, reason = EndpointState.SLOW, Reason.SLOW
        detail = f"answered in {latency_ms:.0f} ms (slow over {settings.slow_ms} ms)"
    if fetcher is not None and (state is EndpointState.UP or reason is Reason.SLOW):  # it serves: ask what it can do
        capabilities = await _discover(fetcher, endpoint, models, settings.total_s - latency_ms / 1000)
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
        capabilities=capabilities,
    )
