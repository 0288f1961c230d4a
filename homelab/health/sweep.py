"""A health sweep: every endpoint probed at once, then judged per tier and for the whole cluster.

Rules (the README's "Health" section says the same):
- endpoint: UP (valid answer within its slow threshold), SLOW (valid but late, or loading),
  DOWN (anything else). An endpoint *serves* when it is UP or merely late.
  A loading llama-server is SLOW but does not serve yet.
- tier: HEALTHY when every endpoint is UP (a tier without endpoints too), DOWN when none
  serves, DEGRADED in between.
- cluster: CRITICAL when the gateway does not serve (every client goes through it), when
  nothing serves, or when a category has no serving expert left (an expert that serves but
  cannot take the category's requests, an embedding model listed for chat, does not count:
  `expert_verdict`, which `homelab route` shares); DEGRADED when anything else
  is not UP (a lost expert with a fallback, a slow or loading endpoint); OPERATIONAL otherwise.
  So the prognosis is DEGRADED exactly when some endpoint is not UP and nothing is CRITICAL.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from enum import StrEnum

import httpx
from pydantic import Field

from homelab.frozen import Frozen
from homelab.health.external import ExternalResult, sweep_external
from homelab.health.http import DEFAULT_CONNECTIONS_PER_ORIGIN
from homelab.health.probe import DEFAULT_PROBE_LIMITS, EndpointState, ProbeLimits, ProbeResult, probe_endpoint
from homelab.inventory import Category, Endpoint, Inventory, Node
from homelab.inventory.capabilities import NEEDS, Capabilities, model_capabilities

__all__ = [
    "DEFAULT_SWEEP_LIMITS",
    "ClusterHealth",
    "ExpertVerdict",
    "Prognosis",
    "SweepLimits",
    "SweepReport",
    "TierHealth",
    "TierState",
    "classify_cluster",
    "classify_tier",
    "classify_tiers",
    "expert_verdict",
    "probe_endpoints",
    "served_capabilities",
    "sweep",
]


class TierState(StrEnum):
    """A tier's state: all endpoints UP, some serving, or none serving."""

    HEALTHY = "HEALTHY"
    DEGRADED = "DEGRADED"
    DOWN = "DOWN"


class Prognosis(StrEnum):
    """The one word for the whole cluster; `homelab sweep` exits 0, 1 or 3 on it."""

    OPERATIONAL = "OPERATIONAL"
    DEGRADED = "DEGRADED"
    CRITICAL = "CRITICAL"


class TierHealth(Frozen):
    """A tier's state and how many of its endpoints are UP, SLOW (late or loading) and DOWN."""

    name: str
    state: TierState
    up: int
    slow: int
    down: int


class ClusterHealth(Frozen):
    """The prognosis and every reason behind it, most severe first."""

    prognosis: Prognosis
    reasons: list[str] = Field(default_factory=list, description="why the prognosis is not OPERATIONAL")


class SweepReport(Frozen):
    """The outcome of one sweep: what `homelab sweep --json` prints and the history stores."""

    started_at: datetime
    duration_ms: float
    endpoints: list[ProbeResult]
    tiers: list[TierHealth]
    cluster: ClusterHealth
    capabilities: dict[str, Capabilities] = Field(
        default_factory=dict, description="what each model alias can do, and where that is known from"
    )
    external: list[ExternalResult] = Field(
        default_factory=list, description="models the gateway passes through: shown, in no verdict (health.external)"
    )

    @property
    def all_up(self) -> bool:
        """Every endpoint UP (then the prognosis is OPERATIONAL)."""
        return all(r.state is EndpointState.UP for r in self.endpoints)


class SweepLimits(Frozen):
    """How hard one sweep may hit the network."""

    max_concurrency: int = Field(512, gt=0, le=65_536, description="endpoints probed at the same time")
    max_connections_per_origin: int = Field(
        DEFAULT_CONNECTIONS_PER_ORIGIN,
        gt=0,
        le=65_536,
        description="connections open at once to one scheme://host:port (a reverse proxy)",
    )
    probe: ProbeLimits = DEFAULT_PROBE_LIMITS


DEFAULT_SWEEP_LIMITS = SweepLimits()


def classify_tier(name: str, results: list[ProbeResult]) -> TierHealth:
    """A tier's state from its endpoints' results."""
    up = sum(r.state is EndpointState.UP for r in results)
    slow = sum(r.state is EndpointState.SLOW for r in results)
    down = len(results) - up - slow
    if up == len(results):
        state = TierState.HEALTHY
    elif any(r.serving for r in results):
        state = TierState.DEGRADED
    else:
        state = TierState.DOWN
    return TierHealth(name=name, state=state, up=up, slow=slow, down=down)


def classify_tiers(inv: Inventory, results: list[ProbeResult]) -> list[TierHealth]:
    """Every tier of the inventory, in file order, judged from its endpoints' results."""
    return [classify_tier(tier, [r for r in results if r.tier == tier]) for tier in inv.tiers()]


def classify_cluster(inv: Inventory, results: list[ProbeResult]) -> ClusterHealth:
    """One prognosis for the cluster, with the reasons behind it (critical ones first)."""
    by_endpoint = {(r.node, r.endpoint): r for r in results}
    critical: list[str] = []
    degraded: list[str] = []
    if inv.gateway is not None and inv.gateway.endpoint is not None:
        node, _, name = inv.gateway.endpoint.partition("/")
        gateway = by_endpoint.get((node, name))
        if gateway is not None and not gateway.serving:
            critical.append(
                f"gateway {inv.gateway.endpoint} is {gateway.state} ({gateway.reason}): every client goes through it"
            )
    if results and not any(r.serving for r in results):
        critical.append("no endpoint serves")
    for category, chain in inv.experts.items():
        verdict = expert_verdict(inv, category, lambda node, endpoint: by_endpoint.get((node, endpoint)))
        if verdict.lost is not None:
            critical.append(verdict.lost)
        elif verdict.serving[0] != chain[0]:
            degraded.append(f"{category} falls back to {verdict.serving[0]} ({chain[0]} does not serve)")
    degraded += [f"{r.node}/{r.endpoint} is {r.state} ({r.reason})" for r in results if r.state is not EndpointState.UP]
    if critical:
        return ClusterHealth(prognosis=Prognosis.CRITICAL, reasons=critical + degraded)
    if degraded:
        return ClusterHealth(prognosis=Prognosis.DEGRADED, reasons=degraded)
    return ClusterHealth(prognosis=Prognosis.OPERATIONAL)


class ExpertVerdict(Frozen):
    """A category's experts that serve and can take its requests, in order, and why none does."""

    serving: list[str]
    lost: str | None = Field(None, description="why no expert is left; None while one serves (or none is listed)")


def expert_verdict(
    inv: Inventory, category: Category, result_of: Callable[[str, str], ProbeResult | None]
) -> ExpertVerdict:
    """The one judgement of a category's experts, shared by the sweep's prognosis and `homelab route`.

    Args:
        inv: the cluster: the category's experts and where each is served.
        category: the category judged.
        result_of: (node, endpoint) -> the latest probe result, None when never probed.
    """
    chain = inv.experts.get(category, [])
    needed = NEEDS[category]
    serving: list[str] = []
    unable: list[str] = []
    for alias in chain:
        lacking = None
        for node, endpoint, model in inv.replicas(alias):  # one replica that serves and can is enough
            result = result_of(node.name, endpoint.name)
            if result is None or not result.serving:
                continue
            capabilities = model_capabilities(inv, model, result.capabilities.get(model.name))
            if capabilities.can(needed):
                serving.append(alias)
                break
            lacking = lacking or f"{alias} serves but has no {needed}: {capabilities}"
        else:
            unable += [lacking] if lacking else []
    if serving or not chain:
        return ExpertVerdict(serving=serving)
    why = f"no serving expert for {category}: none of {', '.join(chain)} serves"
    return ExpertVerdict(serving=[], lost=why + (f" ({'; '.join(unable)})" if unable else ""))


def served_capabilities(inv: Inventory, results: list[ProbeResult]) -> dict[str, Capabilities]:
    """Every alias of the cluster file with what it can do, from the file, these results, or its name."""
    by_endpoint = {(r.node, r.endpoint): r for r in results}
    out: dict[str, Capabilities] = {}
    for node, endpoint in inv.endpoints():
        result = by_endpoint.get((node.name, endpoint.name))
        for model in endpoint.models:
            out[model.alias] = model_capabilities(inv, model, result.capabilities.get(model.name) if result else None)
    return out


def _origin(url: str) -> tuple[str, bytes, int | None] | str:
    """What shares a connection pool: scheme, host, port (a URL httpx refuses is its own origin)."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:  # its probe reports the URL as bad
        return url
    return parsed.scheme, parsed.raw_host, parsed.port


async def probe_endpoints(
    inv: Inventory,
    pairs: Sequence[tuple[Node, Endpoint]],
    client: httpx.AsyncClient,
    limits: SweepLimits = DEFAULT_SWEEP_LIMITS,
) -> list[ProbeResult]:
    """Probe `pairs` concurrently, each within its own timeout; results in the same order.

    Forty endpoints behind one reverse proxy share one origin: each probe's requests run one
    after another, so the origin needs one connection per endpoint. A probe waits for its
    origin's turn and a concurrency slot *before* its clock starts, so waiting for others
    never turns into a false timeout; the client's pools (`open_probe_client`, given
    `limits.max_connections_per_origin`) are as large as the origin gate.
    """
    gate = asyncio.Semaphore(limits.max_concurrency)
    counts = Counter(_origin(endpoint.url) for _, endpoint in pairs)
    cap = limits.max_connections_per_origin
    per_origin = {origin: asyncio.Semaphore(min(n, cap)) for origin, n in counts.items()}

    async def one(node: Node, endpoint: Endpoint) -> ProbeResult:
        # The origin first: probes queued behind a busy proxy do not hold concurrency slots.
        async with per_origin[_origin(endpoint.url)], gate:
            return await probe_endpoint(client, node, endpoint, inv.probe_settings(endpoint), limits.probe)

    return list(await asyncio.gather(*(one(node, endpoint) for node, endpoint in pairs)))


async def sweep(
    inv: Inventory,
    client: httpx.AsyncClient,
    limits: SweepLimits = DEFAULT_SWEEP_LIMITS,
    probe_external: bool | None = None,
) -> SweepReport:
    """Probe every endpoint of the inventory concurrently, each within its own timeout.

    External models are listed, and probed only when `probe_external` (None: the cluster
    file's `gateway.probe_external`) says so; see `homelab.health.external`.
    """
    started_at = datetime.now(UTC)
    started = time.perf_counter()
    results, external = await asyncio.gather(
        probe_endpoints(inv, list(inv.endpoints()), client, limits),
        sweep_external(inv, client, probe=probe_external, limits=limits.probe),
    )
    return SweepReport(
        started_at=started_at,
        duration_ms=round((time.perf_counter() - started) * 1000, 1),
        endpoints=results,
        tiers=classify_tiers(inv, results),
        cluster=classify_cluster(inv, results),
        capabilities=served_capabilities(inv, results),
        external=external,
    )
