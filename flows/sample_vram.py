"""The `sample-vram` flow: record each GPU's memory and utilisation, and each loaded model's VRAM.

Scheduled every minute or few (prefect.yaml). A node without GPUs or without nvidia-smi is
reported as such in the artifact and stored as nothing; an unreachable node is a finding of
that node's task run. The flow fails only when the history cannot be written.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow

from flows.quoting import quoted
from homelab.inventory import load_inventory
from homelab.vram.sampling import VramRound, nodes_to_sample, vram_round
from tasks.vram import probe_ollama_vram, publish_vram_artifact, record_vram_round, sample_node_vram

__all__ = ["sample_vram"]


@flow(
    name="sample-vram",
    description="Record VRAM per GPU (nvidia-smi over SSH) and per loaded model.",
    persist_result=False,
)
async def sample_vram(inventory: str = "cluster.yaml", vault_block: str | None = None) -> VramRound:
    """Sample the GPUs of every node with ssh settings, and the Ollama endpoints' loaded models.

    Args:
        inventory: the cluster file, read at run time.
        vault_block: the `VaultSecrets` block holding the nodes' SSH keys (None: no secrets).
    """
    path = Path(inventory)
    inv = load_inventory(path)
    # Only the block's name goes to the task, which reads the node's key itself (tasks/vram.py).
    facts = [sample_node_vram(quoted(inv), quoted(node), vault_block) for node in nodes_to_sample(inv)]
    results = await probe_ollama_vram(quoted(inv))
    sampled = vram_round(facts, results)
    await publish_vram_artifact(quoted(sampled))
    record_vram_round(inv.history.url, str(path.resolve().parent), quoted(sampled))
    return sampled
