"""A node's rollout across both kinds of model server: its llama.cpp containers and its Ollama endpoints.

`homelab rollout` and the `rollout` flow answer with this for any node that has models to
deploy to Ollama (the Ollama part runs first; when it fails, the containers are not touched);
a node with containers only keeps answering with the container report alone.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, computed_field

from homelab.docker_ops.apply import RolloutReport
from homelab.ollama_deploy.apply import OllamaRolloutReport

__all__ = ["NodeRolloutReport"]


class NodeRolloutReport(BaseModel):
    """The container report (None: the node runs none, or the Ollama part failed first) and the Ollama report."""

    model_config = ConfigDict(frozen=True)

    node: str
    dry_run: bool = False
    ollama: OllamaRolloutReport
    containers: RolloutReport | None = None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def failure(self) -> str | None:
        """The first failure: the Ollama part's, else the containers'."""
        return self.ollama.failure or (self.containers.failure if self.containers else None)

    @property
    def ok(self) -> bool:
        return self.failure is None
