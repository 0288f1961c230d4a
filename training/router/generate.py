"""Generate the router's training set: OpenAI-style chat requests with a label each.

Deterministic: one seed gives the same requests, byte for byte, so the shipped weights can be
traced to their data (`train.py` records the data's SHA-256 in the weights file). The
development set (`../shared/router-dev.jsonl`) is never read here; it is for measuring only.

    python -m training.router.generate [--per-label 4000] [--seed 5] [--out FILE]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
from pathlib import Path
from typing import Any

from training.router.chat import details
from training.router.code import environment
from training.router.common import Gen, roughen, weighted
from training.router.dialogue import LABELS, assistant_reply, followup, prompt, system_prompt
from training.router.fast import CLOSINGS
from training.router.framing import frame
from training.router.intl import intl_prompt

__all__ = ["DEFAULT_PER_LABEL", "DEFAULT_SEED", "data_digest", "generate", "main"]

DEFAULT_SEED = 5
DEFAULT_PER_LABEL = 4000
P_SYSTEM = 0.35
# How the last user message relates to what came before.
_SHAPES = [(0.68, "single"), (0.14, "switch"), (0.13, "followup"), (0.05, "closing")]


# Details people add to an ask, with digits in them, so that digits alone do not mean math.
_DETAILS: dict[str, Gen] = {"code": environment, "chat": details}
P_DETAIL = 0.3
P_FRAME = {"code": 0.3, "reason": 0.3, "chat": 0.35, "fast": 0.04}
# Share of asks drawn from the multilingual bank (the category banks hold some languages too).
P_INTL = 0.4


def _ask(rng: random.Random, label: str) -> str:
    if rng.random() < P_INTL:
        return roughen(rng, intl_prompt(rng, label))
    text = prompt(rng, label)
    extra = _DETAILS.get(label)
    if extra is not None and rng.random() < P_DETAIL:
        head, sep, rest = text.partition("\n")
        text = head + extra(rng) + sep + rest
    if rng.random() < P_FRAME[label]:
        text = frame(rng, label, text)
    return roughen(rng, text)


def _turns(rng: random.Random, last: str, context_label: str | None) -> list[dict[str, str]]:
    messages: list[dict[str, str]] = []
    if context_label is not None:
        for _ in range(1 if rng.random() < 0.75 else 2):
            label = context_label if rng.random() < 0.8 else rng.choice(LABELS)
            messages.append({"role": "user", "content": _ask(rng, label)})
            messages.append({"role": "assistant", "content": assistant_reply(rng, label)})
        # The turn just before the last one is what a follow-up refers to.
        messages[-2]["content"] = _ask(rng, context_label)
        messages[-1]["content"] = assistant_reply(rng, context_label)
    messages.append({"role": "user", "content": last})
    return messages


def _example(rng: random.Random, label: str) -> list[dict[str, str]]:
    shape = weighted(rng, _SHAPES)
    if shape == "closing" and label != "fast":
        shape = "switch"
    if shape == "single":
        messages = _turns(rng, _ask(rng, label), None)
    elif shape == "switch":
        messages = _turns(rng, _ask(rng, label), rng.choice(LABELS))
    elif shape == "followup":
        messages = _turns(rng, roughen(rng, followup(rng, label)), label)
    else:
        messages = _turns(rng, rng.choice(CLOSINGS), rng.choice(LABELS))
    if rng.random() < P_SYSTEM:
        messages.insert(0, {"role": "system", "content": system_prompt(rng)})
    return messages


def generate(per_label: int = DEFAULT_PER_LABEL, seed: int = DEFAULT_SEED) -> list[dict[str, Any]]:
    """`per_label` distinct requests for each of code, reason, chat and fast, in a fixed order."""
    rng = random.Random(seed)
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    for label in LABELS:
        made, tries = 0, 0
        while made < per_label and tries < per_label * 20:
            tries += 1
            messages = _example(rng, label)
            key = json.dumps(messages, ensure_ascii=False, sort_keys=True)
            if key in seen:
                continue
            seen.add(key)
            made += 1
            rows.append(
                {
                    "id": f"gen-{label}-{made:05d}",
                    "endpoint": "/v1/chat/completions",
                    "body": {"model": "auto", "messages": messages},
                    "label": label,
                }
            )
    return rows


def data_digest(rows: list[dict[str, Any]]) -> str:
    """SHA-256 of the rows as JSON lines: what the weights file records."""
    digest = hashlib.sha256()
    for row in rows:
        digest.update(json.dumps(row, ensure_ascii=False, sort_keys=True).encode("utf-8") + b"\n")
    return digest.hexdigest()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-label", type=int, default=DEFAULT_PER_LABEL)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--out", type=Path, help="write JSON lines here (default: stdout)")
    args = parser.parse_args(argv)
    rows = generate(args.per_label, args.seed)
    text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    if args.out:
        args.out.write_text(text, encoding="utf-8")
        print(f"{len(rows)} requests, sha256 {data_digest(rows)} -> {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(text)


if __name__ == "__main__":
    main()
