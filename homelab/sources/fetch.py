"""Model sources of a node fetched into the local cache: what a rollout copies into volumes and uploads to Ollama.

A model with a `source:` is fetched before the rollout changes anything (`homelab.rollout.node`
step 1): a local path is checked (and hashed when a `sha256` is pinned), an https:// URL is
downloaded into homelab's cache (`homelab.sources.https`), a hub file into the hub's cache
(`homelab.sources.hub`). The rollout then copies the cached file exactly as it copies one from
`--models-dir`. A model without a source still comes from the folders given to the rollout.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
from pydantic import SecretStr

from homelab.docker_ops.sources import ProgressCallback, hash_local_file
from homelab.errors import ChecksumMismatch, ModelSourceMissing, SecretsError
from homelab.inventory import EndpointKind, Inventory, Node
from homelab.sources.https import fetch_https
from homelab.sources.hub import DEFAULT_HUB_ENDPOINT, fetch_hub
from homelab.sources.limits import DEFAULT_FETCH_LIMITS, FetchLimits
from homelab.sources.spec import Fetched, SourceKind, SourceSpec

__all__ = ["DEFAULT_CACHE_DIR", "Fetcher", "TokenReader", "fetch_node_sources", "node_sources", "open_fetch_client"]

DEFAULT_CACHE_DIR = Path("~/.cache/homelab/models")
# An inventory secret name -> its value (tasks/access.py `secret_reader`: Vault or a Prefect block).
TokenReader = Callable[[str], SecretStr | None]


def open_fetch_client(limits: FetchLimits = DEFAULT_FETCH_LIMITS) -> httpx.Client:
    """The connector for https:// downloads and ranged header reads, with the limits' timeouts.

    No redirects beyond httpx's bound of 20, no proxies from the environment guessing for us.
    """
    timeout = httpx.Timeout(limits.read_s, connect=limits.connect_s)
    return httpx.Client(timeout=timeout, follow_redirects=True, trust_env=False)


@dataclass(frozen=True)
class Fetcher:
    """Everything a fetch needs: where files are cached, the hub, the connector, the secrets.

    Args:
        client: for https:// sources (the hub is reached by huggingface_hub's own client).
        read_token: reads a source's `token_secret` (called only for a hub source that names one).
        hub_cache_dir: the hub's cache; None: huggingface_hub's own (HF_HUB_CACHE).
    """

    client: httpx.Client
    cache_dir: Path = DEFAULT_CACHE_DIR
    hub_endpoint: str = DEFAULT_HUB_ENDPOINT
    hub_cache_dir: Path | None = None
    read_token: TokenReader | None = None
    limits: FetchLimits = DEFAULT_FETCH_LIMITS
    progress: ProgressCallback | None = None

    def token(self, spec: SourceSpec) -> SecretStr | None:
        if spec.token_secret is None:
            return None
        if self.read_token is None:
            raise SecretsError(f"{spec.shown()}: token_secret {spec.token_secret!r}: no secrets store to read it from")
        return self.read_token(spec.token_secret)

    def fetch(self, spec: SourceSpec, model: str) -> list[Path]:
        """The local path of every part of the source, the first part first (as `fetch_checked`)."""
        return [file.path for file in self.fetch_checked(spec, model)]

    def fetch_checked(self, spec: SourceSpec, model: str) -> list[Fetched]:
        """Every part of the source on this machine with the digest it was checked against, first part first.

        Raises:
            ModelSourceMissing: a local source is not a file.
            ChecksumMismatch: the bytes are not those expected (the cache keeps no bad copy).
            ModelDownloadError: the hub or the server refused or failed.
        """
        if spec.kind == SourceKind.HUB:
            return fetch_hub(spec, model, endpoint=self.hub_endpoint, cache_dir=self.hub_cache_dir,
                             token=self.token(spec), limits=self.limits, checked_dir=self.cache_dir.expanduser(),
                             progress=self.progress)  # fmt: skip
        if spec.kind == SourceKind.HTTPS:
            path = fetch_https(self.client, spec, model, self.cache_dir.expanduser(), self.limits, self.progress)
            return [Fetched(path=path, sha256=spec.sha256, size_bytes=path.stat().st_size)]
        return _local(spec, model, self.progress)


def _local(spec: SourceSpec, model: str, progress: ProgressCallback | None) -> list[Fetched]:
    first = Path(spec.url).expanduser()
    paths = [first.with_name(name) for name in spec.part_names()]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise ModelSourceMissing(f"{model}: source not found: {', '.join(missing)}")
    if spec.sha256 is not None and (got := hash_local_file(first, model, progress).sha256) != spec.sha256:
        raise ChecksumMismatch(f"{model}: {first}: SHA-256 expected {spec.sha256}, got {got}")
    # Unpinned, a local file is hashed by the rollout like one from --models-dir.
    return [Fetched(path=p, sha256=spec.sha256 if p == first else None, size_bytes=p.stat().st_size) for p in paths]


def _specs(node: Node) -> Iterator[tuple[str, SourceSpec]]:
    """(model file, source) of each container and Ollama deploy of the node that has a source."""
    for endpoint in node.endpoints:
        if endpoint.container is not None and endpoint.container.source is not None:
            yield endpoint.container.model_file, endpoint.container.source
        for model in endpoint.models if endpoint.kind == EndpointKind.OLLAMA else []:
            if model.deploy is not None and model.deploy.gguf and model.deploy.source is not None:
                yield model.deploy.gguf, model.deploy.source


def node_sources(inv: Inventory, node: Node | None = None) -> dict[str, SourceSpec]:
    """Model file -> its source, for one node or the whole inventory (the loader refuses one name
    given two sources: `homelab.inventory.references`)."""
    nodes = [node] if node is not None else inv.nodes
    found: dict[str, SourceSpec] = {}
    for model_file, spec in (pair for each in nodes for pair in _specs(each)):
        found.setdefault(model_file, spec)
    return found


def fetch_node_sources(inv: Inventory, node: Node, fetcher: Fetcher) -> dict[str, list[Fetched]]:
    """Model file -> its parts on this machine (and their checked digests), for every model of `node` with a source.

    Raises:
        ModelSourceMissing, ChecksumMismatch, ModelDownloadError: as `Fetcher.fetch`.
    """
    return {name: fetcher.fetch_checked(spec, name) for name, spec in node_sources(inv, node).items()}
