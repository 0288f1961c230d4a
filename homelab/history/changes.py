"""What changed since the previous sweep: endpoints that went down or came back, nodes down."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict

from homelab.health.probe import EndpointState, ProbeResult
from homelab.health.sweep import SweepReport

__all__ = [
    "EndpointChange",
    "NodeDown",
    "SweepChanges",
    "compare_with_previous",
    "down_node",
]


class EndpointChange(BaseModel):
    """An endpoint that went DOWN, or came back from DOWN, since the previous sweep."""

    model_config = ConfigDict(frozen=True)

    result: ProbeResult
    previous: EndpointState | None = None

    @property
    def went_down(self) -> bool:
        return self.result.state is EndpointState.DOWN


class NodeDown(BaseModel):
    """A node none of whose endpoints answered, with each endpoint's result."""

    model_config = ConfigDict(frozen=True)

    node: str
    tier: str
    results: list[ProbeResult]
    new: bool = True

    @property
    def summary(self) -> str:
        """One line for a UI: which endpoints failed and why."""
        failures = ", ".join(f"{r.endpoint} {r.reason}" for r in self.results)
        return f"node {self.node} is down: all {len(self.results)} endpoints failed ({failures})"


class SweepChanges(BaseModel):
    """What a sweep says that the previous one did not, for events and triggers."""

    model_config = ConfigDict(frozen=True)

    sweep_id: int
    endpoints: list[EndpointChange]
    nodes_down: list[NodeDown]


def down_node(results: Sequence[ProbeResult], new: bool = True) -> NodeDown | None:
    """The node of `results` (one node's endpoints) when every endpoint is DOWN, else None.

    A node without endpoints is never down: there is nothing to judge it by.
    """
    if not results or any(r.state is not EndpointState.DOWN for r in results):
        return None
    return NodeDown(node=results[0].node, tier=results[0].tier, results=list(results), new=new)


def compare_with_previous(
    sweep_id: int, previous: dict[tuple[str, str], ProbeResult], report: SweepReport
) -> SweepChanges:
    """Endpoints that changed between DOWN and not DOWN, and nodes that are wholly down.

    An endpoint with no previous state (the first sweep, or new in the inventory) counts as
    not DOWN before: seeing it DOWN for the first time is news, seeing it UP is not.
    A node that is down is reported on every sweep, with `new` telling whether it was
    not yet wholly down in the previous sweep, so a trigger can react to the first sighting
    or keep retrying while the node stays down.
    """
    changes: list[EndpointChange] = []
    by_node: dict[str, list[ProbeResult]] = {}
    for result in report.endpoints:
        by_node.setdefault(result.node, []).append(result)
        before = previous.get((result.node, result.endpoint))
        was_down = before is not None and before.state is EndpointState.DOWN
        if was_down != (result.state is EndpointState.DOWN):
            changes.append(EndpointChange(result=result, previous=before.state if before else None))
    nodes_down: list[NodeDown] = []
    for node, results in by_node.items():
        node_before = [p for (n, _), p in previous.items() if n == node]
        if (down := down_node(results, new=down_node(node_before) is None)) is not None:
            nodes_down.append(down)
    return SweepChanges(sweep_id=sweep_id, endpoints=changes, nodes_down=nodes_down)
