"""Waking a sleeping node: a Wake-on-LAN magic packet, or a configured command that takes its secret on stdin.

A node whose SSH is dead may be asleep or powered off; its network card still listens for a
magic packet (6 bytes 0xFF, then its MAC 16 times) sent as a UDP broadcast on the LAN. Where
WoL cannot work (another subnet, a smart plug, a BMC), the inventory gives a command instead,
run here on the controller; a secret it needs (a BMC password, a plug's token) is written to
its stdin, never to its arguments, for the same reason as in `homelab.remote`.

Both are not idempotent in effect (a second wake of a booting machine can confuse some BMCs)
and get no retries; the caller waits for SSH afterwards.
"""

from __future__ import annotations

import logging
import shlex
import socket
import subprocess

from pydantic import SecretStr

from homelab.errors import HomelabError
from homelab.inventory import Wake

__all__ = ["WakeFailed", "magic_packet", "send_magic_packet", "run_wake_command", "wake"]

log = logging.getLogger(__name__)

DEFAULT_WAKE_COMMAND_TIMEOUT_S = 60.0


class WakeFailed(HomelabError):
    """The wake packet could not be sent, or the wake command failed."""


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
        raise WakeFailed(f"sending the Wake-on-LAN packet for {mac} to {broadcast}:{port}: {exc.strerror or exc}") from exc
    log.info("sent Wake-on-LAN packet for %s to %s:%d", mac, broadcast, port)


def run_wake_command(
    command: str, secret: SecretStr | None = None, timeout_s: float = DEFAULT_WAKE_COMMAND_TIMEOUT_S
) -> str:
    """Run the wake command locally (no shell), its secret on stdin; returns its output.

    Raises:
        WakeFailed: it could not start, exited non-zero, or outlived `timeout_s`.
    """
    argv = shlex.split(command)
    stdin = secret.get_secret_value() + "\n" if secret is not None else ""
    try:
        done = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired as exc:
        raise WakeFailed(f"wake command {argv[0]} still running after {timeout_s:g} s") from exc
    except OSError as exc:
        raise WakeFailed(f"wake command {argv[0]}: {exc.strerror or exc}") from exc
    if done.returncode != 0:
        tail = (done.stderr.strip() or done.stdout.strip())[-300:]
        raise WakeFailed(f"wake command {argv[0]} exited {done.returncode}: {tail}")
    return done.stdout


def wake(settings: Wake, secret: SecretStr | None = None) -> str:
    """Wake a node by its inventory settings: the command when one is given, else Wake-on-LAN.

    Returns:
        What was done, for the incident record.
    """
    if settings.command is not None:
        run_wake_command(settings.command, secret)
        return f"ran wake command {shlex.split(settings.command)[0]}"
    assert settings.mac is not None
    send_magic_packet(settings.mac, settings.broadcast, settings.port)
    return f"sent Wake-on-LAN packet for {settings.mac} to {settings.broadcast}:{settings.port}"
