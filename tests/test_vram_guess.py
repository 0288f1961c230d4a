"""Models known only by name: estimated shapes, marked as such, and refusals when a name is not enough."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from homelab.errors import UnsupportedModel
from homelab.vram.guess import FILE_TYPES, guess_shape

CASES = [
    json.loads(line) for line in (Path(__file__).parent / "cases" / "vram" / "names.jsonl").read_text().splitlines()
]


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_name_gives_an_estimated_shape(case: dict[str, Any]) -> None:
    shape = guess_shape(case["name"])

    assert (shape.arch, shape.n_layer, shape.file_type) == (case["arch"], case["n_layer"], case["file_type"])
    assert (shape.source, shape.estimated) == ("name", True)
    assert shape.parameter_count / 1e9 == pytest.approx(case["params_b"], rel=0.01)
    bits = FILE_TYPES[case["file_type"]].bits_per_weight
    assert shape.weight_bytes * 8 / shape.parameter_count == pytest.approx(bits, rel=0.01)


def test_qwen25_14b_q4_k_m_is_the_size_of_the_published_file() -> None:
    # bartowski/Qwen2.5-14B-Instruct-GGUF Q4_K_M: 8.99 GB
    assert guess_shape("qwen2.5-14b Q4_K_M").weight_bytes / 1e9 == pytest.approx(8.99, rel=0.03)


@pytest.mark.parametrize(
    ("name", "message"),
    [("my-favourite-model", "no parameter count"), ("mixtral-8x7b", "mixture of experts"), ("", "no parameter count")],
)
def test_names_that_cannot_be_sized(name: str, message: str) -> None:
    with pytest.raises(UnsupportedModel, match=message):
        guess_shape(name)
