"""Model deployment to Ollama nodes through their HTTP API: upload, create, preload one at a time, verify.

Layers, as in `docker_ops` and pyinfra: `api` is the connector (one httpx client per endpoint,
and the one place its errors become `OllamaError`); `desired` says what the inventory and the
VRAM plan want; `facts` only look (blobs, `/api/show`, `/api/ps`, `/api/tags`, source hashes);
`plan.plan` is pure and turns both into steps, each with its reason; `apply.apply` performs
them in order, preloads strictly one after the other; `check` sets `/api/ps` against the plan.
`homelab.rollout.ollama` strings it together. Nothing here imports Prefect:
`tasks/ollama.py` and `flows/rollout.py` compose it.
"""

from homelab.ollama.api import OllamaAPI, RunningModel, ShownModel, open_ollama_client
from homelab.ollama.apply import ApiRunner, OllamaRolloutReport, OllamaStepRunner
from homelab.ollama.check import LoadCheck
from homelab.ollama.desired import (
    OllamaDesired,
    desired_ollama,
    ollama_endpoints,
    ollama_gguf_files,
    ollama_sources,
)
from homelab.ollama.plan import OllamaPlan
from homelab.ollama.settings import DEFAULT_OLLAMA_DEPLOY_SETTINGS, LoadWait, OllamaDeploySettings, OllamaTimeouts

__all__ = [
    "DEFAULT_OLLAMA_DEPLOY_SETTINGS",
    "ApiRunner",
    "LoadCheck",
    "LoadWait",
    "OllamaAPI",
    "OllamaDeploySettings",
    "OllamaDesired",
    "OllamaPlan",
    "OllamaRolloutReport",
    "OllamaStepRunner",
    "OllamaTimeouts",
    "RunningModel",
    "ShownModel",
    "desired_ollama",
    "ollama_endpoints",
    "ollama_gguf_files",
    "ollama_sources",
    "open_ollama_client",
]
