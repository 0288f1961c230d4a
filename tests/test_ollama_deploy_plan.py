"""The Ollama rollout plan, pure: one JSON row per case in tests/cases/ollama_deploy/plan.jsonl.

A row gives one endpoint's desired models and its facts in short form, and the step summaries
and reasons the plan must give; the runner fills in the rest (endpoint `ollama`, aliases, sizes),
so a new case needs no new code. Digests are written as their first letters (`aaa` for the file
whose SHA-256 is `aaa...`); `running` lists loaded models, `running_until` those with an expiry.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from homelab.docker_ops.sources import SourceFile
from homelab.ollama_deploy.api import RunningModel, ShownModel
from homelab.ollama_deploy.desired import DesiredModel, EndpointDesired, OllamaDesired
from homelab.ollama_deploy.facts import EndpointFacts, OllamaFacts
from homelab.ollama_deploy.plan import plan

CASES = Path(__file__).parent / "cases" / "ollama_deploy" / "plan.jsonl"
ROWS = [json.loads(line) for line in CASES.read_text().splitlines() if line.strip()]
URL = "http://127.0.0.1:11434"


def _sha(short: str) -> str:
    return (short * 64)[:64]


def _desired(row: dict[str, Any]) -> OllamaDesired:
    models = [
        DesiredModel(
            name=m["name"], alias=m["name"], gguf=m.get("gguf"), local_path=Path("/models", m["gguf"]) if "gguf" in m else None,
            pull=m.get("pull"), parameters=m["parameters"], template=m.get("template"), keep_alive=m.get("keep_alive", -1),
        )
        for m in row["models"]
    ]  # fmt: skip
    listed = [m.name for m in models] + row.get("listed", [])
    return OllamaDesired(node="box", endpoints=[EndpointDesired(endpoint="ollama", url=URL, models=models, listed=listed)])


def _facts(row: dict[str, Any]) -> OllamaFacts:
    sources = {f: SourceFile(model_file=f, sha256=_sha(d), size_bytes=1 << 20) for f, d in row["sources"].items()}
    shown = {
        name: None if s is None else ShownModel(
            parameters={k: str(v) for k, v in s["parameters"].items()}, template=s.get("template", ""),
            blob=f"sha256:{_sha(s['blob'])}" if "blob" in s else None,
        )
        for name, s in row["shown"].items()
    }  # fmt: skip
    endpoint = EndpointFacts(
        blobs={f"sha256:{_sha(d)}": present for d, present in row.get("blobs", {}).items()},
        shown=shown,
        pulled=row.get("pulled", {}),
        running={
            name: RunningModel(name=name, size=1, size_vram=1, expires_at=until)
            for name, until in dict.fromkeys(row.get("running", [])).items() | row.get("running_until", {}).items()
        },
        present=row.get("present", list(row["shown"])),
    )
    return OllamaFacts(sources=sources, endpoints={"ollama": endpoint})


@pytest.mark.parametrize("row", ROWS, ids=[row["id"] for row in ROWS])
def test_plan_case(row: dict[str, Any]) -> None:
    result = plan(_desired(row), _facts(row), prune=row.get("prune", False))

    assert [step.summary() for step in result.steps] == row["steps"]
    assert result.unchanged == row["unchanged"]
    assert result.empty == (not row["steps"])
