"""VRAM sampling: nvidia-smi parsing from cases, the SSH path against a real sshd, Ollama's size_vram.

tests/cases/nvidia_smi/cases.jsonl: one case per row. `h200-idle-real-capture` reads the real
line captured on an idle H200 (h200-idle.csv); the other rows are written from nvidia-smi's
documented output forms ("[N/A]", "[Not Supported]", "No devices were found", NVML errors).

No GPU exists here, so the SSH tests log in to the sshds of tests/fixtures/gpu_sshd.py: one with
an *nvidia-smi stand-in* that prints the captured H200 sample, one without nvidia-smi, and a
Windows node without the NVIDIA driver, whose forced command answers as cmd.exe does.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from homelab.history import open_history
from homelab.inventory import Endpoint, EndpointKind, Inventory, SSHSettings
from homelab.remote import SSHCredentials
from homelab.vram.gpu_facts import MIB, GpuStatus, gpu_fact, parse_nvidia_smi
from homelab.vram.sampling import nodes_to_sample, probe_model_vram, sample_node_gpus, vram_round
from tests.fixtures.gpu_sshd import NVIDIA_SMI_CASES, GpuSSHD, gpu_node, gpu_sshds  # noqa: F401 (fixture)
from tests.fixtures.ollama import StandInServer

ROWS = [json.loads(line) for line in (NVIDIA_SMI_CASES / "cases.jsonl").read_text().splitlines() if line.strip()]
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize("case", ROWS, ids=[row["id"] for row in ROWS])
def test_nvidia_smi_cases(case: dict) -> None:
    stdout = (NVIDIA_SMI_CASES / case["stdout_file"]).read_text() if "stdout_file" in case else case["stdout"]
    fact = gpu_fact("gpu1", T0, case["exit_status"], stdout, case.get("stderr", ""))
    assert fact.status == GpuStatus(case["status"])
    expected = [
        (i, name, None if used is None else used * MIB, None if total is None else total * MIB, util)
        for i, name, used, total, util in case["gpus"]
    ]
    assert [(g.index, g.name, g.used_bytes, g.total_bytes, g.utilization_pct) for g in fact.gpus] == expected
    if "detail" in case:
        assert fact.detail == case["detail"]


def test_parse_raises_naming_the_line() -> None:
    with pytest.raises(ValueError, match="line 2: could not convert"):
        parse_nvidia_smi("0, A, 1, 2, 3\n1, B, lots, 2, 3\n")


def test_gpu_node_over_ssh_reads_the_standin_sample(gpu_sshds: dict[str, GpuSSHD]) -> None:
    server = gpu_sshds["gpu"]
    credentials = SSHCredentials(key=SecretStr(server.key.read_text()))
    fact = sample_node_gpus(gpu_node(server, "gpu1"), credentials)
    assert fact.status is GpuStatus.OK, fact.detail
    [gpu] = fact.gpus
    assert (gpu.index, gpu.name, gpu.used_bytes, gpu.total_bytes) == (0, "NVIDIA H200", 0, 143771 * MIB)


def test_node_without_nvidia_smi_is_reported_not_raised(gpu_sshds: dict[str, GpuSSHD]) -> None:
    server = gpu_sshds["cpu"]
    credentials = SSHCredentials(key=SecretStr(server.key.read_text()))
    fact = sample_node_gpus(gpu_node(server, "nas"), credentials)
    assert fact.status is GpuStatus.NO_NVIDIA_SMI
    assert fact.detail == "nvidia-smi is not installed on this node"


def test_windows_node_without_nvidia_smi_is_not_installed_and_quiet(
    gpu_sshds: dict[str, GpuSSHD], caplog: pytest.LogCaptureFixture
) -> None:
    server = gpu_sshds["windows"]
    credentials = SSHCredentials(key=SecretStr(server.key.read_text()))
    node = gpu_node(server, "mark-ii").model_copy(update={"os": "windows"})
    with caplog.at_level(logging.DEBUG, logger="homelab.vram.sampling"):
        facts = [sample_node_gpus(node, credentials) for _ in range(2)]  # two rounds of the schedule
    assert [(f.status, f.detail) for f in facts] == [
        (GpuStatus.NO_NVIDIA_SMI, "nvidia-smi is not installed on this node")
    ] * 2
    assert [r.levelno for r in caplog.records] == [logging.DEBUG] * 2
    assert vram_round(facts, [], at=T0).samples == []  # nothing stored for it


def test_unknown_host_key_is_a_failed_fact_naming_the_node(
    gpu_sshds: dict[str, GpuSSHD], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server = gpu_sshds["gpu"]
    node = gpu_node(server, "gpu1").model_copy(
        update={"ssh": SSHSettings(user="root", port=server.port, known_hosts=str(tmp_path / "empty"))}
    )
    with caplog.at_level(logging.WARNING, logger="homelab.vram.sampling"):
        fact = sample_node_gpus(node, SSHCredentials(key=SecretStr(server.key.read_text())))
    assert fact.status is GpuStatus.FAILED
    assert "gpu1" in fact.detail
    assert [r.getMessage() for r in caplog.records] == [f"node gpu1: GPU sampling failed: {fact.detail}"]


async def test_round_stores_gpu_and_ollama_model_rows(
    gpu_sshds: dict[str, GpuSSHD], ollama_standin: StandInServer, tmp_path: Path
) -> None:
    ollama_standin.standin.load("qwen2.5:0.5b", 600)
    server = gpu_sshds["gpu"]
    gpu1 = gpu_node(server, "gpu1").model_copy(
        update={"endpoints": [Endpoint(name="ollama", kind=EndpointKind.OLLAMA, url=ollama_standin.url)]}
    )
    inv = Inventory(nodes=[gpu1])
    credentials = SSHCredentials(key=SecretStr(server.key.read_text()))
    async with httpx.AsyncClient(trust_env=False) as client:
        results = await probe_model_vram(inv, client)
    facts = [sample_node_gpus(node, credentials) for node in nodes_to_sample(inv)]
    sampled = vram_round(facts, results, at=T0)
    assert [f.status for f in sampled.nodes] == [GpuStatus.OK]
    models = {s.model: s.used_bytes for s in sampled.samples if s.model}
    assert models["qwen2.5:0.5b"] == 397_821_319
    with open_history(f"sqlite:///{tmp_path}/h.db") as history:
        assert history.record_vram_samples(sampled.samples) == len(sampled.samples)
