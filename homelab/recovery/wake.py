"""Waking a sleeping node: a Wake-on-LAN magic packet, or a configured command that takes its secret on stdin.

A node whose SSH is dead may be asleep or powered off; its network card still listens for a
magic packet (6 bytes 0xFF, then its MAC 16 times) sent as a UDP broadcast on the LAN. Where
WoL cannot work (another subnet, a smart plug, a BMC, a Windows desktop that must be signed
in), the inventory gives a command instead, run here on the controller; a secret it needs (a
BMC password, a plug's token, an RDP password) is written to its stdin, then stdin is closed,
never to its arguments, for the same reason as in `homelab.remote`.

A command either ends (a plug's API call: it must exit 0 within `command_timeout_s`) or, with
`detach: true`, keeps running (an RDP client holds the session that keeps the user signed in).
A detached command runs in a process group of its own; the wake counts as done once it has
started and not failed within `DETACH_GRACE_S` (an RDP client that cannot connect exits at
once), the recovery's next wait decides whether the node came up, and the whole group is
stopped after `command_timeout_s` or when the recovery run ends (`WakeProcesses`), whichever
comes first.

Both are not idempotent in effect (a second wake of a booting machine can confuse some BMCs)
and get no retries; the caller waits for SSH, the engine or the endpoints afterwards.
"""

from __future__ import annotations

import logging
import os
import shlex
import signal
import socket
import subprocess
import threading
from typing import IO

from pydantic import SecretStr

from homelab.errors import WakeFailed
from homelab.inventory import Wake

__all__ = [
    "DETACH_GRACE_S",
    "RunningWake",
    "WakeProcesses",
    "magic_packet",
    "run_wake_command",
    "send_magic_packet",
    "start_wake_command",
    "wake",
]

log = logging.getLogger(__name__)

DEFAULT_WAKE_COMMAND_TIMEOUT_S = 60.0
# A detached command that exits non-zero this soon failed to wake anything (xfreerdp that
# cannot connect gives up in well under a second on a refused port).
DETACH_GRACE_S = 2.0
# What is kept of a command's output, for the failure message: a chatty client that runs for
# an hour must not fill the controller's memory.
_TAIL_BYTES = 4096
_SHOWN_CHARS = 300
# After SIGTERM, how long the group's leader gets before the whole group is killed.
_STOP_WAIT_S = 5.0


def magic_packet(mac: str) -> bytes:
    """The 102-byte Wake-on-LAN payload for `mac` (`aa:bb:cc:dd:ee:ff` or with dashes)."""
    raw = bytes.fromhex(mac.replace(":", "").replace("-", ""))
    if len(raw) != 6:
        raise ValueError(f"a MAC address has 6 bytes, got {mac!r}")
    return b"\xff" * 6 + raw * 16


def send_magic_packet(mac: str, broadcast: str, port: int = 9) -> None:
    """Send the magic packet for `mac` as a UDP datagram to `broadcast:port`.

    Raises:
        WakeFailed: the socket refused (no route, broadcast not permitted).
    """
    packet = magic_packet(mac)
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
            sock.sendto(packet, (broadcast, port))
    except OSError as exc:
        raise WakeFailed(
            f"sending the Wake-on-LAN packet for {mac} to {broadcast}:{port}: {exc.strerror or exc}"
        ) from exc
    log.info("sent Wake-on-LAN packet for %s to %s:%d", mac, broadcast, port)


class _Tail(threading.Thread):
    """Drains a command's output (so a full pipe never blocks it), keeping the last `_TAIL_BYTES`."""

    def __init__(self, stream: IO[bytes]) -> None:
        super().__init__(daemon=True)
        self._stream = stream
        self._kept = b""
        self._lock = threading.Lock()

    def run(self) -> None:
        with self._stream:
            while chunk := self._stream.read1(65536):  # type: ignore[attr-defined]
                with self._lock:
                    self._kept = (self._kept + chunk)[-_TAIL_BYTES:]

    def text(self) -> str:
        """The last output, decoded, stripped and cut to what a message shows."""
        with self._lock:
            kept = self._kept
        return kept.decode(errors="replace").strip()[-_SHOWN_CHARS:]


def _start(command: str, secret: SecretStr | None) -> tuple[subprocess.Popen[bytes], _Tail]:
    """Start the command (no shell) in a new process group; its secret to stdin, then stdin closed."""
    argv = shlex.split(command)
    try:
        proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
        )
    except OSError as exc:
        raise WakeFailed(f"wake command {argv[0]}: {exc.strerror or exc}") from exc
    assert proc.stdin is not None and proc.stdout is not None
    tail = _Tail(proc.stdout)
    tail.start()
    try:
        if secret is not None:
            proc.stdin.write(secret.get_secret_value().encode() + b"\n")
        proc.stdin.close()
    except BrokenPipeError:  # it exited without reading: its exit status says why
        pass
    return proc, tail


def _stop_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the whole group, SIGKILL to whatever of it is left after `_STOP_WAIT_S`."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            proc.wait(_STOP_WAIT_S)
        except subprocess.TimeoutExpired:
            continue


def _name(command: str) -> str:
    return shlex.split(command)[0]


def run_wake_command(
    command: str, secret: SecretStr | None = None, timeout_s: float = DEFAULT_WAKE_COMMAND_TIMEOUT_S
) -> str:
    """Run the wake command locally (no shell), its secret on stdin, and wait for it; returns its output's tail.

    Raises:
        WakeFailed: it could not start, exited non-zero, or outlived `timeout_s` (then its
            whole process group is stopped).
    """
    proc, tail = _start(command, secret)
    try:
        proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        _stop_group(proc)
        raise WakeFailed(f"wake command {_name(command)} still running after {timeout_s:g} s") from None
    finally:
        tail.join(1.0)
    if proc.returncode != 0:
        raise WakeFailed(f"wake command {_name(command)} exited {proc.returncode}: {tail.text()}")
    return tail.text()


class RunningWake:
    """A detached wake command left running; `stop()` (or its timer, after `timeout_s`) ends its whole process group."""

    def __init__(self, command: str, proc: subprocess.Popen[bytes], tail: _Tail, timeout_s: float) -> None:
        self.command = command
        self.pid = proc.pid
        self._proc, self._tail = proc, tail
        self._lock = threading.Lock()
        self._stopped = False
        self._timer = threading.Timer(timeout_s, self.stop)
        self._timer.daemon = True
        self._timer.start()

    def stop(self) -> None:
        """Stop the process group now (idempotent; the timer and the run's end may both call it)."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        self._timer.cancel()
        _stop_group(self._proc)
        self._tail.join(1.0)
        log.info("stopped wake command %s (process group %d)", _name(self.command), self.pid)


def start_wake_command(
    command: str, secret: SecretStr | None, timeout_s: float, grace_s: float = DETACH_GRACE_S
) -> RunningWake:
    """Start a wake command that may keep running; return once it has survived `grace_s` (or exited 0).

    Raises:
        WakeFailed: it could not start, or exited non-zero within the grace (its output's tail
            is in the message).
    """
    proc, tail = _start(command, secret)
    try:
        proc.wait(min(grace_s, timeout_s))
    except subprocess.TimeoutExpired:
        return RunningWake(command, proc, tail, timeout_s)
    if proc.returncode != 0:
        _stop_group(proc)  # children it left behind in its group
        tail.join(1.0)
        raise WakeFailed(f"wake command {_name(command)} exited {proc.returncode} within {grace_s:g} s: {tail.text()}")
    return RunningWake(command, proc, tail, timeout_s)  # exited 0: its group may still run


class WakeProcesses:
    """The detached wake commands of one recovery run: leaving the `with` block stops every one."""

    def __init__(self) -> None:
        self._running: list[RunningWake] = []

    def add(self, running: RunningWake) -> None:
        self._running.append(running)

    def stop_all(self) -> None:
        for running in self._running:
            running.stop()

    def __enter__(self) -> WakeProcesses:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()


def wake(settings: Wake, secret: SecretStr | None = None, processes: WakeProcesses | None = None) -> str:
    """Wake a node by its inventory settings: the command when one is given, else Wake-on-LAN.

    Args:
        settings: the node's `wake` section.
        secret: the resolved `command_secret`, written to the command's stdin.
        processes: where a detached command is kept, to be stopped when the recovery ends.

    Returns:
        What was done, for the incident record.

    Raises:
        WakeFailed: as `run_wake_command` / `start_wake_command`, or the packet could not be sent.
        ValueError: a detached command without `processes` (nothing would stop it).
    """
    if settings.command is not None and settings.detach:
        if processes is None:
            raise ValueError("a detached wake command needs a WakeProcesses that stops it")
        running = start_wake_command(settings.command, secret, settings.command_timeout_s)
        processes.add(running)
        return (
            f"started wake command {_name(settings.command)} (detached, process group {running.pid}; "
            f"stopped after {settings.command_timeout_s:g} s or when the recovery ends)"
        )
    if settings.command is not None:
        run_wake_command(settings.command, secret, settings.command_timeout_s)
        return f"ran wake command {_name(settings.command)}"
    assert settings.mac is not None
    send_magic_packet(settings.mac, settings.broadcast, settings.port)
    return f"sent Wake-on-LAN packet for {settings.mac} to {settings.broadcast}:{settings.port}"
