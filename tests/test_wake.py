"""Wake-on-LAN packets caught by a UDP listener on loopback, and wake commands that read their secret from stdin."""

from __future__ import annotations

import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from homelab.inventory import Wake
from homelab.wake import (
    WakeFailed,
    magic_packet,
    run_wake_command,
    send_magic_packet,
    wake,
)

MAC = "0a:1b:2c:3d:4e:5f"


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A UDP socket on 127.0.0.1 (never a real broadcast address: nothing leaves loopback)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(5)
        yield sock


def test_packet_received_byte_for_byte(listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    send_magic_packet(MAC, "127.0.0.1", port)
    data, _ = listener.recvfrom(1024)
    expected = bytes([0xFF] * 6) + bytes([0x0A, 0x1B, 0x2C, 0x3D, 0x4E, 0x5F]) * 16
    assert data == expected
    assert len(data) == 102


def test_wake_from_inventory_settings(listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    done = wake(Wake(mac="0A-1B-2C-3D-4E-5F", broadcast="127.0.0.1", port=port))
    assert done == f"sent Wake-on-LAN packet for {MAC} to 127.0.0.1:{port}"
    assert listener.recvfrom(1024)[0] == magic_packet(MAC)


def test_bad_mac_rejected() -> None:
    with pytest.raises(ValueError, match="6 bytes"):
        magic_packet("aa:bb:cc")


def test_wake_command_reads_secret_from_stdin(tmp_path: Path) -> None:
    script = tmp_path / "wake-bmc"
    log = tmp_path / "seen"
    script.write_text(
        f"#!{sys.executable}\nimport sys\nsecret = sys.stdin.readline().strip()\n"
        f"open({str(log)!r}, 'w').write(repr(sys.argv) + '|' + secret)\n"
    )
    script.chmod(0o755)
    secret = SecretStr("bmc-token-91c2")
    done = wake(Wake(command=f"{script} --host 127.0.0.1", command_secret="bmc"), secret)
    assert done == f"ran wake command {script}"
    argv, _, seen = log.read_text().partition("|")
    assert seen == "bmc-token-91c2"
    assert "bmc-token-91c2" not in argv


def test_wake_command_failure(tmp_path: Path) -> None:
    with pytest.raises(WakeFailed, match="exited 3: no plug"):
        run_wake_command(f"{sys.executable} -c \"import sys; print('no plug', file=sys.stderr); sys.exit(3)\"")
    with pytest.raises(WakeFailed, match="No such file"):
        run_wake_command(str(tmp_path / "absent"))
    with pytest.raises(WakeFailed, match="still running"):
        run_wake_command("sleep 5", timeout_s=0.3)
