"""Accuracy and speed of the request classifier (homelab.router), on labelled JSON-lines sets.

    python benchmarks/router_bench.py [--data ../shared/router-dev.jsonl] [--data FILE ...]
                                      [--rounds 20] [--json]

Each line of a set is {"id", "endpoint", "body", "label"}, and optionally "lang". The default set
is the development set beside the repository (`../shared/router-dev.jsonl`), which the training
never reads; `tests/cases/router/heldout*.jsonl` are hand-written ones, and `heldout_intl.jsonl`
holds nine languages, each row tagged with its "lang".

Measured:
    accuracy   per category and overall, per language where rows carry "lang", and the confusion
               matrix (rows: label, columns: guess)
    latency    one `Classifier.classify(endpoint, body)` call, the whole classification step
               (reading the body, features, model, result object), per request, over --rounds
               passes of every set: median, p99 and max of wall time, and of the thread's CPU
               time (other processes on a busy machine stretch wall time, not CPU time)
    big        a 1 MB prompt, classified 20 times (the text budget keeps it bounded)
    memory     peak RSS of this process after loading the model and running everything
    load       the weights file's load time
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from homelab.inventory import Category  # noqa: E402
from homelab.router.classify import Classifier  # noqa: E402
from homelab.router.model import load_model  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared" / "router-dev.jsonl"
CATEGORIES = [c.value for c in Category]


def _read(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def accuracy(clf: Classifier, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Overall and per-category accuracy, the confusion matrix, and the misses."""
    confusion: Counter[tuple[str, str]] = Counter()
    by_language: dict[str, Counter[str]] = {}
    misses = []
    for row in rows:
        guess = clf.classify(row["endpoint"], row["body"]).category.value
        confusion[(row["label"], guess)] += 1
        if "lang" in row:
            by_language.setdefault(row["lang"], Counter())[row["label"] + ("" if guess == row["label"] else "!")] += 1
        if guess != row["label"]:
            misses.append({"id": row["id"], "label": row["label"], "guess": guess})
    per = {}
    for cat in CATEGORIES:
        total = sum(n for (label, _), n in confusion.items() if label == cat)
        if total:
            per[cat] = {"n": total, "accuracy": round(confusion[(cat, cat)] / total, 4)}
    right = sum(confusion[(c, c)] for c in CATEGORIES)
    return {
        "n": len(rows),
        "accuracy": round(right / len(rows), 4),
        "per_category": per,
        "confusion": {
            label: {guess: confusion[(label, guess)] for guess in CATEGORIES} for label in CATEGORIES if label in per
        },
        "per_language": {lang: _language_figures(counts) for lang, counts in by_language.items()},
        "misses": misses,
    }


def _language_figures(counts: Counter[str]) -> dict[str, Any]:
    """One language's accuracy overall and per category, from counts of `label` (right) and `label!` (wrong)."""
    right = {cat: counts[cat] for cat in CATEGORIES if counts[cat] or counts[cat + "!"]}
    total = {cat: counts[cat] + counts[cat + "!"] for cat in right}
    return {
        "n": sum(total.values()),
        "accuracy": round(sum(right.values()) / sum(total.values()), 4),
        "per_category": {cat: round(right[cat] / total[cat], 4) for cat in right},
    }


def latency(clf: Classifier, rows: list[dict[str, Any]], rounds: int) -> dict[str, float]:
    """Wall and CPU microseconds per classification, over `rounds` passes."""
    wall, cpu = [], []
    for row in rows:  # warm-up pass: first calls pay for lazy imports and caches
        clf.classify(row["endpoint"], row["body"])
    for _ in range(rounds):
        for row in rows:
            w0, c0 = time.perf_counter_ns(), time.thread_time_ns()
            clf.classify(row["endpoint"], row["body"])
            cpu.append((time.thread_time_ns() - c0) / 1000)
            wall.append((time.perf_counter_ns() - w0) / 1000)
    return {
        "calls": len(wall),
        "wall_median_us": round(statistics.median(wall), 1),
        "wall_p99_us": round(_percentile(wall, 0.99), 1),
        "wall_max_us": round(max(wall), 1),
        "cpu_median_us": round(statistics.median(cpu), 1),
        "cpu_p99_us": round(_percentile(cpu, 0.99), 1),
        "cpu_max_us": round(max(cpu), 1),
    }


def big_prompt(clf: Classifier) -> dict[str, Any]:
    """A 1 MB pasted log with a question at the end."""
    text = "Mar 03 02:14:07 nas kernel: ata3: hard resetting link\n" * 19_000 + "why does this keep happening?"
    body = {"messages": [{"role": "user", "content": text}]}
    times = []
    for _ in range(20):
        t0 = time.perf_counter_ns()
        result = clf.classify("/v1/chat/completions", body)
        times.append((time.perf_counter_ns() - t0) / 1000)
    return {
        "bytes": len(text.encode()),
        "category": result.category.value,
        "truncated": result.truncated,
        "median_us": round(statistics.median(times), 1),
        "max_us": round(max(times), 1),
    }


def _print_report(report: dict[str, Any]) -> None:
    print(f"load {report['load_ms']} ms, weights {report['weights_kib']} KiB, {report['keys']} keys")
    for name, acc in report["sets"].items():
        print(f"\n{name}: {acc['accuracy']:.1%} of {acc['n']}")
        for cat, per in acc["per_category"].items():
            print(f"  {cat:7s} {per['accuracy']:7.1%}  (n={per['n']})")
        cats = list(acc["confusion"])
        for lang, fig in acc["per_language"].items():
            shares = "  ".join(f"{cat} {share:.0%}" for cat, share in fig["per_category"].items())
            print(f"  [{lang}] {fig['accuracy']:7.1%}  (n={fig['n']})  {shares}")
        print("  label \\ guess " + " ".join(f"{c:>6s}" for c in CATEGORIES))
        for cat in cats:
            print(f"  {cat:14s} " + " ".join(f"{acc['confusion'][cat][g]:6d}" for g in CATEGORIES))
        for miss in acc["misses"]:
            print(f"  miss {miss['id']}: {miss['label']} -> {miss['guess']}")
    lat = report["latency"]
    print(
        f"\nclassification, {lat['calls']} calls: wall median {lat['wall_median_us']} us, p99 {lat['wall_p99_us']} us, "
        f"max {lat['wall_max_us']} us; CPU median {lat['cpu_median_us']} us, p99 {lat['cpu_p99_us']} us"
    )
    big = report["big_prompt"]
    print(
        f"1 MB prompt: {big['median_us']} us median, {big['max_us']} us max -> {big['category']} "
        f"(truncated {big['truncated']})"
    )
    print(f"peak RSS {report['peak_rss_mib']} MiB; load average {report['load_average']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, action="append", help="labelled JSON lines (repeatable)")
    parser.add_argument("--rounds", type=int, default=20, help="timed passes over every set")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--weights", type=Path, help="a weights file to measure instead of the shipped one")
    args = parser.parse_args(argv)
    paths = args.data or [DEFAULT_DATA]
    missing = [p for p in paths if not p.exists()]
    if missing:
        print(f"no such data set: {', '.join(map(str, missing))}", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    clf = Classifier(load_model(args.weights) if args.weights else None)
    load_ms = round((time.perf_counter() - t0) * 1000, 1)
    sets = {str(p): _read(p) for p in paths}
    weights = args.weights or ROOT / "homelab" / "router" / "weights.npz"
    report = {
        "load_ms": load_ms,
        "weights_kib": round(weights.stat().st_size / 1024),
        "keys": len(clf.model.vocabulary),
        "sets": {name: accuracy(clf, rows) for name, rows in sets.items()},
        "latency": latency(clf, [r for rows in sets.values() for r in rows], args.rounds),
        "big_prompt": big_prompt(clf),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        _print_report(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
