"""Facts about a node's Ollama endpoints and the GGUF sources: read-only, gathered before planning.

Per endpoint: which source blobs it holds (`HEAD /api/blobs`), how each desired model was made
(`/api/show`: parameters, capabilities, the marker in its license), whether each pulled tag is
there, what is loaded (`/api/ps`) and every model it has (`/api/tags`). Per source: size and
SHA-256, the digest Ollama names its blob by.
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import Field

from homelab.docker_ops.sources import ProgressCallback, SourceFile, hash_local_file
from homelab.frozen import Frozen
from homelab.ollama.api import OllamaAPI, RunningModel, ShownModel
from homelab.ollama.desired import EndpointDesired, OllamaDesired

__all__ = ["EndpointFacts", "OllamaFacts", "blob_digest", "gather_facts"]


def blob_digest(source: SourceFile) -> str:
    return f"sha256:{source.sha256}"


class EndpointFacts(Frozen):
    """What one Ollama endpoint holds now."""

    blobs: dict[str, bool] = Field(description="source digest -> the endpoint has the blob")
    shown: dict[str, ShownModel | None] = Field(description="desired model -> how it was made (None: missing)")
    pulled: dict[str, bool] = Field(default_factory=dict, description="pull tag -> the endpoint has it")
    running: dict[str, RunningModel] = Field(description="loaded models by name")
    present: list[str] = Field(description="every model the endpoint has")


class OllamaFacts(Frozen):
    """The sources and every deployed endpoint of a node."""

    sources: dict[str, SourceFile] = Field(description="GGUF file name -> size and SHA-256")
    endpoints: dict[str, EndpointFacts]


def _endpoint_facts(api: OllamaAPI, desired: EndpointDesired, sources: Mapping[str, SourceFile]) -> EndpointFacts:
    digests = {blob_digest(sources[m.gguf]) for m in desired.models if m.gguf}
    return EndpointFacts(
        blobs={digest: api.blob_exists(digest) for digest in sorted(digests)},
        shown={m.name: api.show(m.name) for m in desired.models},
        pulled={m.pull: api.show(m.pull) is not None for m in desired.models if m.pull},
        running=api.running(),
        present=api.models(),
    )


def gather_facts(
    apis: Mapping[str, OllamaAPI], desired: OllamaDesired, progress: ProgressCallback | None = None
) -> OllamaFacts:
    """Hash the sources, then ask each endpoint what it holds (changes nothing).

    Args:
        apis: endpoint name -> its connector.

    Raises:
        OllamaError: an endpoint did not answer.
    """
    sources = {name: hash_local_file(path, name, progress) for name, path in sorted(desired.gguf_files().items())}
    endpoints = {e.endpoint: _endpoint_facts(apis[e.endpoint], e, sources) for e in desired.endpoints}
    return OllamaFacts(sources=sources, endpoints=endpoints)
