"""The Ollama rollout plan, pure: one JSON row per case in tests/cases/ollama_deploy/plan.jsonl.

A row gives one endpoint's desired models and its facts in short form, and the step summaries
and reasons the plan must give; the runner fills in the rest (endpoint `ollama`, aliases, sizes),
so a new case needs no new code. Digests are written as their first letters (`aaa` for the file
whose SHA-256 is `aaa...`); `running` lists loaded models, `running_until` those with an expiry.
A `shown` model says what it was made from (`blob` or `pull`, `parameters`, `template`): its
license then holds the marker homelab writes, unless it is `unmarked`; `printed` gives the
parameters as `/api/show` prints them when that differs (Go floats).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from homelab.docker_ops.sources import SourceFile
from homelab.ollama.api import RunningModel, ShownModel, parse_parameters
from homelab.ollama.desired import DesiredModel, EndpointDesired, OllamaDesired
from homelab.ollama.facts import EndpointFacts, OllamaFacts
from homelab.ollama.plan import deploy_marker, plan

CASES = Path(__file__).parent / "cases" / "ollama_deploy" / "plan.jsonl"
ROWS = [json.loads(line) for line in CASES.read_text().splitlines() if line.strip()]
URL = "http://127.0.0.1:11434"


def _sha(short: str) -> str:
    return (short * 64)[:64]


def _desired(row: dict[str, Any]) -> OllamaDesired:
    models = [
        DesiredModel(
            name=m["name"], alias=m["name"], gguf=m.get("gguf"),
            local_path=Path("/models", m["gguf"]) if "gguf" in m else None, pull=m.get("pull"),
            parameters=m["parameters"], template=m.get("template"), keep_alive=m.get("keep_alive", -1),
        )
        for m in row["models"]
    ]  # fmt: skip
    listed = [m.name for m in models] + row.get("listed", [])
    return OllamaDesired(
        node="box", endpoints=[EndpointDesired(endpoint="ollama", url=URL, models=models, listed=listed)]
    )


def _shown(s: dict[str, Any]) -> ShownModel:
    """How a model on the endpoint was made, with the marker homelab would have written (`unmarked`: none)."""
    made = DesiredModel(
        name="made", alias="made", gguf="made.gguf" if "blob" in s else None, pull=s.get("pull"),
        parameters=s["parameters"], template=s.get("template"), keep_alive=-1,
    )  # fmt: skip
    digest = f"sha256:{_sha(s['blob'])}" if "blob" in s else None
    printed = s.get("printed", s["parameters"])  # as /api/show prints them: Go floats, say
    return ShownModel(
        parameters=parse_parameters("\n".join(f"{k} {v}" for k, v in printed.items())),
        license="" if s.get("unmarked") else f"Apache 2.0\n{deploy_marker(made, digest)}",
    )


def _facts(row: dict[str, Any]) -> OllamaFacts:
    sources = {f: SourceFile(model_file=f, sha256=_sha(d), size_bytes=1 << 20) for f, d in row["sources"].items()}
    shown = {name: None if s is None else _shown(s) for name, s in row["shown"].items()}
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
