"""Expert routing: classify a request, then pick the best healthy expert, with fallbacks.

    request.py     an OpenAI-style body reduced to the texts that decide, within a budget
    cues.py        hand-made, language-agnostic cues (code fences, formulas, length)
    features.py    the keys the model reads: char 4-grams, words, bigrams, context, cues
    model.py       the shipped linear model (weights.npz) and its numpy scorer
    classify.py    rules (embeddings endpoint, image part) then the model -> Classification
    health_view.py the history's latest sweep, refreshed by live probes when stale
    choose.py      category -> first serving expert (replicas in turn), chat/fast/any fallbacks -> Decision
    route.py       Router: the two together, for one cluster and one view
    batch.py       JSON lines in, JSON lines out, in order, bad lines reported

The model is trained offline by `python -m training.router.train` from generated data in
`training/router/`; nothing is downloaded or trained at run time.
"""

from __future__ import annotations

import importlib
from typing import Any

# name -> submodule. Loaded on first use (PEP 562), so that importing one part (the gateway
# hook needs only `classify`) does not import the others and what they depend on.
_EXPORTS = {
    "BadLine": "batch",
    "RequestLine": "batch",
    "read_request_lines": "batch",
    "route_lines": "batch",
    "Candidate": "choose",
    "Decision": "choose",
    "ReplicaTurns": "choose",
    "choose_expert": "choose",
    "unrouted": "choose",
    "Classification": "classify",
    "Classifier": "classify",
    "classify_request": "classify",
    "default_classifier": "classify",
    "HealthSettings": "health_view",
    "HealthSource": "health_view",
    "HealthView": "health_view",
    "Refreshed": "health_view",
    "load_health_view": "health_view",
    "refresh_health_view": "health_view",
    "Conversation": "request",
    "read_request": "request",
    "Router": "route",
    "open_router": "route",
}
__all__ = [
    "BadLine",
    "Candidate",
    "Classification",
    "Classifier",
    "Conversation",
    "Decision",
    "HealthSettings",
    "HealthSource",
    "HealthView",
    "Refreshed",
    "ReplicaTurns",
    "RequestLine",
    "Router",
    "choose_expert",
    "classify_request",
    "default_classifier",
    "load_health_view",
    "open_router",
    "read_request",
    "read_request_lines",
    "refresh_health_view",
    "route_lines",
    "unrouted",
]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'homelab.router' has no attribute {name!r}")
    return getattr(importlib.import_module(f"homelab.router.{_EXPORTS[name]}"), name)
