"""Request -> category: two rules, then the linear model for everything the rules leave.

The rules come first because they are facts, not guesses: a request to an embeddings
endpoint wants an embedding model whatever its input says, and a conversation whose user sent
an image needs a model that can see it, whatever the text asks. Only chat text is left to
the model, which tells code, reason, chat and fast apart (see `features.py`).

Everything is offline and deterministic: the weights ship in this package and nothing is
downloaded or trained at run time. The model loads on first use, not at import.
"""

from __future__ import annotations

import functools
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from homelab.inventory import Category
from homelab.router.features import feature_groups
from homelab.router.model import LinearModel, load_model
from homelab.router.request import DEFAULT_TEXT_BUDGET, Conversation, TextBudget, read_request

__all__ = ["Classification", "Classifier", "classify_request", "default_classifier"]


class Classification(BaseModel):
    """A request's category, how sure the classifier is, and why."""

    model_config = ConfigDict(frozen=True)

    category: Category
    confidence: float = Field(ge=0.0, le=1.0, description="probability of the category; 1.0 for a rule")
    scores: dict[Category, float] = Field(default_factory=dict, description="every model class's probability")
    basis: str = Field(description="the rule that decided, or the model's top two classes")
    truncated: bool = Field(False, description="the prompt was longer than the text budget; its middle was skipped")


class Classifier:
    """Classifies requests with one loaded model; cheap to call, safe to share between threads."""

    def __init__(self, model: LinearModel | None = None, budget: TextBudget = DEFAULT_TEXT_BUDGET) -> None:
        self.model = model if model is not None else load_model()
        self.budget = budget
        self._classes = tuple(Category(c) for c in self.model.classes)

    def classify(self, endpoint: str, body: Any) -> Classification:
        """Classify an OpenAI-style request.

        Raises:
            RequestError: the body cannot be read (see `read_request`).
        """
        return self.classify_conversation(read_request(endpoint, body, self.budget))

    def classify_conversation(self, conv: Conversation) -> Classification:
        """Classify an already-read conversation."""
        if conv.embedding:
            return Classification(category=Category.EMBED, confidence=1.0, basis="embeddings endpoint")
        if conv.has_image:
            return Classification(category=Category.VISION, confidence=1.0, basis="a user message carries an image")
        probs = self.model.probabilities(feature_groups(conv))
        ranked = sorted(zip(self._classes, probs.tolist(), strict=True), key=lambda cp: -cp[1])
        (best, p_best), (second, p_second) = ranked[0], ranked[1]
        return Classification(
            category=best,
            confidence=round(p_best, 4),
            scores={c: round(p, 4) for c, p in ranked},
            basis=f"text model: {best} {p_best:.2f}, then {second} {p_second:.2f}",
            truncated=conv.truncated,
        )


@functools.cache
def default_classifier() -> Classifier:
    """The classifier with the shipped weights, loaded once per process on first use."""
    return Classifier()


def classify_request(endpoint: str, body: Any) -> Classification:
    """Classify a request with the shipped model (see `Classifier.classify`)."""
    return default_classifier().classify(endpoint, body)
