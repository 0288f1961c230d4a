"""A cluster file whose GPU node answers nothing: what a dry run must plan from the file alone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from homelab.tiny_gguf import write_tiny_llama
from tests.fixtures.net import free_port

__all__ = ["offline_cluster"]


def offline_cluster(tmp_path: Path, engine_url: str) -> Path:
    """A GPU node whose engine and Ollama endpoint nobody answers for: two containers listed out
    of start order (one sets -ngl in args and its restart policy), and an Ollama model to pull."""
    models = tmp_path / "models"
    models.mkdir()
    write_tiny_llama(models / "coder.gguf", seed=1)
    write_tiny_llama(models / "chat.gguf", seed=2)

    def llama(name: str, **box: Any) -> dict[str, Any]:
        return {
            "name": name, "kind": "llamacpp", "url": f"http://127.0.0.1:{free_port()}",
            "models": [{"name": name, "alias": name}],
            "container": {"image": "llama:none", "model_file": f"{name}.gguf", **box},
        }  # fmt: skip

    ollama = {
        "name": "ollama", "kind": "ollama", "url": f"http://127.0.0.1:{free_port()}",
        "models": [{"name": "qwen2.5:0.5b", "alias": "small", "deploy": {"pull": "qwen2.5:0.5b", "num_ctx": 2048}}],
    }  # fmt: skip
    node = {
        "name": "gpu2", "tier": "secondary", "host": "127.0.0.1", "docker": {"url": engine_url},
        "gpus": [{"name": "RTX 3090", "vram_gib": 24}],
        "endpoints": [
            llama("coder", start_order=2, args=["-ngl", "2"], restart_policy="always", volume="code"),
            llama("chat", start_order=1, ctx_size=1024),
            ollama,
        ],
    }  # fmt: skip
    cluster = tmp_path / "cluster.yaml"
    cluster.write_text(yaml.safe_dump({"nodes": [node]}))
    return cluster
