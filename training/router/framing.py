"""Framing around an ask: the context sentences and sign-offs people wrap their requests in.

Templates alone make every category's prompts a typical length (a poem request is short, a
word problem is long), and a linear model then learns length instead of meaning. Framing
sentences lengthen prompts of every category alike; most come from one shared pool so they
carry no label of their own, a few are typical of one category.
"""

from __future__ import annotations

import random

from training.router.common import pick

__all__ = ["frame"]

_SHARED_BEFORE = [
    "Okay, here's my situation.",
    "I've been going back and forth on this for a while.",
    "Quick context first.",
    "This might be a dumb question, but here goes.",
    "My friend and I disagree about this, so settle it:",
    "I'm not a native speaker, sorry for mistakes.",
    "Hope you can help, I've been stuck all evening.",
    "I asked somewhere else and got confusing answers.",
    "Bear with me, this is a bit long.",
    "So, random thing:",
    "For context, I'm doing this for my family.",
    "I tried figuring this out myself first.",
    "Hi there!",
    "Long time lurker, first question.",
    "Not urgent, just curious.",
    "I need this for tomorrow morning.",
]
_SHARED_AFTER = [
    "What do you think?",
    "Any thoughts?",
    "Can you help?",
    "Thanks in advance!",
    "Be honest.",
    "Take your time.",
    "If that matters, I'm fairly new to all of this.",
    "Please keep it clear.",
    "What would you do in my place?",
    "Appreciate it!",
    "Does that make sense?",
    "I'd love your take on it.",
    "Let me know if you need more details.",
    "Feel free to ask me questions first.",
    "Sorry if this is long.",
    "Is that doable?",
]
_OWN_BEFORE = {
    "chat": [
        "My partner and I have been talking about this a lot.",
        "I'm a nurse working night shifts.",
        "We just moved and everything feels new.",
        "I want this to feel personal, not generic.",
        "It's for someone really important to me.",
    ],
    "code": [
        "At work we maintain a legacy app nobody understands.",
        "Context: small homelab, three nodes.",
        "I'm learning to program on my own.",
        "This is for a side project.",
        "Our CI started failing this morning.",
    ],
    "reason": [
        "This came up in a job interview.",
        "My kid brought this home from school.",
        "I saw this puzzle online.",
        "Our teacher gave us this as a challenge.",
        "I keep getting a different answer than the book.",
    ],
}
_OWN_AFTER = {
    "chat": [
        "What would you suggest?",
        "How would you approach it?",
        "Make it sound like me, casual.",
        "Go into detail.",
    ],
    "code": ["What am I doing wrong?", "Any idea?", "Best practices welcome.", "It needs to run unattended."],
    "reason": [
        "I want to understand it, not just the answer.",
        "Where does my reasoning go wrong?",
        "Is there a neat trick?",
    ],
}


def frame(rng: random.Random, label: str, text: str) -> str:
    """`text` with a sentence before and/or after it (only its first line gets the prefix)."""
    own_before, own_after = _OWN_BEFORE.get(label, []), _OWN_AFTER.get(label, [])
    before = after = ""
    if rng.random() < 0.6:
        before = pick(rng, own_before) if own_before and rng.random() < 0.3 else pick(rng, _SHARED_BEFORE)
    if rng.random() < 0.6:
        after = pick(rng, own_after) if own_after and rng.random() < 0.3 else pick(rng, _SHARED_AFTER)
    if not before and not after:
        after = pick(rng, _SHARED_AFTER)
    out = f"{before} {text}" if before else text
    return f"{out}\n\n{after}" if "\n" in text and after else (f"{out} {after}" if after else out)
