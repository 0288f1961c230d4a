"""Shared helpers for the router's training data: seeded choice, template filling, roughening.

Real prompts are sloppy: lower case, missing punctuation, typos, "pls", a stray "hey". Every
generated prompt goes through `roughen` with some probability so the model does not learn
that well-formed text belongs to one category. Nothing here reads the development set.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence
from typing import TypeVar

__all__ = ["LANGS", "NAMES", "Gen", "T", "fill", "maybe", "pick", "picks", "roughen", "weighted"]

T = TypeVar("T")
Gen = Callable[[random.Random], str]

NAMES = [
    "Alice",
    "Bob",
    "Carol",
    "Dan",
    "Emma",
    "Farid",
    "Grace",
    "Hiro",
    "Ines",
    "Jonas",
    "Kemal",
    "Lena",
    "Maya",
    "Nils",
    "Olga",
    "Priya",
    "Quentin",
    "Rosa",
    "Sam",
    "Tariq",
    "Uma",
    "Victor",
    "Wen",
    "Yusuf",
    "Zoe",
    "Mark",
    "Lucía",
    "Sven",
    "Aiko",
    "Raj",
    "Mei",
    "Carlos",
    "Jo",
    "Ana",
    "Ben",
    "Cho",
    "Pedro",
]

# name in English, French, German, Spanish, Italian, Portuguese, Chinese
LANGS = [
    ("French", "français", "Französisch", "francés", "francese", "francês", "法语"),
    ("German", "allemand", "Deutsch", "alemán", "tedesco", "alemão", "德语"),
    ("Spanish", "espagnol", "Spanisch", "español", "spagnolo", "espanhol", "西班牙语"),
    ("Italian", "italien", "Italienisch", "italiano", "italiano", "italiano", "意大利语"),
    ("Japanese", "japonais", "Japanisch", "japonés", "giapponese", "japonês", "日语"),
    ("Swedish", "suédois", "Schwedisch", "sueco", "svedese", "sueco", "瑞典语"),
    ("Portuguese", "portugais", "Portugiesisch", "portugués", "portoghese", "português", "葡萄牙语"),
    ("Dutch", "néerlandais", "Niederländisch", "neerlandés", "olandese", "holandês", "荷兰语"),
    ("Russian", "russe", "Russisch", "ruso", "russo", "russo", "俄语"),
    ("Korean", "coréen", "Koreanisch", "coreano", "coreano", "coreano", "韩语"),
    ("English", "anglais", "Englisch", "inglés", "inglese", "inglês", "英语"),
    ("Chinese", "chinois", "Chinesisch", "chino", "cinese", "chinês", "中文"),
]

_SLOT = re.compile(r"\{(\w+)\}")


def pick(rng: random.Random, items: Sequence[T]) -> T:
    """One item, uniformly."""
    return items[rng.randrange(len(items))]


def picks(rng: random.Random, items: Sequence[T], k: int) -> list[T]:
    """`k` distinct items."""
    return rng.sample(list(items), k)


def weighted(rng: random.Random, table: Sequence[tuple[float, T]]) -> T:
    """One item of (weight, item) pairs."""
    total = sum(w for w, _ in table)
    x = rng.random() * total
    for w, item in table:
        x -= w
        if x <= 0:
            return item
    return table[-1][1]


def maybe(rng: random.Random, p: float, text: str, otherwise: str = "") -> str:
    """`text` with probability `p`."""
    return text if rng.random() < p else otherwise


def fill(rng: random.Random, template: str, slots: dict[str, Sequence[str] | Callable[[], str]]) -> str:
    """Replace each {slot} with a pick from its list, or the result of its function."""

    def one(match: re.Match[str]) -> str:
        source = slots[match.group(1)]
        return source() if callable(source) else pick(rng, source)

    return _SLOT.sub(one, template)


_OPENERS = ["hey, ", "hi, ", "ok so ", "quick one: ", "hello! ", "so ", "um ", "question: ", "yo ", "help: "]
_CLOSERS = [" pls", " please", " thanks", " thx", " :)", " 🙏", "!!", " ty", " asap", " lol"]


def _typo(rng: random.Random, text: str) -> str:
    words = text.split(" ")
    candidates = [i for i, w in enumerate(words) if len(w) > 4 and w.isalpha()]
    if not candidates:
        return text
    i = pick(rng, candidates)
    w = words[i]
    j = rng.randrange(1, len(w) - 2)
    kind = rng.random()
    if kind < 0.4:
        w = w[:j] + w[j + 1] + w[j] + w[j + 2 :]
    elif kind < 0.7:
        w = w[:j] + w[j + 1 :]
    else:
        w = w[:j] + w[j] + w[j:]
    words[i] = w
    return " ".join(words)


def roughen(rng: random.Random, text: str, p: float = 0.35) -> str:
    """With probability `p`, make `text` look typed in a hurry (only its first line changes case)."""
    if rng.random() >= p:
        return text
    first, sep, rest = text.partition("\n")
    if rng.random() < 0.5:
        first = first.lower()
    if rng.random() < 0.35:
        first = first.rstrip(".?!")
    if rng.random() < 0.3:
        first = _typo(rng, first)
    if rng.random() < 0.15:
        first = first.replace("'", "")
    if rng.random() < 0.12:
        first = pick(rng, _OPENERS) + first[:1].lower() + first[1:]
    if rng.random() < 0.12 and not sep:
        first += pick(rng, _CLOSERS)
    return first + sep + rest
