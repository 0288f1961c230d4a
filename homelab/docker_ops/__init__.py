"""Model rollout with Docker: named volumes, verified copy-in, serial start behind a health gate, rollback.

Layers, as in pyinfra: `connect` is the connector (one engine per node, and the one place
docker-py, requests and paramiko errors become `DockerOpError`); facts only look
(`volumes.volume_files`, `containers.container_state`, the sources' hashes); `plan.plan` is
pure and turns the desired state and the facts into steps, each with its reason; `apply.apply`
performs them, one container at a time (`serial`, `gate`). `homelab.rollout.containers` strings it
together. (The functions `plan.plan` and `apply.apply` are not re-exported here: they would
hide their modules.) Nothing here imports Prefect: `tasks/rollout.py` and `flows/rollout.py` compose it.
"""

from homelab.docker_ops.apply import EngineRunner, RolloutReport, StepOutcome, StepRunner, StepStatus
from homelab.docker_ops.connect import DEFAULT_DOCKER_TIMEOUTS, DockerTimeouts, Engine, SSHAccess, open_engine
from homelab.docker_ops.containers import ContainerSettings, ContainerSpec, ContainerState
from homelab.docker_ops.gate import GateResult, HealthGate
from homelab.docker_ops.helper import HelperSettings
from homelab.docker_ops.plan import Plan
from homelab.docker_ops.serial import DEFAULT_ROLLOUT_SETTINGS, RolloutSettings
from homelab.docker_ops.sources import CopyProgress, ModelSource, ProgressCallback, model_sources

__all__ = [
    "DEFAULT_DOCKER_TIMEOUTS",
    "DEFAULT_ROLLOUT_SETTINGS",
    "ContainerSettings",
    "ContainerSpec",
    "ContainerState",
    "CopyProgress",
    "DockerTimeouts",
    "Engine",
    "EngineRunner",
    "GateResult",
    "HealthGate",
    "HelperSettings",
    "ModelSource",
    "Plan",
    "ProgressCallback",
    "RolloutReport",
    "RolloutSettings",
    "SSHAccess",
    "StepOutcome",
    "StepRunner",
    "StepStatus",
    "model_sources",
    "open_engine",
]
