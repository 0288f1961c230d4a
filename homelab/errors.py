"""The exceptions homelab raises, one tree under `HomelabError`.

    HomelabError
    ├── InventoryError (ValueError)   the cluster file is unreadable or invalid
    │   ├── GatewayConfigError        a LiteLLM config cannot be read or imported
    │   └── DeployConfigError         prefect.yaml cannot be read or lacks what `homelab up` needs
    ├── RemoteError                   SSH to a node failed
    │   ├── HostKeyMismatch           the node's host key is unknown or changed
    │   └── CommandFailed             a remote command exited non-zero
    ├── DockerOpError                 a Docker engine refused or failed an operation
    ├── OllamaError                   an Ollama server refused or failed a deployment call
    ├── HistoryError                  the history database cannot be opened, read or written
    └── StackError                    `homelab up`/`down` could not start, reach or set up Prefect

Third-party errors are translated at one boundary each (`remote.py` for paramiko,
`docker_ops` for docker-py, `ollama_deploy.api` for httpx, `blocks/` for hvac) with `raise ... from exc`.
A dead endpoint is not an error: probes return it as data.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "CommandFailed",
    "DeployConfigError",
    "DockerOpError",
    "GatewayConfigError",
    "HistoryError",
    "HomelabError",
    "HostKeyMismatch",
    "InventoryError",
    "OllamaError",
    "Problem",
    "RemoteError",
    "StackError",
]


class HomelabError(Exception):
    """Root of every error homelab raises on purpose."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a cluster file, located as precisely as the file allows."""

    file: str
    line: int | None
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class InventoryError(HomelabError, ValueError):
    """The cluster file could not be read or is invalid; `problems` lists every finding."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class GatewayConfigError(InventoryError):
    """A LiteLLM proxy config could not be read or imported into a cluster file; each problem
    names the file, line and `model_list` entry. Importing builds an inventory, so these are
    reported (and caught) the way an invalid cluster file is."""


class RemoteError(HomelabError):
    """Talking to a node over SSH failed."""


class HostKeyMismatch(RemoteError):
    """The node's SSH host key is not the one on record (or there is none on record)."""


class CommandFailed(RemoteError):
    """A remote command exited with a non-zero status."""


class DockerOpError(HomelabError):
    """A Docker engine did not answer, or refused or failed an operation."""


class OllamaError(HomelabError):
    """An Ollama server did not answer, or refused or failed a deployment call (upload, create, load)."""


class HistoryError(HomelabError):
    """The history database could not be opened, read or written (the SQLAlchemy error is the cause)."""


class DeployConfigError(InventoryError):
    """prefect.yaml could not be read or lacks what `homelab up` deploys (named deployments with
    entrypoints); each problem names the file and line, reported the way a bad cluster file is."""


class StackError(HomelabError):
    """`homelab up` or `down` failed: a port is taken, the Prefect server exited or never became
    healthy, or a Prefect command failed. The message carries the log tail that says why."""
