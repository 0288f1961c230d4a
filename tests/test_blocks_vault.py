"""The Vault Secrets block against a real OpenBao dev server, and its registration with a real Prefect server.

Checks what a user relies on: token and AppRole logins read the value, the value is masked
wherever it is printed, hvac's failures arrive as `SecretsError` naming path and key, the
inventory's refs resolve through Vault or a Prefect Secret block, and `prefect block register
-m blocks` makes the block type appear on the server (which is what the UI lists).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import httpx
import hvac
import pytest
from pydantic import SecretStr

from blocks import VaultSecrets, read_secret, resolve_secret
from homelab.errors import SecretsError
from homelab.inventory import Inventory, SecretRef, VaultRef
from tests.fixtures.openbao import OpenBaoServer
from tests.fixtures.prefect_server import PrefectServer

SUDO_PASSWORD = "s3cret-sudo-Pa55-for-test"


@pytest.fixture(scope="module")
def vault(openbao: OpenBaoServer) -> Iterator[VaultSecrets]:
    """A block on the dev server's root token, with one secret written at secret/homelab/ssh."""
    root = hvac.Client(url=openbao.url, token=openbao.root_token)
    root.secrets.kv.v2.create_or_update_secret(path="homelab/ssh", secret={"sudo": SUDO_PASSWORD, "user": "ops"})
    yield VaultSecrets(url=openbao.url, token=SecretStr(openbao.root_token), path="homelab/ssh", key="sudo")


def test_token_read_is_masked(vault: VaultSecrets) -> None:
    value = vault.get()
    assert value.get_secret_value() == SUDO_PASSWORD
    for shown in (repr(value), str(value), f"{value}", repr(vault), str(vault.model_dump())):
        assert SUDO_PASSWORD not in shown
    assert vault.read("homelab/ssh", "user").get_secret_value() == "ops"


def test_approle_login(openbao: OpenBaoServer, vault: VaultSecrets) -> None:
    root = hvac.Client(url=openbao.url, token=openbao.root_token)
    if "approle/" not in root.sys.list_auth_methods():
        root.sys.enable_auth_method("approle")
    root.sys.create_or_update_policy(
        name="homelab-read", policy='path "secret/data/homelab/*" { capabilities = ["read"] }'
    )
    root.auth.approle.create_or_update_approle(role_name="homelab", token_policies=["homelab-read"])
    role_id = root.auth.approle.read_role_id("homelab")["data"]["role_id"]
    secret_id = root.auth.approle.generate_secret_id("homelab")["data"]["secret_id"]
    block = VaultSecrets(url=openbao.url, role_id=SecretStr(role_id), secret_id=SecretStr(secret_id))
    assert block.read("homelab/ssh", "sudo").get_secret_value() == SUDO_PASSWORD
    assert secret_id not in repr(block)

    bad = VaultSecrets(url=openbao.url, role_id=SecretStr(role_id), secret_id=SecretStr("not-the-secret-id"))
    with pytest.raises(SecretsError, match="AppRole login"):
        bad.read("homelab/ssh", "sudo")


def test_auth_must_be_one_of_token_or_approle(openbao: OpenBaoServer) -> None:
    with pytest.raises(ValueError, match="exactly one of token or AppRole"):
        VaultSecrets(url=openbao.url)
    with pytest.raises(ValueError, match="both role_id and secret_id"):
        VaultSecrets(url=openbao.url, role_id=SecretStr("r"))


@pytest.mark.parametrize(
    ("path", "key", "message"),
    [
        ("homelab/missing", "sudo", "secret/homelab/missing key 'sudo': no such secret"),
        ("homelab/ssh", "nope", "has no such key \\(keys: sudo, user\\)"),
    ],
)
def test_missing_path_or_key(vault: VaultSecrets, path: str, key: str, message: str) -> None:
    with pytest.raises(SecretsError, match=message):
        vault.read(path, key)


def test_wrong_token_and_dead_server(openbao: OpenBaoServer) -> None:
    wrong = VaultSecrets(url=openbao.url, token=SecretStr("hvs.wrong"), path="homelab/ssh", key="sudo")
    with pytest.raises(SecretsError, match="permission denied"):
        wrong.get()
    from tests.fixtures.net import free_port

    dead = VaultSecrets(url=f"http://127.0.0.1:{free_port()}", token=SecretStr("t"), timeout_s=2)
    with pytest.raises(SecretsError, match="does not answer"):
        dead.read("homelab/ssh", "sudo")


def test_inventory_refs_resolve(vault: VaultSecrets, prefect_harness: None) -> None:
    from prefect.blocks.system import Secret

    Secret(value="from-a-prefect-block").save("homelab-test-secret", overwrite=True)
    inv = Inventory.model_validate(
        {
            "nodes": [{"name": "n1", "tier": "t", "host": "127.0.0.1"}],
            "secrets": {
                "sudo": {"vault": {"path": "homelab/ssh", "key": "sudo"}},
                "plain": {"block": "homelab-test-secret"},
            },
        }
    )
    sudo = resolve_secret(inv, "sudo", vault)
    assert sudo is not None and sudo.get_secret_value() == SUDO_PASSWORD
    plain = resolve_secret(inv, "plain", None)
    assert plain is not None and plain.get_secret_value() == "from-a-prefect-block"
    assert resolve_secret(inv, None, vault) is None
    with pytest.raises(SecretsError, match="not in the cluster file"):
        resolve_secret(inv, "other", vault)
    with pytest.raises(SecretsError, match="no Vault Secrets block"):
        read_secret(SecretRef(vault=VaultRef(path="homelab/ssh", key="sudo")), None)
    with pytest.raises(SecretsError, match="prefect secret block 'absent'"):
        read_secret(SecretRef(block="absent"), None)


def test_block_saved_and_loaded_keeps_value_masked(vault: VaultSecrets, prefect_harness: None) -> None:
    vault.save("homelab-vault-test", overwrite=True)
    loaded = VaultSecrets.load("homelab-vault-test")
    assert loaded.get().get_secret_value() == SUDO_PASSWORD
    assert vault.token is not None and vault.token.get_secret_value() not in repr(loaded)


def test_register_shows_block_type_on_server(prefect_server: PrefectServer) -> None:
    env = {**os.environ, **prefect_server.env}
    done = subprocess.run(
        [sys.executable, "-m", "prefect", "block", "register", "-m", "blocks"],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Vault Secrets" in done.stdout
    answer = httpx.get(f"{prefect_server.api_url}/block_types/slug/vault-secrets", timeout=10)
    assert answer.status_code == 200
    assert answer.json()["name"] == "Vault Secrets"
    schemas = httpx.post(
        f"{prefect_server.api_url}/block_schemas/filter",
        json={"block_schemas": {"block_type_id": {"any_": [answer.json()["id"]]}}},
        timeout=10,
    ).json()
    properties = schemas[0]["fields"]["properties"]
    # SecretStr fields are what the UI obfuscates.
    assert properties["token"]["anyOf"][0]["format"] == "password"
    assert properties["secret_id"]["anyOf"][0]["format"] == "password"
