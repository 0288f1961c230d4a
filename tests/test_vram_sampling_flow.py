"""The `sample-vram` flow under a Prefect test server: Ollama model rows stored, GPU-less nodes reported.

The SSH path of the GPU query is tested against a real sshd in tests/test_vram_sampling.py;
here the cluster has one node with an Ollama endpoint (the stand-in) and GPUs declared but no
ssh settings, and a CPU node with neither, which must not be queried at all.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from flows.sample_vram import sample_vram
from homelab.history import open_history
from homelab.reports import build_report, parse_since
from homelab.vram.gpu_facts import GpuStatus
from tests.fixtures.ollama import StandInServer

pytestmark = pytest.mark.usefixtures("prefect_harness")


async def test_flow_stores_model_vram_and_reports_nodes(ollama_standin: StandInServer, tmp_path: Path) -> None:
    ollama_standin.standin.load("llama3.2:1b", 600)
    cluster = {
        "version": 1,
        "nodes": [
            {"name": "gpu1", "tier": "primary", "host": "127.0.0.1", "gpus": [{"name": "RTX 4090", "vram_gib": 24.0}],
             "endpoints": [{"name": "ollama", "kind": "ollama", "url": ollama_standin.url}]},
            {"name": "nas", "tier": "nas", "host": "127.0.0.1"},
        ],
        "history": {"url": "sqlite:///history.db"},
    }  # fmt: skip
    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump(cluster))
    state = await sample_vram(str(path), return_state=True)
    assert state.is_completed(), state.message
    sampled = await state.result()
    assert [(f.node, f.status) for f in sampled.nodes] == [("gpu1", GpuStatus.FAILED)]
    assert sampled.nodes[0].detail == "no ssh settings in the cluster file"
    with open_history(f"sqlite:///{tmp_path}/history.db") as history:
        report = build_report(history, parse_since("1h"))
    models = report.tables["models"].set_index("model")
    assert models.loc["llama3.2:1b", "used_peak_gib"] == round(1_321_098_329 / 2**30, 2)
