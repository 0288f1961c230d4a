"""Wake-on-LAN packets caught by a UDP listener on loopback, and wake commands that read their secret from stdin.

Wake commands are real local processes: scripts that end, fail fast, or keep running (as an RDP
client does) with a child of their own, so that stopping the whole process group is seen.
"""

from __future__ import annotations

import socket
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from homelab.errors import WakeFailed
from homelab.inventory import Wake
from homelab.recovery.wake import (
    DETACH_GRACE_S,
    WakeProcesses,
    magic_packet,
    run_wake_command,
    send_magic_packet,
    start_wake_command,
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


# --- wake commands that keep running (detach: true), as an RDP client does ----------------------

# Stands for an RDP client: reads the password from stdin (as xfreerdp /from-stdin does), records
# what it got, starts a child of its own (the client's helpers), then keeps running.
_KEEPS_RUNNING = """import subprocess, sys, time
secret = sys.stdin.readline().strip()
child = subprocess.Popen(["sleep", "300"])
open(sys.argv[1], "w").write(f"{child.pid}|{secret}")
print("connected", flush=True)
time.sleep(300)
"""


def _script(tmp_path: Path, name: str, body: str) -> Path:
    path = tmp_path / name
    path.write_text(f"#!{sys.executable}\n{body}")
    path.chmod(0o755)
    return path


def _alive(pid: int) -> bool:
    """True while `pid` runs (a zombie left for init to reap counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def _until(check: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


def test_detached_command_runs_on_and_its_group_stops_with_the_run(tmp_path: Path) -> None:
    seen = tmp_path / "seen"
    client = _script(tmp_path, "rdp-client", _KEEPS_RUNNING)
    settings = Wake(command=f"{client} {seen}", command_secret="rdp", detach=True, command_timeout_s=120)
    with WakeProcesses() as processes:
        started = time.monotonic()
        done = wake(settings, SecretStr("rdp-pw-77e1"), processes)
        # Counted as done once started and still running after the grace, not after it exits.
        assert DETACH_GRACE_S <= time.monotonic() - started < DETACH_GRACE_S + 3
        assert done.startswith(f"started wake command {client} (detached, process group ")
        assert _until(seen.exists, 5)
        child, _, secret = seen.read_text().partition("|")
        leader = int(done.split("process group ")[1].split(";")[0])
        assert secret == "rdp-pw-77e1"
        assert b"rdp-pw-77e1" not in Path(f"/proc/{leader}/cmdline").read_bytes()
        assert _alive(leader) and _alive(int(child))
    # Leaving the run stops the whole group: the client and the child it started.
    assert not _alive(leader)
    assert _until(lambda: not _alive(int(child)), 10)


def test_detached_command_stopped_after_its_timeout(tmp_path: Path) -> None:
    seen = tmp_path / "seen"
    client = _script(tmp_path, "rdp-client", _KEEPS_RUNNING)
    with WakeProcesses() as processes:
        running = start_wake_command(f"{client} {seen}", SecretStr("x"), timeout_s=3.0)
        processes.add(running)
        assert _until(seen.exists, 5)
        child = int(seen.read_text().partition("|")[0])
        assert _alive(running.pid)
        # command_timeout_s ends it while the run goes on.
        assert _until(lambda: not _alive(running.pid) and not _alive(child), 15)


def test_detached_command_failing_fast_is_a_wake_failure(tmp_path: Path) -> None:
    # As xfreerdp does when nothing listens on the port: an error line, a non-zero exit at once.
    refused = _script(
        tmp_path,
        "rdp-refused",
        "import sys\nprint('[ERROR][com.freerdp.core] - freerdp_tcp_connect: connection refused', file=sys.stderr)\n"
        "sys.exit(131)\n",
    )
    settings = Wake(command=f"{refused} /v:127.0.0.1:9", detach=True)
    with WakeProcesses() as processes, pytest.raises(WakeFailed) as failed:
        wake(settings, None, processes)
    assert str(failed.value) == (
        f"wake command {refused} exited 131 within {DETACH_GRACE_S:g} s: "
        "[ERROR][com.freerdp.core] - freerdp_tcp_connect: connection refused"
    )


def test_detached_command_needs_an_owner(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="needs a WakeProcesses"):
        wake(Wake(command="sleep 30", detach=True), None)


def test_plain_command_uses_command_timeout_s() -> None:
    started = time.monotonic()
    with pytest.raises(WakeFailed, match=r"still running after 0\.5 s"):
        wake(Wake(command="sleep 30", command_timeout_s=0.5))
    assert time.monotonic() - started < 8


def test_chatty_command_output_is_bounded(tmp_path: Path) -> None:
    # 20 MB of output: drained as it comes (the pipe never blocks it), only the tail is kept.
    chatty = _script(tmp_path, "chatty", "import sys\nsys.stdout.write('x' * 20_000_000 + 'the end')\nsys.exit(4)\n")
    with pytest.raises(WakeFailed) as failed:
        run_wake_command(str(chatty), timeout_s=30)
    message = str(failed.value)
    assert message.endswith("x" * 293 + "the end")
    assert len(message) < 400
