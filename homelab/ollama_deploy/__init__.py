"""Model deployment to Ollama nodes through their HTTP API: upload, create, preload one at a time, verify.

Layers, as in `docker_ops` and pyinfra: `api` is the connector (one httpx client per endpoint,
and the one place its errors become `OllamaError`); `desired` says what the inventory and the
VRAM plan want; `facts` only look (blobs, `/api/show`, `/api/ps`, `/api/tags`, source hashes);
`plan.plan` is pure and turns both into steps, each with its reason; `apply.apply` performs
them in order, preloads strictly one after the other; `check` sets `/api/ps` against the plan.
`rollout.roll_out_ollama_node` strings it together. Nothing here imports Prefect:
`tasks/ollama_deploy.py` and `flows/rollout.py` compose it.
"""

from homelab.ollama_deploy.api import OllamaAPI, RunningModel, ShownModel, open_ollama_client
from homelab.ollama_deploy.apply import ApiRunner, OllamaRolloutReport, OllamaStepRunner
from homelab.ollama_deploy.check import LoadCheck
from homelab.ollama_deploy.desired import (
    OllamaDesired,
    desired_ollama,
    ollama_endpoints,
    ollama_gguf_files,
    ollama_sources,
)
from homelab.ollama_deploy.plan import OllamaPlan
from homelab.ollama_deploy.rollout import (
    check_ollama_node,
    ollama_apis,
    ollama_vram_lines,
    plan_ollama_node,
    roll_out_ollama_node,
)
from homelab.ollama_deploy.settings import DEFAULT_OLLAMA_DEPLOY_SETTINGS, LoadWait, OllamaDeploySettings, OllamaTimeouts

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
    "check_ollama_node",
    "desired_ollama",
    "ollama_apis",
    "ollama_endpoints",
    "ollama_gguf_files",
    "ollama_sources",
    "ollama_vram_lines",
    "open_ollama_client",
    "plan_ollama_node",
    "roll_out_ollama_node",
]
