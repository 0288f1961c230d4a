"""Near-duplicate search between the training prompts and an evaluation set.

A measured accuracy means something only if the evaluation prompts are not (nearly) in the
training data. This finds, for each evaluation prompt, the training prompt sharing the
largest fraction of its word 3-grams (an inverted index, so it stays fast for thousands of
prompts), and reports those above a threshold.

    python -m training.router.overlap ../shared/router-dev.jsonl [--threshold 0.6]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from training.router.generate import generate

__all__ = ["last_user_text", "main", "near_duplicates", "shingles"]

_WORD = re.compile(r"\w+")


def last_user_text(body: Any) -> str:
    """The last user message's text of a chat body ('' when there is none)."""
    messages = body.get("messages") if isinstance(body, dict) else None
    for message in reversed(messages or []):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def shingles(text: str, n: int = 3) -> set[tuple[str, ...]]:
    """Word n-grams of the lower-cased text (the whole text when it is shorter than n words)."""
    words = _WORD.findall(text.lower())
    if len(words) < n:
        return {tuple(words)} if words else set()
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def near_duplicates(
    train: list[str], test: list[tuple[str, str]], threshold: float, min_shared: int = 1
) -> list[dict[str, Any]]:
    """(id, text) test prompts whose best training match covers at least `threshold` of their
    shingles, and at least `min_shared` of them (a common phrase such as "what are the pros and
    cons of" covers most of a short prompt without making it a copy)."""
    index: dict[tuple[str, ...], list[int]] = defaultdict(list)
    for i, text in enumerate(train):
        for s in shingles(text):
            index[s].append(i)
    found = []
    for test_id, text in test:
        mine = shingles(text)
        if not mine:
            continue
        hits: Counter[int] = Counter()
        for s in mine:
            hits.update(index.get(s, ()))
        if not hits:
            continue
        best, count = hits.most_common(1)[0]
        if count / len(mine) >= threshold and count >= min_shared:
            found.append(
                {"id": test_id, "overlap": round(count / len(mine), 2), "test": text[:120], "train": train[best][:120]}
            )
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sets", type=Path, nargs="+", help="labelled JSON lines to check against the training data")
    parser.add_argument("--threshold", type=float, default=0.6)
    args = parser.parse_args(argv)
    train = [last_user_text(row["body"]) for row in generate()]
    total = 0
    for path in args.sets:
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        dupes = near_duplicates(train, [(r["id"], last_user_text(r["body"])) for r in rows], args.threshold)
        total += len(dupes)
        print(f"{path}: {len(dupes)} of {len(rows)} prompts overlap a training prompt by >= {args.threshold:.0%}")
        for d in dupes:
            print(f"  {d['id']} ({d['overlap']:.0%}): {d['test']!r}\n      ~ {d['train']!r}")
    return 1 if total else 0


if __name__ == "__main__":
    sys.exit(main())
