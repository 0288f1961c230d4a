"""Prefect tasks of VRAM sampling: each node's GPUs over SSH, Ollama's loaded models, the history write.

One task per node for the GPU query, so a node that hangs or refuses shows in the UI as its
own task run; its failure is still a finding (the `GpuFact` says why), not a failed flow.
The node's SSH key is read inside that task (`tasks.access`): a secret in a task parameter
would be stored by Prefect, so only the cluster file's references and the block's name cross.
Reading is idempotent, so the queries retry (`tasks.options`); the history write does not
(a write that failed may have committed, and a retry would store the round twice), and the
artifact goes out once.
"""

from __future__ import annotations

from pathlib import Path

from prefect import task
from prefect.artifacts import acreate_table_artifact

from homelab.health.http import open_probe_client
from homelab.health.probe import ProbeResult
from homelab.history import open_history
from homelab.inventory import Inventory, Node
from homelab.vram.gpu_facts import GpuFact
from homelab.vram.sampling import VramRound, probe_model_vram, sample_node_gpus
from tasks.access import credentials_for
from tasks.options import task_options

__all__ = ["ARTIFACT_KEY", "probe_ollama_vram", "publish_vram_artifact", "record_vram_round", "sample_node_vram"]

ARTIFACT_KEY = "vram-sample"


@task(name="sample-node-vram", task_run_name="vram-{node.name}", **task_options(idempotent=True))
def sample_node_vram(inv: Inventory, node: Node, vault_block: str | None) -> GpuFact:
    """nvidia-smi on one node over SSH: readings, or why there are none.

    Args:
        inv: the cluster; its `secrets` say where the node's key lives.
        node: the node to query.
        vault_block: the `VaultSecrets` block that reads Vault refs (None: no Vault).

    Raises:
        SecretsError: the secrets store failed or lacks the node's key.
    """
    return sample_node_gpus(node, credentials_for(inv, node, vault_block))


@task(name="probe-ollama-vram", **task_options(idempotent=True))
async def probe_ollama_vram(inv: Inventory) -> list[ProbeResult]:
    """Ollama endpoints' `/api/ps`: the VRAM each loaded model holds."""
    async with open_probe_client() as client:
        return await probe_model_vram(inv, client)


@task(name="record-vram-round", **task_options(idempotent=False))
def record_vram_round(url: str, base_dir: str, sampled: VramRound) -> int:
    """Store the round's rows in the history (one transaction); returns how many."""
    with open_history(url, relative_to=Path(base_dir)) as history:
        return history.record_vram_samples(sampled.samples)


@task(name="publish-vram-artifact", **task_options(idempotent=False))
async def publish_vram_artifact(sampled: VramRound) -> None:
    """A table artifact (key `vram-sample`): one row per node with its GPU status and readings."""
    rows = [
        {
            "node": fact.node,
            "status": fact.status.value,
            "gpus": ", ".join(f"{g.index}: {g.name} {g.used_bytes or 0} / {g.total_bytes or 0} B" for g in fact.gpus),
            "detail": fact.detail,
        }
        for fact in sampled.nodes
    ]
    models = sum(1 for s in sampled.samples if s.model)
    await acreate_table_artifact(
        table=rows, key=ARTIFACT_KEY, description=f"{len(sampled.samples)} rows, {models} models"
    )
