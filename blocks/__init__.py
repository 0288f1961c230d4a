"""Prefect blocks of homelab-cluster: `prefect block register -m blocks` registers every block class named here.

`VaultSecrets` reads secrets from Vault or OpenBao; Prefect's own `Secret` block (re-exported)
serves people without Vault. The cluster file refers to either by path and key or by block
name, never by value. `AppriseURL` sends alerts to any Apprise URL (email over SMTP, ntfy).
"""

from blocks.notify import AppriseURL
from blocks.vault import Secret, VaultSecrets, read_secret, resolve_secret

__all__ = ["AppriseURL", "Secret", "VaultSecrets", "read_secret", "resolve_secret"]
