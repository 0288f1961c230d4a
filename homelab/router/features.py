"""What the classifier sees of a conversation: n-gram keys of the texts, plus hand-made cues.

The keys are plain strings; the model maps the ones it knows to weights. Training
(`training/router/train.py`) and inference call the same `feature_groups`, so the two cannot
drift. Each group is scaled on its own (`Group.normalised`): n-gram groups by one over the
square root of their size, so a long paste does not drown the cues; cues count 1 each.

Why these groups:
- character 3- and 4-grams of the last user message (digits folded to 0) carry meaning across
  languages and spellings (`funct`, `beweis`, `cuánt`, `写一个`) and survive typos;
- word unigrams and bigrams carry the asks (`write a`, `step by`, `in celsius`);
- earlier turns and the system prompt add words in their own namespaces, so the model learns
  how much they count; earlier turns count a second time, in another namespace, when the last
  message is a short follow-up ("and in Swedish?") that cannot decide on its own;
- character bigrams inside runs of CJK characters: Chinese and Japanese write words of one to
  three characters with no spaces (`证明`, `散文`, `確率`), which 4-grams spanning two words miss;
- cues are language-agnostic shapes: code fences, stack traces, operators, formulas, length.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass

from homelab.router.cues import cue_keys, length_units, scan_window
from homelab.router.request import Conversation

__all__ = ["CHAR_SPAN", "MEDIUM_FOLLOWUP_UNITS", "SHORT_FOLLOWUP_UNITS", "Group", "feature_groups", "normalise"]

# Characters of the scanned window that char n-grams read: head and tail.
CHAR_SPAN = (400, 100)
CHAR_SIZES = (4,)
# A last message this short (in words) leans on the earlier turns to be understood; one of
# middling length somewhat (it gets its own namespace, so the model learns how much).
SHORT_FOLLOWUP_UNITS = 9
MEDIUM_FOLLOWUP_UNITS = 24
_SEP = "\x00"  # namespaces word keys; never in normalised text, and no char n-gram holds it
_FOLD = str.maketrans("123456789" + _SEP, "000000000 ")
_WORD = re.compile(r"[^\W\d_]+|\d+|[^\w\s]")
# Ideographs, kana and hangul (as cues.py counts them), two or more in a row.
_CJK_RUN = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]{2,}")
_MAX_WORDS = 200


@dataclass(frozen=True, slots=True)
class Group:
    """One bag of feature keys, scaled together."""

    keys: list[str]
    normalised: bool = True


def normalise(text: str) -> str:
    """Lower case, digits folded to 0, whitespace collapsed: `Port 8080?` -> `port 0000?`."""
    return " ".join(text.lower().translate(_FOLD).split())


def _char_grams(text: str) -> list[str]:
    head, tail = CHAR_SPAN
    if len(text) > head + tail:
        text = text[:head] + " " + text[-tail:]
    padded = f" {text} "
    # zip + join keeps the per-gram loop in C: twice as fast as slicing in a comprehension.
    shifted = [padded[i:] for i in range(max(CHAR_SIZES))]
    grams: list[str] = []
    for size in CHAR_SIZES:
        grams += map("".join, zip(*shifted[:size], strict=False))  # the shortest shift ends the grams
    return grams


def _cjk_bigrams(text: str) -> list[str]:
    grams: list[str] = []
    for run in _CJK_RUN.findall(text):
        grams += map("".join, itertools.pairwise(run))
    return grams


def _words(text: str, prefix: str) -> list[str]:
    return list(map((prefix + _SEP).__add__, _WORD.findall(text)[:_MAX_WORDS]))


def _bigrams(words: list[str]) -> list[str]:
    return list(map(("b" + _SEP).__add__, map(_SEP.join, itertools.pairwise(words))))


def feature_groups(conv: Conversation) -> list[Group]:
    """The feature groups of a chat conversation (vision and embedding are decided by rule).

    Args:
        conv: the request as `read_request` reduced it (texts already within their budget).

    Returns:
        Groups of string keys; unknown keys are simply ignored by the model.
    """
    last = normalise(scan_window(conv.last_user))
    words = _WORD.findall(last)[:_MAX_WORDS]
    groups = [
        Group(_char_grams(last)),
        Group(list(map(("w" + _SEP).__add__, words))),
        Group(_bigrams(words)),
        Group(cue_keys(conv), normalised=False),
    ]
    cjk = _cjk_bigrams(last)
    if cjk:
        groups.append(Group(cjk))
    if conv.context:
        context = normalise(" ".join(conv.context))
        groups.append(Group(_words(context, "c")))
        units = length_units(conv.last_user)
        if units <= SHORT_FOLLOWUP_UNITS:
            groups.append(Group(_words(context, "f")))
        elif units <= MEDIUM_FOLLOWUP_UNITS:
            groups.append(Group(_words(context, "g")))
    if conv.system:
        groups.append(Group(_words(normalise(conv.system), "s")))
    return groups
