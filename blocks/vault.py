"""Secrets from HashiCorp Vault (or OpenBao) as a Prefect block, and the resolver for inventory secret refs.

Why a block: the Vault address and its credentials are configured once, in the Prefect UI or
with `prefect block register -m blocks` and `VaultSecrets(...).save(name)`, and every flow
reads through it; the credentials are `SecretStr` fields, so the UI and the API show them
obfuscated. The cluster file never holds a secret, only where it lives: a Vault path and key,
or the name of one of Prefect's own `Secret` blocks for people without Vault.

Every value comes back as `SecretStr`, whose `repr` and `str` are `**********`: a value that
slips into a log line, a task parameter or an artifact shows as stars. `get_secret_value()`
is called only where the value is written to an SSH stdin (`homelab.remote`).

This module is the boundary for hvac: its errors, and the requests errors under it, become
`SecretsError` here, naming the path and key but never the value; so do Prefect's when a
block cannot be loaded.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import httpx
import hvac
import hvac.exceptions
import requests.exceptions
from prefect.blocks.core import Block
from prefect.blocks.system import Secret
from pydantic import Field, SecretStr, model_validator

from homelab.errors import SecretsError
from homelab.inventory import Inventory, SecretRef

__all__ = ["Secret", "VaultSecrets", "load_vault", "read_secret", "resolve_secret"]

DEFAULT_VAULT_TIMEOUT_S = 10.0


@contextmanager
def _translated(doing: str) -> Iterator[None]:
    """The hvac boundary: Vault's answers and transport failures become `SecretsError`."""
    try:
        yield
    except hvac.exceptions.InvalidPath as exc:
        raise SecretsError(f"{doing}: no such secret (or no access to it)") from exc
    except (hvac.exceptions.Forbidden, hvac.exceptions.Unauthorized) as exc:
        raise SecretsError(f"{doing}: permission denied: {_first_line(exc)}") from exc
    except hvac.exceptions.VaultError as exc:
        raise SecretsError(f"{doing}: {type(exc).__name__}: {_first_line(exc)}") from exc
    except requests.exceptions.RequestException as exc:
        raise SecretsError(f"{doing}: the Vault server does not answer: {type(exc).__name__}") from exc


def _first_line(exc: BaseException) -> str:
    return (str(exc).splitlines() or [""])[0][:200]


class VaultSecrets(Block):
    """Where Vault (or OpenBao) answers, how to log in, and the KV v2 secret `get()` reads.

    Auth: a token, or AppRole (`role_id` and `secret_id`); exactly one of the two.
    `path` and `key` are the default secret for `get()`; `read(path, key)` reads any other.
    """

    _block_type_name = "Vault Secrets"
    _block_type_slug = "vault-secrets"
    _description = (
        "Secrets from HashiCorp Vault or OpenBao (KV v2), by token or AppRole. "
        "Values come back masked (SecretStr) and are passed to nodes on stdin only."
    )

    url: str = Field(description="the Vault address, e.g. https://vault.lan:8200")
    token: SecretStr | None = Field(None, description="a Vault token (or use AppRole)")
    role_id: SecretStr | None = Field(None, description="AppRole role_id")
    secret_id: SecretStr | None = Field(None, description="AppRole secret_id")
    namespace: str | None = Field(None, description="Vault Enterprise namespace; leave empty otherwise")
    mount: str = Field("secret", description="mount point of the KV version 2 secrets engine")
    path: str | None = Field(None, description="secret path read by get(), e.g. homelab/ssh")
    key: str | None = Field(None, description="key inside that secret read by get()")
    timeout_s: float = Field(DEFAULT_VAULT_TIMEOUT_S, gt=0, description="seconds per request to Vault")

    @model_validator(mode="after")
    def _one_auth(self) -> VaultSecrets:
        approle = self.role_id is not None or self.secret_id is not None
        if approle and (self.role_id is None or self.secret_id is None):
            raise ValueError("AppRole needs both role_id and secret_id")
        if approle == (self.token is not None):
            raise ValueError("give exactly one of token or AppRole (role_id and secret_id)")
        return self

    def get_client(self) -> hvac.Client:
        """An authenticated hvac client (AppRole logs in here).

        Raises:
            SecretsError: Vault does not answer or refuses the credentials.
        """
        kwargs: dict[str, Any] = {"url": self.url, "timeout": self.timeout_s, "namespace": self.namespace}
        if self.token is not None:
            kwargs["token"] = self.token.get_secret_value()
        client = hvac.Client(**kwargs)
        if self.role_id is not None and self.secret_id is not None:
            with _translated(f"AppRole login at {self.url}"):
                client.auth.approle.login(
                    role_id=self.role_id.get_secret_value(), secret_id=self.secret_id.get_secret_value()
                )
        return client

    def read(self, path: str, key: str, mount: str | None = None) -> SecretStr:
        """One key of a KV v2 secret, masked.

        Raises:
            SecretsError: unreachable, refused, no such path, or the secret has no such key.
        """
        mount = mount or self.mount
        where = f"vault {mount}/{path} key {key!r}"
        client = self.get_client()
        try:
            with _translated(f"read {where}"):
                answer = client.secrets.kv.v2.read_secret_version(
                    path=path, mount_point=mount, raise_on_deleted_version=True
                )
        finally:
            client.adapter.close()
        data = answer.get("data", {}).get("data", {})
        if key not in data:
            raise SecretsError(f"read {where}: the secret has no such key (keys: {', '.join(sorted(data)) or 'none'})")
        return SecretStr(str(data[key]))

    def get(self) -> SecretStr:
        """The secret at the block's own `path` and `key`."""
        if self.path is None or self.key is None:
            raise SecretsError(f"vault block at {self.url}: get() needs path and key set on the block")
        return self.read(self.path, self.key)


def load_vault(name: str | None) -> VaultSecrets | None:
    """The saved Vault Secrets block `name` (None for no name: the inventory uses no Vault).

    Raises:
        SecretsError: no block of that name is saved, or the Prefect API does not answer.
    """
    if not name:
        return None
    try:
        return _load_block(VaultSecrets, name)
    except ValueError as exc:  # Prefect's "Unable to find block document named ..."
        raise SecretsError(f"vault block {name!r}: {_first_line(exc)}") from exc
    except httpx.HTTPError as exc:
        raise SecretsError(f"vault block {name!r}: the Prefect API does not answer: {type(exc).__name__}") from exc


_B = TypeVar("_B", bound=Block)


def _load_block(block_type: type[_B], name: str) -> _B:
    """A saved block, loaded synchronously even inside a running event loop (a flow's).

    `_sync=True` makes Prefect's `async_dispatch` call the sync implementation, so the result
    is never the coroutine that the decorator's return type allows.
    """
    block = block_type.load(name, _sync=True)  # type: ignore[call-arg]  # async_dispatch's own keyword
    assert isinstance(block, block_type)
    return block


def read_secret(ref: SecretRef, vault: VaultSecrets | None) -> SecretStr:
    """The value a `SecretRef` points at: a Vault path and key, or a Prefect `Secret` block.

    Args:
        ref: from the inventory's `secrets` table.
        vault: the block to read Vault refs through; None when the inventory uses none.

    Raises:
        SecretsError: the store failed, or a Vault ref was given without a vault block.
    """
    if ref.vault is not None:
        if vault is None:
            raise SecretsError(f"vault {ref.vault.mount}/{ref.vault.path}: no Vault Secrets block was given")
        return vault.read(ref.vault.path, ref.vault.key, ref.vault.mount)
    assert ref.block is not None
    try:
        block = _load_block(Secret, ref.block)
    except ValueError as exc:  # Prefect's "Unable to find block document named ..."
        raise SecretsError(f"prefect secret block {ref.block!r}: {_first_line(exc)}") from exc
    value = block.get()
    return SecretStr(value if isinstance(value, str) else str(value))


def resolve_secret(inv: Inventory, name: str | None, vault: VaultSecrets | None) -> SecretStr | None:
    """The value of the inventory secret `name` (None when `name` is None).

    Raises:
        SecretsError: the name is not in the inventory's `secrets`, or the store failed.
    """
    if name is None:
        return None
    ref = inv.secrets.get(name)
    if ref is None:
        raise SecretsError(f"secret {name!r} is not in the cluster file's secrets")
    return read_secret(ref, vault)
