"""Category -> the best healthy expert that can serve the request, with the ordered fallbacks and the reason.

The order is the cluster file's promise: `experts.<category>` lists aliases best first, and
the first one whose endpoint serves (UP, or merely slow; see `ProbeResult.serving`) and that
can take the request wins. When none of them serves, the request is still better answered
than refused: the chat experts are general, the fast ones at least answer; then any model
that serves. But only by a model that can serve it (`homelab.inventory.capabilities`): an
image needs `vision`, an embeddings request `embedding` (vectors from another model live in
another space), every other request `completion`. When no such model serves there is no
model, and the reason is the sweep's own verdict on the category (`expert_verdict`).

An alias served by several endpoints (replicas) serves while one of them does; requests are
spread over the replicas that serve and can take them, round-robin in file order
(`ReplicaTurns`: deterministic, so a test or a batch sees the same spread every time).
"""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field

from homelab.health.probe import EndpointState
from homelab.health.sweep import expert_verdict
from homelab.inventory import Capability, Category, Endpoint, Inventory, Node, ServedModel
from homelab.inventory.capabilities import NEEDS, Capabilities, model_capabilities
from homelab.redact import redact_url
from homelab.router.classify import Classification
from homelab.router.health_view import HealthSource, HealthView

__all__ = ["ANY_MODEL", "FALLBACK_CATEGORIES", "Candidate", "Decision", "ReplicaTurns", "choose_expert", "unrouted"]

FALLBACK_CATEGORIES = (Category.CHAT, Category.FAST)
ANY_MODEL = "any"  # the `chain` of a candidate that is in no expert list of the fallback path


class Candidate(BaseModel):
    """One alias the router considered, in order, and what it found."""

    model_config = ConfigDict(frozen=True)

    alias: str
    chain: str = Field(description="the expert list it came from: a category, or 'any'")
    node: str | None = None
    endpoint: str | None = None
    url: str | None = None
    state: EndpointState | None = None
    serving: bool = False
    capabilities: Capabilities | None = Field(None, description="what the model can do, and where that is known from")
    capable: bool = Field(False, description="it can take this request (has the capability the request needs)")
    replicas: int = Field(1, description="endpoints serving this alias; node/endpoint/url name the one picked")
    note: str = Field(description="why it serves or not, for people")


class ReplicaTurns:
    """Whose turn it is among each alias's serving replicas: round-robin, starting at the first."""

    def __init__(self) -> None:
        self._turns: dict[str, int] = {}

    def peek(self, alias: str) -> int:
        """The turn the next request for `alias` takes (taken from it modulo its serving replicas)."""
        return self._turns.get(alias, 0)

    def advance(self, alias: str) -> None:
        """`alias` served a request: the next one goes to its next replica."""
        self._turns[alias] = self._turns.get(alias, 0) + 1


class Decision(BaseModel):
    """Where a request goes, and why: what `homelab route` prints and `--json` dumps."""

    model_config = ConfigDict(frozen=True)

    category: Category | None
    confidence: float | None = None
    basis: str = Field("", description="what decided the category")
    needs: Capability | None = Field(None, description="the capability a model needs to take this request")
    model: str | None = Field(None, description="the chosen alias; None when nothing serves")
    url: str | None = Field(None, description="the chosen endpoint's URL")
    node: str | None = None
    endpoint: str | None = None
    fallbacks: list[str] = Field(default_factory=list, description="aliases that serve, to try next, in order")
    reason: str
    health_age_s: float | None = Field(None, description="age of the health data the choice rests on")
    health_source: HealthSource | None = None
    candidates: list[Candidate] = Field(default_factory=list)


def _order(inv: Inventory, category: Category) -> list[tuple[str, str]]:
    """(alias, chain) pairs: the category's experts, then chat's and fast's, then every model.

    Embeddings go to the embed experts only: vectors from another model live in another space,
    so an index built with one cannot be searched with another's; the list is the owner's word
    on which models share one.
    """
    seen: set[str] = set()
    out: list[tuple[str, str]] = []
    chains = (
        [category, *(c for c in FALLBACK_CATEGORIES if c != category)] if category is not Category.EMBED else [category]
    )
    for chain in chains:
        for alias in inv.experts.get(chain, []):
            if alias not in seen:
                seen.add(alias)
                out.append((alias, chain.value))
    if category is Category.EMBED:
        return out
    for _, endpoint in inv.endpoints():
        for served in endpoint.models:
            if served.alias not in seen:
                seen.add(served.alias)
                out.append((served.alias, ANY_MODEL))
    return out


def _replica(
    inv: Inventory, view: HealthView, alias: str, needed: Capability, turn: int
) -> tuple[Node, Endpoint, ServedModel, int, str]:
    """The replica of `alias` to show: the turn's one among those that serve and can, else the
    first that serves, else the first; with the count of replicas and a note on the others."""
    replicas = inv.replicas(alias)
    able, serving = [], []
    for replica in replicas:
        node, endpoint, model = replica
        result = view.result(node.name, endpoint.name)
        if result is not None and result.serving:
            serving.append(replica)
            if model_capabilities(inv, model, result.capabilities.get(model.name)).can(needed):
                able.append(replica)
    picked = able[turn % len(able)] if able else (serving or replicas)[0]
    if len(replicas) == 1:
        return (*picked, 1, "")
    index = replicas.index(picked) + 1
    return (*picked, len(replicas), f"replica {index} of {len(replicas)} ({len(able)} serve and can take it); ")


def _candidate(
    inv: Inventory, view: HealthView, alias: str, chain: str, needed: Capability, now: datetime, turn: int = 0
) -> Candidate:
    if not inv.replicas(alias):
        return Candidate(alias=alias, chain=chain, note="no endpoint of the cluster serves this alias")
    node, endpoint, model, count, replica_note = _replica(inv, view, alias, needed, turn)
    where = {
        "alias": alias,
        "chain": chain,
        "node": node.name,
        "endpoint": endpoint.name,
        "url": redact_url(endpoint.url),
        "replicas": count,
    }  # shown and dumped, never used to connect
    result = view.result(node.name, endpoint.name)
    capabilities = model_capabilities(inv, model, result.capabilities.get(model.name) if result else None)
    able = {"capabilities": capabilities, "capable": capabilities.can(needed)}
    if result is None:
        return Candidate(**where, **able, note=f"{node.name}/{endpoint.name} has never been probed")
    age = view.age_s(node.name, endpoint.name, now) or 0.0
    why = result.detail or result.reason.value
    note = f"{replica_note}{node.name}/{endpoint.name} is {result.state.value} ({why}), checked {age:.0f} s ago"
    if result.serving and not capabilities.can(needed):
        note = f"has no {needed}: {capabilities}; {note}"
    return Candidate(**where, **able, state=result.state, serving=result.serving, note=note)


def _reason(category: Category, chosen: Candidate, skipped: list[Candidate], configured: bool) -> str:
    def listing(items: list[Candidate]) -> str:
        return "; ".join(f"{c.alias}: {c.note}" for c in items)

    own = [c for c in skipped if c.chain == category.value]
    if chosen.chain == category.value:
        if not own:
            return f"{chosen.alias} is the first {category} expert and it serves ({chosen.note})"
        return f"{chosen.alias} is the first {category} expert that serves; skipped {listing(own)}"
    lead = f"no {category} expert serves ({listing(own)})" if configured else f"no {category} experts are configured"
    if chosen.chain == ANY_MODEL:
        return f"{lead}, nor a chat or fast expert; {chosen.alias} is the first model of the cluster that serves"
    return f"{lead}; falling back to the {chosen.chain} expert {chosen.alias}"


def choose_expert(
    inv: Inventory,
    classification: Classification,
    view: HealthView,
    now: datetime | None = None,
    turns: ReplicaTurns | None = None,
) -> Decision:
    """Pick the model for a classified request from what the health view says serves.

    Args:
        inv: the cluster: experts per category and where each alias is served.
        classification: the request's category (see `classify.py`).
        view: endpoint health (see `health_view.py`); unprobed endpoints do not serve.
        now: the time ages are measured at.
        turns: the replicas' round-robin, advanced for the chosen alias; None: always the
            first replica that serves.

    Returns:
        A decision; `model` is None when nothing serves, and `reason` says why.
    """
    now = now or datetime.now(UTC)
    category = classification.category
    needed = NEEDS[category]
    order = _order(inv, category)
    candidates = [_candidate(inv, view, a, chain, needed, now, turns.peek(a) if turns else 0) for a, chain in order]
    serving = [c for c in candidates if c.serving and c.capable]
    base = {
        "category": category,
        "confidence": classification.confidence,
        "basis": classification.basis,
        "needs": needed,
        "candidates": candidates,
    }
    if not serving:
        age = view.newest_age_s(now)
        reason = _no_model(inv, category, view, candidates)
        return Decision(**base, reason=reason, health_age_s=None if age is None else round(age, 1))
    chosen = serving[0]
    if turns is not None:
        turns.advance(chosen.alias)
    skipped = candidates[: candidates.index(chosen)]
    node, endpoint = chosen.node or "", chosen.endpoint or ""  # a serving candidate always has both
    return Decision(
        **base,
        model=chosen.alias,
        url=chosen.url,
        node=node,
        endpoint=endpoint,
        fallbacks=[c.alias for c in serving[1:]],
        reason=_reason(category, chosen, skipped, bool(inv.experts.get(category))),
        health_age_s=round(view.age_s(node, endpoint, now) or 0.0, 1),
        health_source=view.source(node, endpoint),
    )


def _no_model(inv: Inventory, category: Category, view: HealthView, candidates: list[Candidate]) -> str:
    """Why no model can take the request; when some serve but cannot, the sweep's verdict first."""
    if not candidates and category is not Category.EMBED:
        return "the cluster file lists no models"
    if not len(view):
        return "no model serves: no endpoint has been probed"
    if category is Category.EMBED:
        lost = expert_verdict(inv, category, view.result).lost or "no embed experts are configured"
        return f"{lost}; embeddings go only to the embed experts (another model's vectors live in another space)"
    unable = [c for c in candidates if c.serving]
    if not unable:
        return "no model serves: every endpoint is down or unprobed"
    lost = expert_verdict(inv, category, view.result).lost or f"no {category} experts are configured"
    listing = ", ".join(f"{c.alias} can do {c.capabilities}" for c in unable)
    return f"{lost}; no serving model can take {category} requests, which need {NEEDS[category]}: {listing}"


def unrouted(classification: Classification, reason: str) -> Decision:
    """A decision with a category but no model: no cluster file, or no way to reach it."""
    return Decision(
        category=classification.category,
        confidence=classification.confidence,
        basis=classification.basis,
        needs=NEEDS[classification.category],
        reason=reason,
    )
