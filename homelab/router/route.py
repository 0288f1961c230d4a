"""The router: classify a request, then choose its expert from the cluster's health.

One `Router` holds a cluster, a health view and a classifier; `decide` is synchronous and
cheap (no I/O), so a batch of requests is routed against one consistent picture of the
cluster. Getting that picture (history, live probes) is `open_router`'s job, with the
history store and the probe client passed in.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

import httpx

from homelab.inventory import Inventory
from homelab.router.choose import Decision, ReplicaTurns, choose_expert, unrouted
from homelab.router.classify import Classifier, default_classifier
from homelab.router.health_view import (
    DEFAULT_HEALTH_SETTINGS,
    HealthSettings,
    HealthView,
    Refreshed,
    load_health_view,
    refresh_health_view,
)

if TYPE_CHECKING:
    from homelab.history import HistoryStore

__all__ = ["NO_INVENTORY", "Router", "open_router"]

NO_INVENTORY = "no cluster file given (--inventory): classified only"


class Router:
    """Routes requests for one cluster (or only classifies them, without one)."""

    def __init__(
        self, inv: Inventory | None, view: HealthView | None = None, classifier: Classifier | None = None
    ) -> None:
        self.inv = inv
        self.view = view if view is not None else HealthView()
        self.classifier = classifier or default_classifier()
        self.turns = ReplicaTurns()  # requests for an alias take its serving replicas in turn

    def decide(self, endpoint: str, body: Any, now: datetime | None = None) -> Decision:
        """Classify the request and choose its model.

        Raises:
            RequestError: the body cannot be read.
        """
        classification = self.classifier.classify(endpoint, body)
        if self.inv is None:
            return unrouted(classification, NO_INVENTORY)
        return choose_expert(self.inv, classification, self.view, now, self.turns)


async def open_router(
    inv: Inventory,
    client: httpx.AsyncClient | None,
    store: HistoryStore | None = None,
    settings: HealthSettings = DEFAULT_HEALTH_SETTINGS,
    classifier: Classifier | None = None,
) -> tuple[Router, Refreshed]:
    """A router whose view starts from the history's latest sweep and is refreshed live.

    Args:
        inv: the cluster.
        client: the probe client; None routes on the history alone (no probes).
        store: the history; None starts from an empty view (everything gets probed).
        settings: the TTL of a probe result.
        classifier: the classifier to share (default: the shipped model).

    Returns:
        The router, and what the refresh did (the full sweep to record, if it ran one).

    Raises:
        HistoryError: the history cannot be read.
    """
    view = load_health_view(store) if store is not None else HealthView()
    refreshed = Refreshed(view)
    if client is not None:
        refreshed = await refresh_health_view(inv, view, client, settings)
    return Router(inv, refreshed.view, classifier), refreshed
