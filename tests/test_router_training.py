"""The router's training: reproducible data, shipped weights traceable to it, no evaluation prompt in it.

A full retrain takes minutes (`python -m training.router.train --check` compares the result
with the shipped weights); here the cheap guarantees are checked: the generator is
deterministic and its output is the data the shipped weights record, the trainer runs end to
end on a small set, and no evaluation prompt of eight words or more is (nearly) in the training
data (`python -m training.router.overlap FILE` lists looser overlaps too).
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict
from pathlib import Path

import pytest

from homelab.router import Classifier
from homelab.router.model import load_model
from training.router.generate import data_digest, generate
from training.router.overlap import last_user_text, near_duplicates
from training.router.train import FEATURE_VERSION, Settings, train

CASES = Path(__file__).parent / "cases" / "router"
DEV_SET = Path(__file__).resolve().parents[2] / "shared" / "router-dev.jsonl"


@pytest.fixture(scope="module")
def training_rows() -> list[dict[str, object]]:
    return generate()


def test_the_generator_is_deterministic_and_balanced(training_rows: list[dict[str, object]]) -> None:
    again = generate(per_label=50)
    assert again == generate(per_label=50)
    labels = [row["label"] for row in training_rows]
    assert {label: labels.count(label) for label in set(labels)} == {
        "code": 4000,
        "reason": 4000,
        "chat": 4000,
        "fast": 4000,
    }


def test_shipped_weights_record_this_data_and_these_settings(training_rows: list[dict[str, object]]) -> None:
    meta = load_model().meta
    assert meta["data_sha256"] == data_digest(training_rows), "weights are stale: python -m training.router.train"
    assert {k: meta[k] for k in asdict(Settings())} == asdict(Settings())
    assert meta["feature_version"] == FEATURE_VERSION


def test_the_trainer_runs_end_to_end_on_a_small_set(tmp_path: Path) -> None:
    model = train(Settings(per_label=60, iterations=25, max_keys=800))
    path = tmp_path / "weights.npz"
    model.save(path)
    loaded = load_model(path)
    assert loaded.vocabulary == model.vocabulary and loaded.classes == ("code", "reason", "chat", "fast")
    result = Classifier(loaded).classify("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}]})
    assert result.category == "fast"


def _long_prompts(path: Path) -> list[tuple[str, str]]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    texts = [(row["id"], last_user_text(row["body"])) for row in rows]
    return [(i, t) for i, t in texts if len(t.split()) >= 8]


@pytest.mark.parametrize(
    "name", ["heldout.jsonl", "heldout2.jsonl", "heldout3.jsonl", "heldout4.jsonl", "heldout_intl.jsonl", "dev"]
)
def test_no_evaluation_prompt_is_in_the_training_data(training_rows: list[dict[str, object]], name: str) -> None:
    path = DEV_SET if name == "dev" else CASES / name
    if not path.exists():
        pytest.skip(f"no {path}")
    train_texts = [last_user_text(row["body"]) for row in training_rows]
    # Short asks share their template's words by nature ("capital of X?"); a prompt of eight
    # words or more sharing 80% of its word 3-grams, and six at least, with a training prompt is a copy.
    assert near_duplicates(train_texts, _long_prompts(path), threshold=0.8, min_shared=6) == []


def test_no_chinese_japanese_or_korean_evaluation_prompt_is_copied_into_the_training_data(
    training_rows: list[dict[str, object]],
) -> None:
    """Word 3-grams cannot see a copy in scripts written without spaces; a character 4-gram view can."""
    rows = [json.loads(line) for line in (CASES / "heldout_intl.jsonl").read_text(encoding="utf-8").splitlines()]
    cjk = [(row["id"], _spaced(last_user_text(row["body"]))) for row in rows if row["lang"] in ("zh", "ja", "ko")]
    train_texts = [_spaced(last_user_text(row["body"])) for row in training_rows if _CJK.search(str(row["body"]))]
    assert near_duplicates(train_texts, cjk, threshold=0.8, min_shared=6) == []


_CJK = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff\uac00-\ud7af]")


def _spaced(text: str) -> str:
    """Each CJK character as a word, so that word 3-grams become character 3-grams."""
    return _CJK.sub(lambda m: f" {m.group()} ", text)
