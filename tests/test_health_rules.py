"""The health rules, case by case, from tests/cases/health/rules.jsonl.

Each case gives endpoint results (by `NODE/ENDPOINT`; unlisted endpoints are UP) and the
tier states, prognosis and reasons expected. Results are written as `STATE` or
`STATE:reason`; `LOADING` is a SLOW endpoint whose reason is loading. A new rule case is a
new line, not new code.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from homelab.health.probe import EndpointState, ProbeResult, Reason
from homelab.health.sweep import Prognosis, classify_cluster, classify_tiers
from homelab.inventory import Inventory, load_inventory

CASES_DIR = Path(__file__).parent / "cases" / "health"
CASES = [json.loads(line) for line in (CASES_DIR / "rules.jsonl").read_text().splitlines() if line.strip()]
_DEFAULT_REASON = {"UP": Reason.OK, "SLOW": Reason.SLOW, "DOWN": Reason.REFUSED}


def _result(inv: Inventory, node: str, endpoint: str, written: str) -> ProbeResult:
    state, _, reason = written.partition(":")
    if state == "LOADING":
        state, reason = "SLOW", Reason.LOADING.value
    tier = next(n.tier for n in inv.nodes if n.name == node)
    url = next(e.url for n, e in inv.endpoints() if (n.name, e.name) == (node, endpoint))
    kind = next(e.kind for n, e in inv.endpoints() if (n.name, e.name) == (node, endpoint))
    return ProbeResult(
        node=node,
        tier=tier,
        endpoint=endpoint,
        kind=kind,
        url=url,
        state=EndpointState(state),
        reason=Reason(reason) if reason else _DEFAULT_REASON[state],
        latency_ms=1.0,
        checked_at=datetime.now(UTC),
    )


def _results(inv: Inventory, case: dict[str, Any]) -> list[ProbeResult]:
    known = {f"{n.name}/{e.name}" for n, e in inv.endpoints()}
    unknown = set(case["endpoints"]) - known
    assert not unknown, f"case {case['id']} names endpoints the inventory lacks: {sorted(unknown)}"
    return [_result(inv, n.name, e.name, case["endpoints"].get(f"{n.name}/{e.name}", "UP")) for n, e in inv.endpoints()]


def test_case_ids_are_unique() -> None:
    ids = [case["id"] for case in CASES]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("case", CASES, ids=[case["id"] for case in CASES])
def test_health_rule(case: dict[str, Any]) -> None:
    inv = load_inventory(CASES_DIR / case.get("inventory", "cluster.yaml"))
    results = _results(inv, case)
    tiers = {t.name: t.state.value for t in classify_tiers(inv, results)}
    cluster = classify_cluster(inv, results)
    assert tiers | case.get("tiers", {}) == tiers, f"{case['why']}: tiers {tiers}"
    assert cluster.prognosis.value == case["prognosis"], f"{case['why']}: {cluster.reasons}"
    assert (cluster.prognosis is Prognosis.OPERATIONAL) == (not cluster.reasons)
    for wanted in case["reasons"]:
        assert any(wanted in reason for reason in cluster.reasons), f"{wanted!r} not in {cluster.reasons}"
    for unwanted in case.get("not_reasons", []):
        assert not any(unwanted in reason for reason in cluster.reasons), f"{unwanted!r} in {cluster.reasons}"
    if "first_reason" in case:
        assert case["first_reason"] in cluster.reasons[0], cluster.reasons


def test_tier_counts_loading_as_slow() -> None:
    inv = load_inventory(CASES_DIR / "cluster.yaml")
    case = {"id": "counts", "endpoints": {"gpu2/coder": "LOADING", "gpu2/vision": "DOWN"}}
    secondary = next(t for t in classify_tiers(inv, _results(inv, case)) if t.name == "secondary")
    assert (secondary.up, secondary.slow, secondary.down) == (1, 1, 1)
