"""Expert routing: classify a request, then pick the best healthy expert, with fallbacks.

    request.py     an OpenAI-style body reduced to the texts that decide, within a budget
    cues.py        hand-made, language-agnostic cues (code fences, formulas, length)
    features.py    the keys the model reads: char 4-grams, words, bigrams, context, cues
    model.py       the shipped linear model (weights.npz) and its numpy scorer
    classify.py    rules (embeddings endpoint, image part) then the model -> Classification
    health_view.py the history's latest sweep, refreshed by live probes when stale
    choose.py      category -> first serving expert, chat/fast/any fallbacks -> Decision
    route.py       Router: the two together, for one cluster and one view
    batch.py       JSON lines in, JSON lines out, in order, bad lines reported

The model is trained offline by `python -m training.router.train` from generated data in
`training/router/`; nothing is downloaded or trained at run time.
"""

from homelab.router.batch import BadLine, RequestLine, read_request_lines, route_lines
from homelab.router.choose import Candidate, Decision, choose_expert, unrouted
from homelab.router.classify import Classification, Classifier, classify_request, default_classifier
from homelab.router.health_view import (
    HealthSettings,
    HealthSource,
    HealthView,
    Refreshed,
    load_health_view,
    refresh_health_view,
)
from homelab.router.model import ModelError
from homelab.router.request import Conversation, RequestError, read_request
from homelab.router.route import Router, open_router

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
    "ModelError",
    "Refreshed",
    "RequestError",
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
