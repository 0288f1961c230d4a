"""`redact_url`: user-info hidden, everything else as written (cases in tests/cases/redact/urls.jsonl)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from homelab.redact import redact_url

ROWS = [json.loads(line) for line in (Path(__file__).parent / "cases" / "redact" / "urls.jsonl").open() if line.strip()]


@pytest.mark.parametrize("case", ROWS, ids=[row["id"] for row in ROWS])
def test_redact_url(case: dict[str, str]) -> None:
    assert redact_url(case["url"]) == case["shown"]
