"""`homelab.remote` against a real sshd: host keys, key login from OpenBao, sudo password on stdin only."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import hvac
import pytest
from pydantic import SecretStr, ValidationError

from blocks import VaultSecrets
from homelab.errors import CommandFailed, HostKeyMismatch, RemoteError
from homelab.inventory import Node, SSHSettings
from homelab.remote import SSHCredentials, SSHTimeouts, open_shell, ssh_reachable, sudo
from tests.fixtures.net import free_port
from tests.fixtures.openbao import OpenBaoServer
from tests.recovery_sshd import RecordingSSHD, start_recording_sshd

SUDO_PASSWORD = "Remote-sudo-pw-7f3a9"


@pytest.fixture(scope="module")
def rec_sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RecordingSSHD]:
    server = start_recording_sshd(tmp_path_factory.mktemp("rec-sshd"), SUDO_PASSWORD)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def credentials(openbao: OpenBaoServer, rec_sshd: RecordingSSHD) -> SSHCredentials:
    """The SSH key, stored in OpenBao and read back through the block, as a flow would."""
    root = hvac.Client(url=openbao.url, token=openbao.root_token)
    root.secrets.kv.v2.create_or_update_secret(
        path="homelab/remote-test", secret={"key": rec_sshd.client_key.read_text(), "sudo": SUDO_PASSWORD}
    )
    vault = VaultSecrets(url=openbao.url, token=SecretStr(openbao.root_token))
    return SSHCredentials(
        key=vault.read("homelab/remote-test", "key"), password=vault.read("homelab/remote-test", "sudo")
    )


def _node(server: RecordingSSHD, known_hosts: Path, *, tofu: bool = False, port: int | None = None) -> Node:
    ssh = SSHSettings(user=server.user, port=port or server.port, known_hosts=str(known_hosts), trust_on_first_use=tofu)
    return Node(name="gpu1", tier="gpu", host=server.host, ssh=ssh)


def _fingerprint(server: RecordingSSHD) -> str:
    out = subprocess.run(
        ["ssh-keygen", "-lf", str(server.root / "host_ed25519.pub")], capture_output=True, text=True, check=True
    ).stdout
    return out.split()[1]


def test_key_login_and_command(rec_sshd: RecordingSSHD, credentials: SSHCredentials) -> None:
    with open_shell(_node(rec_sshd, rec_sshd.known_hosts), credentials) as shell:
        result = shell.run("echo hello; echo oops >&2")
    assert (result.exit_status, result.stdout, result.stderr) == (0, "hello\n", "oops\n")
    assert SUDO_PASSWORD not in repr(credentials)


def test_sudo_password_goes_on_stdin_only(rec_sshd: RecordingSSHD, credentials: SSHCredentials) -> None:
    assert credentials.password is not None
    with open_shell(_node(rec_sshd, rec_sshd.known_hosts), credentials) as shell:
        result = shell.run(sudo(["id", "-u"], with_password=True), stdin=credentials.password)
        assert result.stdout.strip().isdigit()
        with pytest.raises(CommandFailed, match="incorrect password") as failed:
            shell.run(sudo("true", with_password=True), stdin=SecretStr("wrong-password"))
        assert "wrong-password" not in str(failed.value)
    assert "-S -p  id -u" in rec_sshd.sudo_log.read_text()
    assert "sudo -S -p '' id -u" in rec_sshd.commands_log.read_text()
    assert SUDO_PASSWORD not in rec_sshd.recorded()
    assert SUDO_PASSWORD not in (rec_sshd.root / "sshd.log").read_text()


def test_non_zero_exit_is_command_failed(rec_sshd: RecordingSSHD, credentials: SSHCredentials) -> None:
    with open_shell(_node(rec_sshd, rec_sshd.known_hosts), credentials) as shell:
        with pytest.raises(CommandFailed, match=r"node gpu1: 'echo broken >&2; exit 3' exited 3: broken"):
            shell.run("echo broken >&2; exit 3")
        assert shell.run("exit 4", check=False).exit_status == 4


def test_command_timeout(rec_sshd: RecordingSSHD, credentials: SSHCredentials) -> None:
    timeouts = SSHTimeouts(command_s=0.5)
    with (
        open_shell(_node(rec_sshd, rec_sshd.known_hosts), credentials, timeouts) as shell,
        pytest.raises(RemoteError, match="'sleep 5': timed out"),
    ):
        shell.run("sleep 5")


def test_unknown_host_key_refused_with_fingerprint(
    rec_sshd: RecordingSSHD, credentials: SSHCredentials, tmp_path: Path
) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    with pytest.raises(HostKeyMismatch, match="is unknown") as refused:
        open_shell(_node(rec_sshd, empty), credentials)
    assert _fingerprint(rec_sshd) in str(refused.value)
    assert empty.read_text() == ""
    with pytest.raises(HostKeyMismatch):  # a missing file is no trust either
        ssh_reachable(_node(rec_sshd, tmp_path / "absent"), credentials)


def test_changed_host_key_refused_even_with_tofu(
    rec_sshd: RecordingSSHD, credentials: SSHCredentials, tmp_path: Path
) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "other")], check=True)
    other = (tmp_path / "other.pub").read_text().split()
    known = tmp_path / "known_hosts"
    known.write_text(f"[{rec_sshd.host}]:{rec_sshd.port} {other[0]} {other[1]}\n")
    for tofu in (False, True):
        with pytest.raises(HostKeyMismatch, match="CHANGED") as refused:
            open_shell(_node(rec_sshd, known, tofu=tofu), credentials)
        assert _fingerprint(rec_sshd) in str(refused.value)


def test_trust_on_first_use_saves_key(rec_sshd: RecordingSSHD, credentials: SSHCredentials, tmp_path: Path) -> None:
    known = tmp_path / "sub" / "known_hosts"
    node = _node(rec_sshd, known, tofu=True)
    assert ssh_reachable(node, credentials) is None
    saved = known.read_text().split()
    assert saved[0] == f"[{rec_sshd.host}]:{rec_sshd.port}"
    assert " ".join(saved[1:3]) == " ".join(rec_sshd.host_key_line.split()[:2])
    # Now known: a second login needs no trust, and the key is not appended twice.
    assert ssh_reachable(_node(rec_sshd, known), credentials) is None
    assert len(known.read_text().splitlines()) == 1


def test_unreachable_and_bad_login(rec_sshd: RecordingSSHD, credentials: SSHCredentials, tmp_path: Path) -> None:
    dead = _node(rec_sshd, rec_sshd.known_hosts, port=free_port())
    reason = ssh_reachable(dead, credentials, SSHTimeouts(connect_s=2))
    assert reason is not None and "refused" in reason.lower()
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "stranger")], check=True)
    stranger = SSHCredentials(key=SecretStr((tmp_path / "stranger").read_text()))
    with pytest.raises(RemoteError, match="authentication failed"):
        open_shell(_node(rec_sshd, rec_sshd.known_hosts), stranger)
    with pytest.raises(RemoteError, match="not a key paramiko can read"):
        open_shell(_node(rec_sshd, rec_sshd.known_hosts), SSHCredentials(key=SecretStr("garbage")))


def test_timeouts_are_frozen_and_validated() -> None:
    timeouts = SSHTimeouts(connect_s=1, banner_s=2, auth_s=3, command_s=4)
    with pytest.raises(ValidationError):
        timeouts.connect_s = 5  # type: ignore[misc]
    with pytest.raises(ValidationError):
        SSHTimeouts(connect_s=0)
    with pytest.raises(ValidationError):
        SSHTimeouts(read_s=1)  # type: ignore[call-arg]
