"""The shipped linear model: feature keys to class scores, in numpy, with no training code.

The weights file (`weights.npz`, written by `training/router/train.py`) holds the known keys
in index order, one weight row per key, a bias per class, the class names, and a JSON record
of how it was trained (data hash, settings, accuracy on its own data). A vocabulary, not a
hashing trick: Python's `hash` of a string changes from process to process, a stable hash
costs more per key than a dict lookup, and keys seen fewer than a few times in training are
dropped anyway, so the dictionary stays small (see the `meta` record for its size).
"""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from homelab.errors import ModelError
from homelab.router.features import Group

__all__ = ["WEIGHTS_FILE", "LinearModel", "load_model"]

WEIGHTS_FILE = "weights.npz"


@dataclass(frozen=True)
class LinearModel:
    """A multinomial logistic regression over sparse keys."""

    classes: tuple[str, ...]
    vocabulary: dict[str, int]
    weights: np.ndarray  # (keys, classes), float32
    bias: np.ndarray  # (classes,), float64
    meta: dict[str, Any]

    def probabilities(self, groups: list[Group]) -> np.ndarray:
        """Class probabilities (softmax of the scores) for one set of feature groups."""
        get = self.vocabulary.get
        found: list[set[int | None]] = []
        scales: list[float] = []
        for group in groups:
            # map() keeps the per-key loop in C: this lookup is most of the classifier's cost.
            hits = set(map(get, group.keys))
            hits.discard(None)
            if hits:
                found.append(hits)
                scales.append(1.0 / math.sqrt(len(hits)) if group.normalised else 1.0)
        scores = self.bias.copy()
        if found:
            sizes = [len(hits) for hits in found]
            index = np.fromiter(itertools.chain.from_iterable(found), dtype=np.intp, count=sum(sizes))
            scores += np.repeat(scales, sizes) @ self.weights[index]
        scores -= scores.max()
        exp: np.ndarray = np.exp(scores)
        exp /= exp.sum()
        return exp

    def save(self, path: Path) -> None:
        """Write the weights file (keys as UTF-8 text, weights as float32)."""
        keys = sorted(self.vocabulary, key=self.vocabulary.__getitem__)
        np.savez_compressed(
            path,
            keys=np.array("\n".join(keys).encode("utf-8"), dtype=np.bytes_),
            weights=self.weights.astype(np.float32),
            bias=self.bias.astype(np.float64),
            classes=np.array(list(self.classes)),
            meta=np.array(json.dumps(self.meta, sort_keys=True)),
        )


def _read(source: Any) -> LinearModel:
    with np.load(source, allow_pickle=False) as data:
        keys = bytes(data["keys"].item()).decode("utf-8").split("\n")
        weights = np.ascontiguousarray(data["weights"], dtype=np.float32)
        bias = np.asarray(data["bias"], dtype=np.float64)
        classes = tuple(str(c) for c in data["classes"])
        meta = json.loads(str(data["meta"]))
    if weights.shape != (len(keys), len(classes)) or bias.shape != (len(classes),):
        raise ModelError(
            f"router weights: shapes {weights.shape} and {bias.shape} do not fit "
            f"{len(keys)} keys and {len(classes)} classes"
        )
    return LinearModel(classes, {k: i for i, k in enumerate(keys)}, weights, bias, meta)


def load_model(path: Path | None = None) -> LinearModel:
    """Load the weights file shipped in this package, or the one at `path`.

    Raises:
        ModelError: the file is missing, unreadable or inconsistent.
    """
    try:
        if path is not None:
            return _read(path)
        with resources.files("homelab.router").joinpath(WEIGHTS_FILE).open("rb") as handle:
            return _read(handle)
    except (OSError, KeyError, ValueError) as exc:
        where = path or f"homelab/router/{WEIGHTS_FILE}"
        raise ModelError(f"router weights {where}: {exc}; retrain with python -m training.router.train") from exc
