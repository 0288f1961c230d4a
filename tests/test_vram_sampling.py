"""VRAM sampling: nvidia-smi parsing from cases, the SSH path against a real sshd, Ollama's size_vram.

tests/cases/nvidia_smi/cases.jsonl: one case per row. `h200-idle-real-capture` reads the real
line captured on an idle H200 (h200-idle.csv); the other rows are written from nvidia-smi's
documented output forms ("[N/A]", "[Not Supported]", "No devices were found", NVML errors).

No GPU exists here, so the SSH test puts an *nvidia-smi stand-in* (a shell script that prints
the captured H200 sample) first on the PATH of a real sshd's sessions (`SetEnv PATH=...`). A
Windows node without the NVIDIA driver is an sshd whose forced command answers as cmd.exe does.
"""

from __future__ import annotations

import json
import logging
import os
import pwd
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from homelab.history import open_history
from homelab.inventory import Endpoint, EndpointKind, Inventory, Node, SSHSettings
from homelab.remote import SSHCredentials
from homelab.vram.gpu_facts import MIB, NVIDIA_SMI_QUERY, GpuStatus, gpu_fact, parse_nvidia_smi
from homelab.vram.sampling import nodes_to_sample, probe_model_vram, sample_node_gpus, vram_round
from tests.fixtures.net import LOOPBACK, free_port, stop_process, wait_until
from tests.fixtures.ollama import StandInServer
from tests.fixtures.sshd import SSHD, keygen, shows_banner, write_sshd_config

CASES = Path(__file__).parent / "cases" / "nvidia_smi"
ROWS = [json.loads(line) for line in (CASES / "cases.jsonl").read_text().splitlines() if line.strip()]
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize("case", ROWS, ids=[row["id"] for row in ROWS])
def test_nvidia_smi_cases(case: dict) -> None:
    stdout = (CASES / case["stdout_file"]).read_text() if "stdout_file" in case else case["stdout"]
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


class _GpuSSHD:
    def __init__(self, root: Path, port: int, known_hosts: Path, key: Path, proc: subprocess.Popen[bytes]) -> None:
        self.root, self.port, self.known_hosts, self.key, self.proc = (root, port, known_hosts, key, proc)


# cmd.exe, the default shell of OpenSSH on Windows, answering a program it cannot find: its
# message MSG_DIR_BAD_COMMAND_OR_FILE ("'%1' is not recognized as an internal or external
# command,\r\noperable program or batch file.") on stderr, ERRORLEVEL 9009. A node whose
# NVIDIA driver (which brings nvidia-smi) is not installed answers the query so.
_CMD_EXE_NOT_FOUND = """#!/bin/sh
set -- $SSH_ORIGINAL_COMMAND
printf "'%s' is not recognized as an internal or external command,\\r\\noperable program or batch file.\\r\\n" "$1" >&2
exit 9009
"""


def _start_sshd(root: Path, path: str, extra: list[str] | None = None) -> _GpuSSHD:
    """A real sshd whose sessions get `PATH=path`; the account is the test user (as tests/fixtures/sshd.py)."""
    if not SSHD.is_file():
        pytest.skip(f"{SSHD} is not installed")
    user = pwd.getpwuid(os.getuid()).pw_name
    host_key = keygen(root / "host_ed25519", "vram-test-host")
    (root / "authorized_keys").write_text(keygen(root / "client_ed25519", "vram-test-client") + "\n")
    port = free_port()
    known_hosts = root / "known_hosts"
    known_hosts.write_text(f"[{LOOPBACK}]:{port} {host_key}\n")
    config = write_sshd_config(root, port, user, extra or [])
    config.write_text(config.read_text() + f"SetEnv PATH={path}\n")
    log = root / "sshd.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([str(SSHD), "-D", "-e", "-f", str(config)], stdout=out, stderr=subprocess.STDOUT)
    wait_until(lambda: shows_banner(port), 30.0, "sshd", log, proc)
    return _GpuSSHD(root, port, known_hosts, root / "client_ed25519", proc)


@pytest.fixture(scope="module")
def gpu_sshds(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, _GpuSSHD]]:
    """`gpu`: sessions find the nvidia-smi stand-in first on PATH; `cpu`: no nvidia-smi anywhere on PATH;
    `windows`: every command is answered as cmd.exe answers a program it cannot find."""
    bin_dir = tmp_path_factory.mktemp("standin-bin")
    standin = bin_dir / "nvidia-smi"
    sample = CASES / "h200-idle.csv"
    # The stand-in insists on the exact query, so a changed command cannot pass unnoticed.
    standin.write_text(
        "#!/bin/sh\n# nvidia-smi stand-in for tests: prints a captured sample of the real thing\n"
        f'[ "nvidia-smi $*" = "{NVIDIA_SMI_QUERY}" ] || {{ echo "unexpected arguments: $*" >&2; exit 9; }}\n'
        f"cat {sample}\n"
    )
    standin.chmod(0o755)
    cmd_exe = bin_dir / "cmd-exe-not-found"
    cmd_exe.write_text(_CMD_EXE_NOT_FOUND)
    cmd_exe.chmod(0o755)
    servers = {
        "gpu": _start_sshd(tmp_path_factory.mktemp("gpu-sshd"), f"{bin_dir}:/usr/bin:/bin"),
        "cpu": _start_sshd(tmp_path_factory.mktemp("cpu-sshd"), "/nonexistent-bin:/bin"),
        "windows": _start_sshd(tmp_path_factory.mktemp("win-sshd"), "/usr/bin:/bin", [f"ForceCommand {cmd_exe}"]),
    }
    yield servers
    for server in servers.values():
        stop_process(server.proc)


def _node(server: _GpuSSHD, name: str) -> Node:
    user = pwd.getpwuid(os.getuid()).pw_name
    ssh = SSHSettings(user=user, port=server.port, known_hosts=str(server.known_hosts))
    return Node(name=name, tier="gpu", host=LOOPBACK, ssh=ssh)


def test_gpu_node_over_ssh_reads_the_standin_sample(gpu_sshds: dict[str, _GpuSSHD]) -> None:
    server = gpu_sshds["gpu"]
    credentials = SSHCredentials(key=SecretStr(server.key.read_text()))
    fact = sample_node_gpus(_node(server, "gpu1"), credentials)
    assert fact.status is GpuStatus.OK, fact.detail
    [gpu] = fact.gpus
    assert (gpu.index, gpu.name, gpu.used_bytes, gpu.total_bytes) == (0, "NVIDIA H200", 0, 143771 * MIB)


def test_node_without_nvidia_smi_is_reported_not_raised(gpu_sshds: dict[str, _GpuSSHD]) -> None:
    server = gpu_sshds["cpu"]
    credentials = SSHCredentials(key=SecretStr(server.key.read_text()))
    fact = sample_node_gpus(_node(server, "nas"), credentials)
    assert fact.status is GpuStatus.NO_NVIDIA_SMI
    assert fact.detail == "nvidia-smi is not installed on this node"


def test_windows_node_without_nvidia_smi_is_not_installed_and_quiet(
    gpu_sshds: dict[str, _GpuSSHD], caplog: pytest.LogCaptureFixture
) -> None:
    server = gpu_sshds["windows"]
    credentials = SSHCredentials(key=SecretStr(server.key.read_text()))
    node = _node(server, "mark-ii").model_copy(update={"os": "windows"})
    with caplog.at_level(logging.DEBUG, logger="homelab.vram.sampling"):
        facts = [sample_node_gpus(node, credentials) for _ in range(2)]  # two rounds of the schedule
    assert [(f.status, f.detail) for f in facts] == [
        (GpuStatus.NO_NVIDIA_SMI, "nvidia-smi is not installed on this node")
    ] * 2
    assert [r.levelno for r in caplog.records] == [logging.DEBUG] * 2
    assert vram_round(facts, [], at=T0).samples == []  # nothing stored for it


def test_unknown_host_key_is_a_failed_fact_naming_the_node(
    gpu_sshds: dict[str, _GpuSSHD], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server = gpu_sshds["gpu"]
    node = _node(server, "gpu1").model_copy(
        update={"ssh": SSHSettings(user="root", port=server.port, known_hosts=str(tmp_path / "empty"))}
    )
    with caplog.at_level(logging.WARNING, logger="homelab.vram.sampling"):
        fact = sample_node_gpus(node, SSHCredentials(key=SecretStr(server.key.read_text())))
    assert fact.status is GpuStatus.FAILED
    assert "gpu1" in fact.detail
    assert [r.getMessage() for r in caplog.records] == [f"node gpu1: GPU sampling failed: {fact.detail}"]


async def test_round_stores_gpu_and_ollama_model_rows(
    gpu_sshds: dict[str, _GpuSSHD], ollama_standin: StandInServer, tmp_path: Path
) -> None:
    ollama_standin.standin.load("qwen2.5:0.5b", 600)
    server = gpu_sshds["gpu"]
    gpu_node = _node(server, "gpu1").model_copy(
        update={"endpoints": [Endpoint(name="ollama", kind=EndpointKind.OLLAMA, url=ollama_standin.url)]}
    )
    inv = Inventory(nodes=[gpu_node])
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
