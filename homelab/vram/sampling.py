"""VRAM sampling: each node's GPUs over SSH (`nvidia-smi`), each loaded model from its server's API.

Two sources because they answer different questions: nvidia-smi says how full a GPU is
(whoever holds the memory), the runtime says which model holds how much. Ollama's `/api/ps`
gives `size_vram` per resident model (read by the probe, `ProbeResult.loaded`).
llama-server has no VRAM figure on `/metrics` or `/slots`, so its models appear only as
GPU use in the nvidia-smi rows.

Failures are per node and are data: an unreachable node, a node without GPUs or without
nvidia-smi ends up as a `GpuFact` with its status and reason, and the other nodes are
sampled all the same.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

import httpx
from pydantic import BaseModel, ConfigDict

from homelab.errors import RemoteError
from homelab.health.probe import ProbeResult
from homelab.health.sweep import probe_endpoints
from homelab.inventory import EndpointKind, Inventory, Node
from homelab.remote import DEFAULT_SSH_TIMEOUTS, SSHCredentials, SSHTimeouts, open_shell
from homelab.vram.gpu_facts import NVIDIA_SMI_QUERY, GpuFact, GpuStatus, VramSample, VramSource, gpu_fact, gpu_samples

__all__ = ["VramRound", "model_samples", "probe_model_vram", "sample_node_gpus", "vram_round"]

log = logging.getLogger(__name__)
# nvidia-smi answers in well under a second; a hung driver should not hold a sampling round.
NVIDIA_SMI_TIMEOUT_S = 20.0


class VramRound(BaseModel):
    """One sampling round: every row to store, and what each node's GPU query found."""

    model_config = ConfigDict(frozen=True)

    sampled_at: datetime
    samples: list[VramSample]
    nodes: list[GpuFact]


def sample_node_gpus(node: Node, credentials: SSHCredentials, timeouts: SSHTimeouts = DEFAULT_SSH_TIMEOUTS) -> GpuFact:
    """Run `NVIDIA_SMI_QUERY` on the node over SSH (host key verified by `homelab.remote`).

    Returns:
        The fact: readings, or NO_GPU / NO_NVIDIA_SMI, or FAILED with the SSH error's message
        (an unreachable node is one node's finding, not the end of the round).
    """
    at = datetime.now(UTC)
    if node.ssh is None:
        return GpuFact(
            node=node.name, sampled_at=at, status=GpuStatus.FAILED, detail="no ssh settings in the cluster file"
        )
    try:
        with open_shell(node, credentials, timeouts) as shell:
            result = shell.run(NVIDIA_SMI_QUERY, check=False, timeout_s=NVIDIA_SMI_TIMEOUT_S)
    except RemoteError as exc:
        fact = GpuFact(node=node.name, sampled_at=at, status=GpuStatus.FAILED, detail=str(exc))
    else:
        fact = gpu_fact(node.name, at, result.exit_status, result.stdout, result.stderr)
    # A node without nvidia-smi or GPUs says so every round by design (a NAS, a Windows node
    # without the NVIDIA driver): that is in the round's artifact, not a warning every minute.
    if fact.status is GpuStatus.FAILED:
        log.warning("node %s: GPU sampling failed: %s", node.name, fact.detail)
    else:
        log.debug("node %s: GPU sampling: %s %s", node.name, fact.status.value, fact.detail)
    return fact


def model_samples(results: Iterable[ProbeResult], at: datetime) -> list[VramSample]:
    """Per loaded model of every Ollama probe result (`/api/ps` size_vram), as history rows."""
    return [
        VramSample(sampled_at=at, node=r.node, source=VramSource.OLLAMA, model=m.name, used_bytes=m.size_vram_bytes)
        for r in results
        if r.kind is EndpointKind.OLLAMA
        for m in r.loaded
    ]


async def probe_model_vram(inv: Inventory, client: httpx.AsyncClient) -> list[ProbeResult]:
    """Probe the inventory's Ollama endpoints (the probe reads `/api/ps`); others have no VRAM API."""
    pairs = [(n, e) for n, e in inv.endpoints() if e.kind is EndpointKind.OLLAMA]
    return await probe_endpoints(inv, pairs, client)


def vram_round(
    facts: Sequence[GpuFact], ollama_results: Iterable[ProbeResult], at: datetime | None = None
) -> VramRound:
    """Assemble one round from each node's GPU fact and the Ollama probe results.

    Args:
        facts: one per sampled node (from `sample_node_gpus`, or any connector's output
            judged by `homelab.vram.gpu_facts.gpu_fact`).
        ollama_results: probe results carrying `loaded` models.
        at: the round's time for the model rows; default now.
    """
    at = at or datetime.now(UTC)
    samples = [s for fact in facts for s in gpu_samples(fact)] + model_samples(ollama_results, at)
    return VramRound(sampled_at=at, samples=samples, nodes=list(facts))


def nodes_to_sample(inv: Inventory) -> list[Node]:
    """Nodes whose GPUs can be asked (ssh settings) or should have been (GPUs declared)."""
    return [node for node in inv.nodes if node.ssh is not None or node.gpus]
