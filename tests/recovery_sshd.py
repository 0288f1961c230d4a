"""An sshd for the recovery tests that records every command line it is asked to run.

Unlike the shared `sshd` fixture, this one shows what a node's other users could see:
- `ForceCommand` runs a recorder that appends `$SSH_ORIGINAL_COMMAND` (the command line the
  client sent) to `commands.log`, then runs it with `sh -c`;
- the key's `environment="PATH=..."` option (with `PermitUserEnvironment PATH`) puts a `sudo`
  wrapper first on PATH; it appends its argv to `sudo-argv.log`, reads the password from stdin
  when given `-S`, and refuses (exit 1) unless it equals the one in `sudo-password`, as sudo would.

So a test can grep both logs for a secret: a password passed on a command line would be there.
"""

from __future__ import annotations

import os
import pwd
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.fixtures.net import (
    LOOPBACK,
    free_port,
    stop_process,
    unavailable,
    wait_until,
)
from tests.fixtures.sshd import SSHD, SSHServer, keygen, shows_banner, write_sshd_config

__all__ = ["RecordingSSHD", "start_recording_sshd"]

_RECORDER = """#!/bin/sh
printf '%s\\n' "$SSH_ORIGINAL_COMMAND" >> "{root}/commands.log"
exec /bin/sh -c "$SSH_ORIGINAL_COMMAND"
"""

_SUDO = """#!/bin/sh
# A stand-in for sudo: records argv, checks a password read from stdin with -S, runs the rest.
printf '%s\\n' "$*" >> "{root}/sudo-argv.log"
need=0
while [ $# -gt 0 ]; do
  case "$1" in
    -S) need=1; shift ;;
    -n) shift ;;
    -p) shift 2 ;;
    --) shift; break ;;
    -*) shift ;;
    *) break ;;
  esac
done
if [ "$need" = 1 ]; then
  IFS= read -r given
  if [ "$given" != "$(cat "{root}/sudo-password")" ]; then
    echo "sudo: incorrect password" >&2
    exit 1
  fi
else
  echo "sudo: a password is required" >&2
  exit 1
fi
exec "$@"
"""


@dataclass(frozen=True)
class RecordingSSHD(SSHServer):
    """The recording sshd: the test sshd's facts, its process, and its logs."""

    process: subprocess.Popen[bytes]

    @property
    def commands_log(self) -> Path:
        return self.root / "commands.log"

    @property
    def sudo_log(self) -> Path:
        return self.root / "sudo-argv.log"

    def recorded(self) -> str:
        """Everything both recorders saw so far."""
        return "".join(p.read_text() for p in (self.commands_log, self.sudo_log) if p.exists())

    def stop(self) -> None:
        stop_process(self.process)


def _script(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(0o755)


def start_recording_sshd(root: Path, sudo_password: str) -> RecordingSSHD:
    """Start the recording sshd under `root` (which it owns) on a free loopback port."""
    if not SSHD.is_file():
        unavailable(f"{SSHD} is not installed (Debian package openssh-server)")
    user = pwd.getpwuid(os.getuid()).pw_name
    bin_dir = root / "bin"
    bin_dir.mkdir(parents=True)
    _script(bin_dir / "record", _RECORDER.format(root=root))
    _script(bin_dir / "sudo", _SUDO.format(root=root))
    (root / "sudo-password").write_text(sudo_password + "\n")
    host_key_line = keygen(root / "host_ed25519", "recovery-test-host")
    client_line = keygen(root / "client_ed25519", "recovery-test-client")
    path = f"{bin_dir}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    (root / "authorized_keys").write_text(f'environment="PATH={path}" {client_line}\n')
    port = free_port()
    known_hosts = root / "known_hosts"
    known_hosts.write_text(f"[{LOOPBACK}]:{port} {host_key_line}\n")
    config = write_sshd_config(root, port, user, ["PermitUserEnvironment PATH", f"ForceCommand {bin_dir / 'record'}"])
    try:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    except PermissionError:
        pass
    log = root / "sshd.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(SSHD), "-D", "-e", "-f", str(config)], stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        wait_until(lambda: shows_banner(port), 30.0, "recording sshd", log, proc)
    except BaseException:
        stop_process(proc)
        raise
    return RecordingSSHD(LOOPBACK, port, user, root / "client_ed25519", host_key_line, known_hosts, root, proc)
