"""Every error homelab raises on purpose: one tree under `HomelabError`, and what each means.

The `homelab` command prints an error's message on one line (no traceback) and exits with the
code shown: 2 for input it cannot use (a file, an option, a model that does not fit), 1 for a
system that failed or refused while the command ran. A few commands that report their own
outcome choose otherwise (`homelab rollout` exits 1 for any error during the rollout itself).

    HomelabError
    ├── InventoryError (ValueError)             2  the cluster file is unreadable or invalid
    │   ├── GatewayConfigError                  2  a LiteLLM config cannot be read or imported
    │   └── DeployConfigError                   2  prefect.yaml cannot be read or lacks what `homelab up` needs
    ├── FileAccessError (ValueError)            2  an input is no readable regular file; an output cannot be written
    ├── ModelSourceMissing (FileNotFoundError)  2  a model file the rollout needs is not in the folder given
    ├── ModelDownloadError                      1  a model source (hub, https) refused, failed or was cut short
    │   └── ChecksumMismatch                    1  a fetched model file's SHA-256 is not the one expected
    ├── VramError                               2  the VRAM planner cannot answer
    │   ├── ModelFileError (ValueError)         2  a GGUF file is missing, truncated, corrupt or no GGUF
    │   ├── UnsupportedModel (ValueError)       2  readable metadata of a model the estimator does not know
    │   ├── MetadataUnavailable                 2  a server (Ollama, llama-server) gave no usable metadata
    │   ├── SettingsError (ValueError)          2  run settings that llama.cpp itself would refuse
    │   ├── LineupError (ValueError)            2  a lineup file is unreadable or invalid
    │   └── VramRefused                         2  a node's models do not fit its GPUs
    ├── ReportError (ValueError)                2  a report period or output it cannot use
    ├── HistoryError                            2  the history database cannot be opened, read or written
    ├── ModelError                              2  the router's weights file is missing or malformed
    ├── RequestError (ValueError)               2  a request body routing cannot read
    ├── RemoteError                             1  SSH to a node failed
    │   ├── HostKeyMismatch                     1  the node's host key is unknown or changed
    │   └── CommandFailed                       1  a remote command exited non-zero
    ├── DockerOpError                           1  a Docker engine refused or failed an operation
    │   └── ContainerStepFailed                 1  a container step failed before its health gate
    ├── OllamaError                             1  an Ollama server refused or failed a deployment call
    ├── WakeFailed                              1  the wake packet or the wake command failed
    ├── RecoveryStepFailed                      1  a recovery step's Prefect task ended Failed or Crashed
    ├── SecretsError                            1  a secret store is unreachable, refused, or lacks the secret
    ├── StackError                              1  `homelab up`/`down` could not start, reach or set up Prefect
    ├── DemoError                               1  a demo server would not start or serve
    ├── BuildFailed                             1  llama-server could not be found or built for the demo
    ├── PrefectApiError                         1  the Prefect API refused a call of the demo's tour
    └── TourError                               1  a step of the demo's tour failed

Third-party errors are translated at one boundary each, with `raise ... from exc`: `remote.py`
for paramiko, `docker_ops.connect` for docker-py, `history` for SQLAlchemy, `blocks/vault.py`
for hvac (and Prefect's client loading a block), and for httpx `health.http` (probes, their
client and readiness polls: a dead endpoint is a DOWN result, not an error) and `ollama.api`
(Ollama's API: `OllamaError`); `vram.served` reads through those two. Model sources:
`sources.hub` for huggingface_hub, `sources.https` and `sources.remote_header` for their httpx
downloads and range reads (`ModelDownloadError`). The application's Prefect client is
`homelab_app.stack`'s.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from homelab.docker_ops.serial import Pending

__all__ = [
    "BuildFailed",
    "ChecksumMismatch",
    "CommandFailed",
    "ContainerStepFailed",
    "DemoError",
    "DeployConfigError",
    "DockerOpError",
    "FileAccessError",
    "GatewayConfigError",
    "HistoryError",
    "HomelabError",
    "HostKeyMismatch",
    "InventoryError",
    "LineupError",
    "MetadataUnavailable",
    "ModelDownloadError",
    "ModelError",
    "ModelFileError",
    "ModelSourceMissing",
    "OllamaError",
    "PrefectApiError",
    "Problem",
    "RecoveryStepFailed",
    "RemoteError",
    "ReportError",
    "RequestError",
    "SecretsError",
    "SettingsError",
    "StackError",
    "TourError",
    "UnsupportedModel",
    "VramError",
    "VramRefused",
    "WakeFailed",
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


class FileAccessError(HomelabError, ValueError):
    """An input is not a readable regular file, is too large, or an output cannot be written."""

    def __init__(self, path: str | Path, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = str(path)
        self.message = message


class ModelSourceMissing(HomelabError, FileNotFoundError):
    """A model file the inventory needs is not in the folder the rollout was pointed at."""


class ModelDownloadError(HomelabError):
    """A model's `source:` could not be fetched or read: the hub or server refused, failed or cut the
    download short, or a bound was crossed; the message names the model and its source."""


class ChecksumMismatch(ModelDownloadError):
    """A fetched model file does not hash to the SHA-256 expected; the message names both digests."""


class VramError(HomelabError):
    """Root of the VRAM planner's errors. A lineup that does not fit is not one: the planner
    returns CPU-only verdicts with reasons."""


class ModelFileError(VramError, ValueError):
    """A model file cannot be read as GGUF; the message names the file and what is wrong."""


class UnsupportedModel(VramError, ValueError):
    """The model's architecture or shape is outside what the estimator models."""


class MetadataUnavailable(VramError):
    """A serving runtime did not answer with metadata the estimator can use."""


class SettingsError(VramError, ValueError):
    """Run settings that llama.cpp refuses (a quantized V cache without flash attention...)."""


class LineupError(VramError, ValueError):
    """A lineup file cannot be read, or names models the inventory does not serve."""


class VramRefused(VramError):
    """A model of the node does not fit its GPUs; the message gives each one and why."""


class ReportError(HomelabError, ValueError):
    """A report was asked for something it cannot do (a bad period, an unwritable output)."""


class ModelError(HomelabError):
    """The router's weights file is missing or malformed (reinstall, or retrain)."""


class RequestError(HomelabError, ValueError):
    """A request body routing cannot read (not an object, no messages, no user message)."""


class ContainerStepFailed(DockerOpError):
    """A container step failed before its gate; `pending` says what was done and must be undone."""

    def __init__(self, message: str, pending: Pending) -> None:
        super().__init__(message)
        self.pending = pending


class WakeFailed(HomelabError):
    """The wake packet could not be sent, or the wake command failed."""


class RecoveryStepFailed(HomelabError):
    """A step of the recover-node flow ran as a Prefect task that did not complete; its state's message says why.

    The recovery loop records it as the step's failure and decides from it, as from any other.
    """


class SecretsError(HomelabError):
    """A secret could not be read: the store is unreachable, refused us, or lacks the path or key."""


class DemoError(HomelabError):
    """A demo server would not start or serve; the message names it and quotes its log."""


class BuildFailed(HomelabError):
    """llama-server could not be found or built; the message carries the build's last lines."""


class PrefectApiError(HomelabError):
    """The Prefect API refused a call, or a run did not finish in time."""


class TourError(HomelabError):
    """A step of the tour failed; the message says which and why."""
