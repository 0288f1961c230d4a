"""Options of the commands that read models' `source:` (`homelab plan`, `homelab rollout`); the fetcher they build."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from pydantic import SecretStr

    from homelab.docker_ops.sources import ProgressCallback
    from homelab.inventory import Inventory
    from homelab.sources.fetch import Fetcher

__all__ = ["CacheDirOption", "HubEndpointOption", "HubTokenBlockOption", "fetcher_for"]


def _hub_endpoint(url: str) -> str:
    from homelab.sources.spec import check_hub_endpoint  # light: the inventory's own schema module

    try:
        return check_hub_endpoint(url)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


def _cache_dir(path: Path | None) -> Path | None:
    if path is not None and path.expanduser().exists() and not path.expanduser().is_dir():
        raise typer.BadParameter(f"{path} is not a folder")
    return path


HubEndpointOption = Annotated[
    str,
    typer.Option(
        "--hf-endpoint",
        envvar="HF_ENDPOINT",
        callback=_hub_endpoint,
        help="The Hugging Face hub (or a mirror) that hf:// sources come from.",
    ),
]
HubTokenBlockOption = Annotated[
    str | None, typer.Option("--vault-block", help="A saved Vault Secrets block: reads hf:// sources' tokens.")
]
CacheDirOption = Annotated[
    Path | None,
    typer.Option(
        "--cache-dir",
        envvar="HOMELAB_MODEL_CACHE",
        callback=_cache_dir,
        help="Where https:// sources are cached [default: ~/.cache/homelab/models]; hf:// use the hub's cache.",
        show_default=False,
    ),
]


def _token_reader(inv: Inventory, vault_block: str | None) -> Callable[[str], SecretStr | None]:
    """Reads a source's token_secret through the secrets store; Prefect loads only when one is read."""

    def read(name: str) -> SecretStr | None:
        from homelab_app.stack.prefect_cli import default_prefect_home, prefect_env

        # As `homelab rollout` does for an ssh:// key: Prefect in this process, analytics off.
        os.environ.update(prefect_env(os.environ, default_prefect_home()))
        from tasks.access import secret_reader

        return secret_reader(inv, vault_block)(name)

    return read


def fetcher_for(
    inv: Inventory,
    *,
    hub_endpoint: str,
    cache_dir: Path | None,
    vault_block: str | None,
    progress: ProgressCallback | None = None,
) -> Fetcher:
    """A fetcher with a fresh connector (close `fetcher.client` when done)."""
    from homelab.sources.fetch import DEFAULT_CACHE_DIR, Fetcher, open_fetch_client

    return Fetcher(
        client=open_fetch_client(),
        cache_dir=(cache_dir or DEFAULT_CACHE_DIR).expanduser(),
        hub_endpoint=hub_endpoint.rstrip("/"),
        read_token=_token_reader(inv, vault_block),
        progress=progress,
    )
