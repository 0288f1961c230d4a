"""What each served model can do, where that is known from, and what each request category needs.

A request can only go to a model that can serve it: an image needs `vision`, an embeddings
request `embedding`, every other category `completion`. What a model can do is taken from the
first source that knows, most trusted first:

1. `declared`: the cluster file's `capabilities:` on the served model (its owner knows best);
2. `discovered`: what the server itself said at the last sweep (Ollama's `/api/show`
   `capabilities`; llama-server's `/props` modalities and whether it serves `/v1/embeddings`);
3. `name`: a name that says it (`nomic-embed-text` embeds, `llava` sees);
4. `experts`: the expert lists naming it (a model listed only under `embed` is an embedding
   model: the owner said so, in other words);
5. `assumed`: nothing is known, so it is taken for what nearly every served model is, a
   text model that completes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from enum import StrEnum

from pydantic import Field

from homelab.frozen import Frozen
from homelab.inventory.models import Capability, Category, Inventory, ServedModel

__all__ = [
    "NEEDS",
    "Capabilities",
    "CapabilitySource",
    "from_ollama",
    "model_capabilities",
    "name_hint",
]

# The one capability a request of each category needs.
NEEDS: dict[Category, Capability] = {
    Category.CODE: Capability.COMPLETION,
    Category.REASON: Capability.COMPLETION,
    Category.CHAT: Capability.COMPLETION,
    Category.FAST: Capability.COMPLETION,
    Category.VISION: Capability.VISION,
    Category.EMBED: Capability.EMBEDDING,
}
# Ollama's capability words (types/model/capability.go at v0.33.0-rc2) that mean one of ours;
# `insert`, `audio` and `image` (generation) decide no routing here and are dropped.
_OLLAMA_WORDS = {
    "completion": Capability.COMPLETION,
    "vision": Capability.VISION,
    "embedding": Capability.EMBEDDING,
    "tools": Capability.TOOLS,
    "thinking": Capability.REASONING,
}
# Names are matched as words between separators, so `e5` does not match inside `qwen2.5-e5x`.
_EMBEDDING_NAME = re.compile(r"embed|(^|[/:_.-])(bge|e5|gte|minilm)([/:_.-]|$)", re.IGNORECASE)
_VISION_NAME = re.compile(r"llava|moondream|vision|pixtral|minicpm-v|(^|[/:_.-])[a-z0-9.]*vl([/:_.-]|$)", re.IGNORECASE)


class CapabilitySource(StrEnum):
    """Where a model's capabilities were learnt, most trusted first."""

    DECLARED = "declared"
    DISCOVERED = "discovered"
    NAME = "name"
    EXPERTS = "experts"
    ASSUMED = "assumed"


class Capabilities(Frozen):
    """A model's capabilities and their source."""

    have: list[Capability] = Field(description="in the order of the Capability enum")
    source: CapabilitySource

    def can(self, needed: Capability) -> bool:
        return needed in self.have

    def __str__(self) -> str:
        return f"{', '.join(self.have) or 'nothing'} ({self.source})"


def _ordered(found: Iterable[Capability]) -> list[Capability]:
    wanted = set(found)
    return [c for c in Capability if c in wanted]


def from_ollama(words: Sequence[str]) -> list[Capability]:
    """Ollama's `capabilities` words as ours (unknown words dropped)."""
    return _ordered(_OLLAMA_WORDS[w] for w in words if w in _OLLAMA_WORDS)


def name_hint(name: str) -> list[Capability] | None:
    """What a model's name says it does, or None when it says nothing.

    An embedding model only embeds (Ollama answers a chat with it with a 400); a vision model
    also completes.
    """
    if _EMBEDDING_NAME.search(name):
        return [Capability.EMBEDDING]
    if _VISION_NAME.search(name):
        return [Capability.COMPLETION, Capability.VISION]
    return None


def _from_experts(inv: Inventory, alias: str) -> list[Capability] | None:
    needs = {NEEDS[category] for category, chain in inv.experts.items() if alias in chain}
    if Capability.VISION in needs:  # a model that sees also completes
        needs.add(Capability.COMPLETION)
    return _ordered(needs) or None


def model_capabilities(inv: Inventory, model: ServedModel, discovered: Sequence[Capability] | None) -> Capabilities:
    """A served model's capabilities from the most trusted source that knows them (see the module)."""
    if model.capabilities is not None:
        return Capabilities(have=_ordered(model.capabilities), source=CapabilitySource.DECLARED)
    if discovered:
        return Capabilities(have=_ordered(discovered), source=CapabilitySource.DISCOVERED)
    for source, found in (
        (CapabilitySource.NAME, name_hint(model.name) or name_hint(model.alias)),
        (CapabilitySource.EXPERTS, _from_experts(inv, model.alias)),
    ):
        if found:
            return Capabilities(have=found, source=source)
    return Capabilities(have=[Capability.COMPLETION], source=CapabilitySource.ASSUMED)
