"""Windows Docker Desktop nodes: how homelab restarts Docker Desktop there, and the one-time setup that allows it.

Docker Desktop is a desktop application, not a service: it only comes up inside a signed-in
user's interactive session. A command run over SSH lives in a session of its own with no
desktop (OpenSSH for Windows starts it non-interactively), so `Start-Process "Docker
Desktop.exe"` from there starts nothing that lasts, and Docker's own `docker desktop start`
(Docker Desktop 4.37+) is documented not to work over SSH on Windows
(https://docs.docker.com/reference/cli/docker/desktop/start/: "doesn't work when executed via
SSH on Windows due to a limitation in how WinCred stores credentials").

What works is the Task Scheduler: a task created once with `/IT` ("interactive only": it runs
in the user's desktop session, and only while that user is signed in) can be started from the
SSH session with `schtasks /Run`. Stopping the old processes needs no desktop, so that part
runs over SSH directly. When nobody is signed in, the task cannot run; the recovery then
escalates to the node's wake command (an RDP client that signs the user in, which starts
Docker Desktop through the same task's logon trigger and Docker Desktop's own "start when you
sign in").
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from homelab.inventory import Node

__all__ = [
    "DOCKER_DESKTOP_EXE",
    "DOCKER_DESKTOP_TASK",
    "WINDOWS_RESTART_DOCKER",
    "SetupStep",
    "windows_setup",
]

DOCKER_DESKTOP_TASK = "homelab-docker-desktop"
DOCKER_DESKTOP_EXE = r"C:\Program Files\Docker\Docker\Docker Desktop.exe"
# Run by the node's shell (cmd.exe for OpenSSH on Windows). Stop-Process and Wait-Process work
# from the SSH session (same user); only the start must happen in the desktop session, hence
# the task. `exit $LASTEXITCODE` makes a missing task (schtasks exits 1) a failed restart.
WINDOWS_RESTART_DOCKER = (
    'powershell -NoProfile -NonInteractive -Command "'
    "Stop-Process -Name 'Docker Desktop','com.docker.backend' -Force -ErrorAction SilentlyContinue; "
    "Wait-Process -Name 'Docker Desktop','com.docker.backend' -Timeout 30 -ErrorAction SilentlyContinue; "
    f'schtasks /Run /TN {DOCKER_DESKTOP_TASK}; exit $LASTEXITCODE"'
)
# /IT: only when the user is signed in, in their session. /SC ONLOGON: also at each sign-in (an
# RDP wake included). No /RL HIGHEST: Docker Desktop runs as the plain user when started from
# the Start menu; its privileged half is the com.docker.service service. /F: rerunning replaces it.
_CREATE_TASK = f'schtasks /Create /F /TN {DOCKER_DESKTOP_TASK} /TR "\\"{DOCKER_DESKTOP_EXE}\\"" /SC ONLOGON /IT'


class SetupStep(BaseModel):
    """One thing to do once on the Windows machine: what, where, the commands, and why."""

    model_config = ConfigDict(frozen=True)

    title: str
    where: str
    commands: list[str] = []
    note: str = ""


def _ssh_steps(node: Node) -> list[SetupStep]:
    user = node.ssh.user if node.ssh else "USER"
    secret = node.ssh.key_secret if node.ssh else None
    key = f"public key of secret {secret}" if secret else "your public key"
    return [
        SetupStep(
            title="Install and start the OpenSSH server",
            where="PowerShell as Administrator",
            commands=[
                "Add-WindowsCapability -Online -Name OpenSSH.Server~~~~0.0.1.0",
                "Set-Service -Name sshd -StartupType Automatic",
                "Start-Service sshd",
            ],
        ),
        SetupStep(
            title=f"Let {user} log in with the key",
            where="PowerShell as Administrator",
            commands=[
                f"Add-Content -Path $Env:ProgramData\\ssh\\administrators_authorized_keys -Value '<{key}>'",
                'icacls.exe "$Env:ProgramData\\ssh\\administrators_authorized_keys" /inheritance:r '
                '/grant "Administrators:F" /grant "SYSTEM:F"',
            ],
            note=f"for an administrator account; a plain account ({user}) uses "
            f"C:\\Users\\{user}\\.ssh\\authorized_keys",
        ),
    ]


def _docker_steps(node: Node) -> list[SetupStep]:
    user = node.ssh.user if node.ssh else "USER"
    port = node.ssh.port if node.ssh else 22
    own = node.docker.restart_command if node.docker else None
    run = (
        f"the cluster file's docker.restart_command ({own!r}) replaces it"
        if own
        else "homelab's engine restart runs it over SSH (schtasks /Run)"
    )
    return [
        SetupStep(
            title="Docker Desktop starts when you sign in",
            where="Docker Desktop: Settings > General",
            note="tick 'Start Docker Desktop when you sign in to your computer'",
        ),
        SetupStep(
            title=f"Create the task that starts Docker Desktop in {user}'s desktop session",
            where=f"Command Prompt, signed in as {user}",
            commands=[_CREATE_TASK],
            note=f"{run}; a process started from the SSH session itself has no desktop, and Docker Desktop "
            "does not come up there",
        ),
        SetupStep(
            title="Check it from the controller",
            where="on the controller",
            commands=[f"ssh -p {port} {user}@{node.host} schtasks /Run /TN {DOCKER_DESKTOP_TASK}"],
            note="Docker Desktop comes up on the node's desktop within a minute",
        ),
    ]


def _wake_steps(node: Node) -> list[SetupStep]:
    user = node.ssh.user if node.ssh else "USER"
    if node.wake is not None and node.wake.command is not None:
        detach = "true" if node.wake.detach else "false: give detach: true for an RDP client"
        note = f"the cluster file's wake command is {node.wake.command!r} (detach: {detach})"
    else:
        note = (
            f"then give the node wake: {{command: 'xfreerdp /v:{node.host} /u:{user} /d:COMPUTERNAME /cert:tofu "
            "/from-stdin', command_secret: NAME, detach: true}"
        )
    return [
        SetupStep(
            title="Allow Remote Desktop (the wake signs the user in)",
            where="Settings > System > Remote Desktop",
            note=note,
        ),
        SetupStep(
            title="nvidia-smi comes with the NVIDIA driver",
            where="PowerShell",
            commands=["nvidia-smi"],
            note="without the driver, VRAM sampling reports the node as 'not installed', quietly",
        ),
    ]


def windows_setup(node: Node) -> list[SetupStep]:
    """What to do once on the Windows machine so that homelab can restart its Docker Desktop and wake it.

    Raises:
        ValueError: the node is not `os: windows`.
    """
    if node.os != "windows":
        raise ValueError(f"node {node.name} is os: {node.os}; the Windows setup is for os: windows nodes")
    return [*_ssh_steps(node), *_docker_steps(node), *_wake_steps(node)]
