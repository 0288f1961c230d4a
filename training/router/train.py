"""Train the router's text model and write `homelab/router/weights.npz`: numpy only, deterministic.

The model is a multinomial logistic regression over the keys of `homelab.router.features`
(the same function inference uses), fitted by L-BFGS on the mean cross-entropy plus an L2
penalty. Keys seen in fewer than `min_df` training requests are dropped: they cannot
generalise and they would only grow the file. Same data, same settings, same machine
arithmetic: the same weights (the file records the data's SHA-256 and the settings).

    python -m training.router.train            # generate the data, train, write the weights
    python -m training.router.train --check    # retrain and compare with the shipped weights
"""

from __future__ import annotations

import argparse
import math
import sys
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from homelab.router.features import feature_groups
from homelab.router.model import WEIGHTS_FILE, LinearModel, load_model
from homelab.router.request import read_request
from training.router.dialogue import LABELS
from training.router.generate import DEFAULT_PER_LABEL, DEFAULT_SEED, data_digest, generate

__all__ = ["Design", "Settings", "design_matrix", "fit", "main", "train"]

FEATURE_VERSION = 2
WEIGHTS_PATH = Path(__file__).resolve().parents[2] / "homelab" / "router" / WEIGHTS_FILE


@dataclass(frozen=True)
class Settings:
    """Everything that decides the weights, besides the code."""

    per_label: int = DEFAULT_PER_LABEL
    seed: int = DEFAULT_SEED
    min_df: int = 3
    max_keys: int = 20000
    l2: float = 1e-4
    iterations: int = 150


@dataclass
class Design:
    """A sparse design matrix in CSR form, with its labels."""

    indptr: np.ndarray
    indices: np.ndarray
    values: np.ndarray
    labels: np.ndarray

    @property
    def rows(self) -> int:
        return len(self.indptr) - 1


def _groups(rows: list[dict[str, Any]]) -> list[list[tuple[list[str], bool]]]:
    out = []
    for row in rows:
        conv = read_request(row["endpoint"], row["body"])
        out.append([(g.keys, g.normalised) for g in feature_groups(conv)])
    return out


def _vocabulary(all_groups: list[list[tuple[list[str], bool]]], min_df: int) -> dict[str, int]:
    df: Counter[str] = Counter()
    for groups in all_groups:
        df.update({key for keys, _ in groups for key in keys})
    kept = sorted(k for k, n in df.items() if n >= min_df or k.startswith("#"))
    return {k: i for i, k in enumerate(kept)}


def _prune(vocab: dict[str, int], theta: np.ndarray, max_keys: int) -> dict[str, int]:
    weights = theta[: len(vocab) * len(LABELS)].reshape(len(vocab), len(LABELS))
    strength = np.abs(weights - weights.mean(axis=1, keepdims=True)).max(axis=1)
    keys = sorted(vocab, key=vocab.__getitem__)
    ranked = sorted(range(len(keys)), key=lambda i: (-strength[i], keys[i]))
    kept = {keys[i] for i in ranked[:max_keys]} | {k for k in keys if k.startswith("#")}
    return {k: i for i, k in enumerate(sorted(kept))}


def design_matrix(all_groups: list[list[tuple[list[str], bool]]], vocab: dict[str, int], labels: list[int]) -> Design:
    """Rows exactly as `LinearModel.probabilities` builds them: known keys once per group, scaled."""
    indptr, indices, values = [0], [], []
    for groups in all_groups:
        for keys, normalised in groups:
            found = sorted({vocab[k] for k in keys if k in vocab})
            if not found:
                continue
            value = 1.0 / math.sqrt(len(found)) if normalised else 1.0
            indices += found
            values += [value] * len(found)
        indptr.append(len(indices))
    return Design(np.array(indptr), np.array(indices, dtype=np.int64), np.array(values), np.array(labels))


def _loss_grad(theta: np.ndarray, x: Design, n_keys: int, n_classes: int, l2: float) -> tuple[float, np.ndarray]:
    w = theta[: n_keys * n_classes].reshape(n_keys, n_classes)
    b = theta[n_keys * n_classes :]
    rows = np.repeat(np.arange(x.rows), np.diff(x.indptr))
    contrib = x.values[:, None] * w[x.indices]
    scores = np.zeros((x.rows, n_classes))
    for c in range(n_classes):
        scores[:, c] = np.bincount(rows, weights=contrib[:, c], minlength=x.rows)
    scores += b
    scores -= scores.max(axis=1, keepdims=True)
    log_norm = np.log(np.exp(scores).sum(axis=1))
    log_p = scores - log_norm[:, None]
    loss = -log_p[np.arange(x.rows), x.labels].mean() + 0.5 * l2 * float((w * w).sum())
    g = np.exp(log_p)
    g[np.arange(x.rows), x.labels] -= 1.0
    g /= x.rows
    grad_w = np.empty_like(w)
    for c in range(n_classes):
        grad_w[:, c] = np.bincount(x.indices, weights=x.values * g[rows, c], minlength=n_keys)
    grad_w += l2 * w
    return float(loss), np.concatenate([grad_w.ravel(), g.sum(axis=0)])


def fit(x: Design, n_keys: int, n_classes: int, l2: float, iterations: int, memory: int = 10) -> np.ndarray:
    """L-BFGS with a backtracking (Armijo) line search; returns the flat parameter vector."""
    theta = np.zeros(n_keys * n_classes + n_classes)
    loss, grad = _loss_grad(theta, x, n_keys, n_classes, l2)
    s_hist: list[np.ndarray] = []
    y_hist: list[np.ndarray] = []
    for it in range(iterations):
        q = grad.copy()
        alphas = []
        for s, y in zip(reversed(s_hist), reversed(y_hist), strict=True):
            a = float(s @ q) / float(y @ s)
            alphas.append(a)
            q -= a * y
        if s_hist:
            q *= float(s_hist[-1] @ y_hist[-1]) / float(y_hist[-1] @ y_hist[-1])
        for (s, y), a in zip(zip(s_hist, y_hist, strict=True), reversed(alphas), strict=True):
            q += s * (a - float(y @ q) / float(y @ s))
        direction = -q
        step, slope = 1.0, float(grad @ direction)
        if slope >= 0:  # not a descent direction: restart from the gradient
            s_hist.clear()
            y_hist.clear()
            direction, slope = -grad, -float(grad @ grad)
        while True:
            new_theta = theta + step * direction
            new_loss, new_grad = _loss_grad(new_theta, x, n_keys, n_classes, l2)
            if new_loss <= loss + 1e-4 * step * slope or step < 1e-8:
                break
            step *= 0.5
        s_vec, y_vec = new_theta - theta, new_grad - grad
        if float(s_vec @ y_vec) > 1e-12:
            s_hist.append(s_vec)
            y_hist.append(y_vec)
            if len(s_hist) > memory:
                s_hist.pop(0)
                y_hist.pop(0)
        improvement = loss - new_loss
        theta, loss, grad = new_theta, new_loss, new_grad
        if it % 25 == 0:
            print(f"  iteration {it:3d}: loss {loss:.5f}", file=sys.stderr)
        if improvement < 1e-9:
            break
    return theta


def train(settings: Settings) -> LinearModel:
    """Generate the data, build the vocabulary, fit, and return the model (not yet saved)."""
    rows = generate(settings.per_label, settings.seed)
    labels = [LABELS.index(row["label"]) for row in rows]
    all_groups = _groups(rows)
    vocab = _vocabulary(all_groups, settings.min_df)
    x = design_matrix(all_groups, vocab, labels)
    print(f"{x.rows} requests, {len(vocab)} keys, {len(x.indices)} non-zeros", file=sys.stderr)
    theta = fit(x, len(vocab), len(LABELS), settings.l2, settings.iterations)
    if len(vocab) > settings.max_keys:
        # Keep the keys that matter most and fit again: a small vocabulary is a small dict,
        # and dict lookups (cache misses, not arithmetic) are most of the classifier's cost.
        vocab = _prune(vocab, theta, settings.max_keys)
        x = design_matrix(all_groups, vocab, labels)
        print(f"pruned to {len(vocab)} keys, {len(x.indices)} non-zeros", file=sys.stderr)
        theta = fit(x, len(vocab), len(LABELS), settings.l2, settings.iterations)
    weights = theta[: len(vocab) * len(LABELS)].reshape(len(vocab), len(LABELS)).astype(np.float32)
    bias = theta[len(vocab) * len(LABELS) :]
    meta = asdict(settings) | {
        "data_sha256": data_digest(rows),
        "requests": len(rows),
        "keys": len(vocab),
        "feature_version": FEATURE_VERSION,
    }
    model = LinearModel(tuple(LABELS), vocab, weights, bias, meta)
    model.meta["train_accuracy"] = round(_accuracy(model, all_groups, labels), 4)
    return model


def _accuracy(model: LinearModel, all_groups: list[list[tuple[list[str], bool]]], labels: list[int]) -> float:
    from homelab.router.features import Group

    right = sum(
        int(np.argmax(model.probabilities([Group(k, n) for k, n in g]))) == y
        for g, y in zip(all_groups, labels, strict=True)
    )
    return right / len(labels)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=WEIGHTS_PATH)
    parser.add_argument(
        "--check", action="store_true", help="retrain and compare with the weights at --out; write nothing"
    )
    parser.add_argument("--per-label", type=int, default=Settings.per_label)
    parser.add_argument("--l2", type=float, default=Settings.l2)
    parser.add_argument("--min-df", type=int, default=Settings.min_df)
    parser.add_argument("--max-keys", type=int, default=Settings.max_keys)
    parser.add_argument("--iterations", type=int, default=Settings.iterations)
    args = parser.parse_args(argv)
    settings = Settings(
        per_label=args.per_label, l2=args.l2, min_df=args.min_df, max_keys=args.max_keys, iterations=args.iterations
    )
    model = train(settings)
    if args.check:
        shipped = load_model(args.out)
        same_keys = shipped.vocabulary == model.vocabulary
        delta = float(np.abs(shipped.weights - model.weights).max()) if same_keys else math.inf
        same = same_keys and shipped.meta.get("data_sha256") == model.meta["data_sha256"] and delta < 1e-4
        print(f"shipped weights {'match' if same else 'DIFFER'} (max |dw| {delta:.2e})")
        return 0 if same else 1
    model.save(args.out)
    print(f"wrote {args.out}: {model.meta}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
