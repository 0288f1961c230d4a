"""The router's view of endpoint health: the latest sweep from the history, refreshed live when stale.

Why not probe on every request: a probe costs a round trip (seconds for a dead host), a
request must be routed in microseconds, and the scheduled sweep already writes what it found
to the history. So the view starts from the history's latest sweep; only results older than
a TTL (or endpoints the history has never seen) are probed again, all at once. When every
endpoint is stale, that is a full sweep, handed back so the caller records it in the history
like any other (the next `route` then starts from it).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING

import httpx
from pydantic import BaseModel, ConfigDict, Field

from homelab.health.probe import ProbeResult
from homelab.health.sweep import DEFAULT_SWEEP_LIMITS, SweepLimits, SweepReport, probe_endpoints, sweep
from homelab.inventory import Endpoint, Inventory, Node

if TYPE_CHECKING:  # the store is passed in; routing itself never needs SQLAlchemy's tables
    from homelab.history import HistoryStore

__all__ = [
    "DEFAULT_HEALTH_SETTINGS",
    "HealthSettings",
    "HealthSource",
    "HealthView",
    "Refreshed",
    "load_health_view",
    "refresh_health_view",
]

log = logging.getLogger(__name__)
_Key = tuple[str, str]


class HealthSource(StrEnum):
    """Where a result in the view came from."""

    HISTORY = "history"
    LIVE = "live"


class HealthSettings(BaseModel):
    """How fresh the router wants its health data."""

    model_config = ConfigDict(frozen=True)

    ttl_s: float = Field(60.0, ge=0, description="seconds a probe result stays fresh; older ones are probed again")


DEFAULT_HEALTH_SETTINGS = HealthSettings()


class HealthView:
    """A probe result per (node, endpoint), with where it came from. Immutable: refreshing
    returns a new view."""

    def __init__(
        self, results: Mapping[_Key, ProbeResult] | None = None, sources: Mapping[_Key, HealthSource] | None = None
    ) -> None:
        self._results = dict(results or {})
        self._sources = {key: (sources or {}).get(key, HealthSource.HISTORY) for key in self._results}

    def __len__(self) -> int:
        return len(self._results)

    def result(self, node: str, endpoint: str) -> ProbeResult | None:
        """The latest result for an endpoint, if any."""
        return self._results.get((node, endpoint))

    def source(self, node: str, endpoint: str) -> HealthSource | None:
        """Whether the endpoint's result came from the history or a live probe."""
        return self._sources.get((node, endpoint))

    def age_s(self, node: str, endpoint: str, now: datetime) -> float | None:
        """Seconds since the endpoint was last checked; None when it never was."""
        found = self._results.get((node, endpoint))
        return None if found is None else max(0.0, (now - found.checked_at).total_seconds())

    def newest_age_s(self, now: datetime) -> float | None:
        """Seconds since the most recent check of any endpoint; None for an empty view."""
        if not self._results:
            return None
        return max(0.0, (now - max(r.checked_at for r in self._results.values())).total_seconds())

    def stale(self, inv: Inventory, ttl_s: float, now: datetime) -> list[tuple[Node, Endpoint]]:
        """The inventory's endpoints with no result, or one older than `ttl_s`."""
        out = []
        for node, endpoint in inv.endpoints():
            age = self.age_s(node.name, endpoint.name, now)
            if age is None or age > ttl_s:
                out.append((node, endpoint))
        return out

    def updated(self, results: list[ProbeResult], source: HealthSource) -> HealthView:
        """A new view with `results` replacing what this one knew of their endpoints."""
        merged = dict(self._results)
        sources = dict(self._sources)
        for r in results:
            merged[(r.node, r.endpoint)] = r
            sources[(r.node, r.endpoint)] = source
        return HealthView(merged, sources)


def load_health_view(store: HistoryStore) -> HealthView:
    """The view the history's latest sweep gives (empty before the first sweep).

    Raises:
        HistoryError: the history cannot be read.
    """
    return HealthView(store.latest_states())


@dataclass(frozen=True)
class Refreshed:
    """A refreshed view, and the full sweep behind it when every endpoint was stale (the
    caller records it in the history: a sweep is a sweep, whoever ran it)."""

    view: HealthView
    sweep: SweepReport | None = None
    probed: int = 0


async def refresh_health_view(
    inv: Inventory,
    view: HealthView,
    client: httpx.AsyncClient,
    settings: HealthSettings = DEFAULT_HEALTH_SETTINGS,
    limits: SweepLimits = DEFAULT_SWEEP_LIMITS,
    now: datetime | None = None,
) -> Refreshed:
    """Probe the endpoints whose results are stale, concurrently; never raises for a bad endpoint.

    Args:
        inv: the cluster; only its endpoints are probed.
        view: what is known already (usually `load_health_view`).
        client: the probe client (see `homelab.health.http.open_probe_client`).
        settings: the TTL.
        limits: concurrency and probe limits, as for a sweep.
        now: the time staleness is judged at (tests pin it).
    """
    stale = view.stale(inv, settings.ttl_s, now or datetime.now(UTC))
    if not stale:
        return Refreshed(view)
    if len(stale) == sum(1 for _ in inv.endpoints()):
        report = await sweep(inv, client, limits)
        return Refreshed(view.updated(report.endpoints, HealthSource.LIVE), report, len(stale))
    results = await probe_endpoints(inv, stale, client, limits)
    log.debug("probed %d stale endpoints", len(results))
    return Refreshed(view.updated(results, HealthSource.LIVE), None, len(results))
