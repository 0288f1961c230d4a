"""How tasks log in to a node: its SSH credentials and its engine's SSH access, read from the secrets store.

Shared by the recovery and rollout tasks (and `homelab rollout`), so a node is reached with the
same key everywhere: the one its cluster-file entry names, from Vault or a Prefect Secret block,
with host keys checked against its `known_hosts`; never the agent's or ~/.ssh's keys when a key
is named.

Only names cross a task boundary: an `EngineLogin` holds where the key lives and the name of
the vault block, and the key itself is read inside the task that connects. A key in a flow or
task parameter would be stored by Prefect.
"""

from __future__ import annotations

from functools import cache

from pydantic import BaseModel, ConfigDict, Field

from blocks.vault import load_vault, read_secret, resolve_secret
from homelab.docker_ops.connect import SSHAccess, engine_url
from homelab.errors import SecretsError
from homelab.inventory import Inventory, Node, SecretRef
from homelab.recovery.runner import SecretReader, engine_ssh_access, node_credentials
from homelab.remote import SSHCredentials

__all__ = ["EngineLogin", "credentials_for", "engine_login", "secret_reader"]


def secret_reader(inv: Inventory, vault_block: str | None) -> SecretReader:
    """Reads the cluster file's secrets by name from their store; the Vault block is loaded at the first read.

    Raises (when called):
        SecretsError: the name is not in the file's `secrets`, or the store failed.
    """
    vault = cache(lambda: load_vault(vault_block))
    return lambda name: resolve_secret(inv, name, vault())


def credentials_for(inv: Inventory, node: Node, vault_block: str | None) -> SSHCredentials:
    """The node's SSH key and password from the secrets store (masked values)."""
    return node_credentials(node, secret_reader(inv, vault_block))


class EngineLogin(BaseModel):
    """Where a task finds the key for a node's ssh:// engine: names only, safe as a task parameter.

    Empty (no `key`) for an engine that needs no key from the store: a unix:// or tcp:// URL,
    or an ssh:// node whose entry names no `key_secret` (the agent and ~/.ssh keys then, as `ssh`).
    """

    model_config = ConfigDict(frozen=True)

    key: SecretRef | None = Field(None, description="where the node's SSH key lives (its ssh.key_secret entry)")
    vault_block: str | None = Field(None, description="the Vault Secrets block that reads Vault refs")

    def access(self, node: Node) -> SSHAccess | None:
        """Read the key now (inside the task that connects) and pair it with the node's known_hosts.

        Raises:
            SecretsError: the store failed or lacks the key.
            RemoteError: the secret is not a private key.
        """
        if self.key is None:
            return None
        key = read_secret(self.key, load_vault(self.vault_block))
        return engine_ssh_access(node, SSHCredentials(key=key))


def engine_login(inv: Inventory, node: Node, vault_block: str | None) -> EngineLogin:
    """The login for the node's engine: for an ssh:// URL, where its entry's `key_secret` lives.

    Raises:
        SecretsError: the entry names a secret the cluster file's `secrets` lacks.
    """
    name = node.ssh.key_secret if node.ssh is not None and engine_url(node).startswith("ssh://") else None
    if name is None:
        return EngineLogin(vault_block=vault_block)
    if name not in inv.secrets:
        raise SecretsError(f"secret {name!r} is not in the cluster file's secrets")
    return EngineLogin(key=inv.secrets[name], vault_block=vault_block)
