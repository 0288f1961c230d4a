"""Shared by the `homelab up`/`down` tests: run the CLI as a user would, and ask Prefect's API what it has."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.fixtures.net import LOOPBACK, free_port

__all__ = ["HOMELAB", "api", "cluster_file", "homelab", "user_env"]

HOMELAB = Path(sys.executable).parent / "homelab"
# A fresh server on two busy cores, then deploy (imports every flow), then a worker.
UP_TIMEOUT_S = 420


def user_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment of a user with no Prefect server configured: no PREFECT_* settings at all,
    and a Prefect home of their own (so no profile on this machine points anywhere)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env["PREFECT_HOME"] = str(home)
    env.update(extra)
    return env


def homelab(
    *args: str, env: dict[str, str], cwd: Path, timeout_s: float = UP_TIMEOUT_S
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(HOMELAB), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout_s, check=False
    )


def api(api_url: str, path: str, body: dict[str, Any] | None = None) -> Any:
    """POST `body` (a filter) or GET when None; the JSON answer."""
    url = f"{api_url}/{path.lstrip('/')}"
    answer = httpx.get(url, timeout=10) if body is None else httpx.post(url, json=body, timeout=10)
    answer.raise_for_status()
    return answer.json()


def cluster_file(directory: Path, nodes: list[str]) -> Path:
    """A cluster whose nodes all serve nothing (each endpoint a closed loopback port), history beside it."""
    path = directory / "cluster.yaml"
    spec = {
        "nodes": [
            {
                "name": node,
                "tier": "gpu",
                "host": LOOPBACK,
                "endpoints": [{"name": "llm", "kind": "llamacpp", "url": f"http://{LOOPBACK}:{free_port()}"}],
            }
            for node in nodes
        ],
        "history": {"url": "sqlite:///history.db"},
    }
    path.write_text(yaml.safe_dump(spec))
    return path
