"""The demo cluster's shape: its processes on free loopback ports, and its cluster file.

Three tiers on 127.0.0.1, as in `examples/three-tier.yaml` but small enough for a laptop:

- `desk` (tier primary): homelab's Ollama stand-in (not Ollama: canned replies, no model runs)
  and, when the `gateway` extra is installed, a real LiteLLM proxy in front of everything;
- `gpu-box` (tier secondary): two real llama-servers; the node declares a GPU and the
  containers a real box would run, so `homelab plan` has a lineup to place (the demo itself
  runs the servers as plain processes and has no GPU);
- `nas` (tier nas): one real llama-server, left down on purpose; the node has no SSH and no
  containers, only a wake command, so recovery wakes it (the command starts its server again).

Every llama-server serves the same tiny random-weight GGUF under its own alias: their answers
are gibberish; the point is real processes answering real probes.
"""

from __future__ import annotations

import shlex
import socket
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "DEMO_BLOCK",
    "DOWN_NODE",
    "HISTORY_FILE",
    "INVENTORY_HEADER",
    "ROUTE_PROMPT",
    "DemoProcess",
    "DemoState",
    "free_port",
    "inventory_data",
    "plan_demo",
]

LOOPBACK = "127.0.0.1"
DOWN_NODE = "nas"
DEMO_BLOCK = "custom-webhook/homelab-demo"  # the alert block `homelab demo` saves (demo/alerts.py)
HISTORY_FILE = "history.db"  # in the demo's folder
# A quick question: the router sends it to `fast`, whose first expert lives on the down node.
ROUTE_PROMPT = "What is the capital of Australia?"
_LLAMA_ARGS = ("-c", "512", "-t", "1", "--no-webui", "--offline")
_LITELLM_START_S = 180.0  # LiteLLM imports for 10-60 s on two busy cores
_START_S = 60.0


class DemoProcess(BaseModel):
    """A server of the demo: how it is started and when it is ready. Secrets are never here."""

    model_config = ConfigDict(frozen=True)

    name: str = Field(description="its name in the process table, also its log's")
    endpoint: str = Field(description="NODE/ENDPOINT in the cluster file")
    what: str = Field(description="what it is, for people")
    argv: list[str]
    url: str = Field(description="where it serves")
    ready_path: str = Field(description="answers 200 once the server serves")
    ready_timeout_s: float = _START_S
    env: dict[str, str] = Field(default_factory=dict, description="set on top of the demo's environment")
    secret_env_files: dict[str, str] = Field(
        default_factory=dict, description="variable -> file holding its value (read at start, never recorded)"
    )


class DemoState(BaseModel):
    """Everything a later command needs to find, wake or stop the demo (saved as demo.json)."""

    model_config = ConfigDict(frozen=True)

    folder: str
    inventory: str
    processes: list[DemoProcess] = Field(description="started by `homelab demo`")
    down: DemoProcess = Field(description="the down node's server: started only by its wake command")
    down_node: str = DOWN_NODE
    gateway_url: str | None = None
    master_key_file: str | None = None

    def find(self, name: str) -> DemoProcess:
        """The process named `name` (the down one included)."""
        return next(p for p in [*self.processes, self.down] if p.name == name)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def _llama(endpoint: str, binary: Path, model: Path, alias: str) -> DemoProcess:
    port = free_port()
    argv = [str(binary), "-m", str(model), "--host", LOOPBACK, "--port", str(port), "--alias", alias, *_LLAMA_ARGS]
    return DemoProcess(
        name=endpoint.replace("/", "-"), endpoint=endpoint, what="llama-server, tiny random-weight model",
        argv=argv, url=f"http://{LOOPBACK}:{port}", ready_path="/health",
    )  # fmt: skip


def plan_demo(folder: Path, llama_server: Path, model: Path, litellm: Path | None) -> DemoState:
    """Ports and command lines of every demo server (nothing is started).

    Args:
        folder: the demo's state folder (cluster file, history, logs, process table).
        llama_server: the llama-server binary.
        model: the tiny GGUF every llama-server loads.
        litellm: the `litellm` command, or None for a demo without the gateway.
    """
    python = sys.executable
    standin_port = free_port()
    processes = [
        DemoProcess(
            name="desk-ollama", endpoint="desk/ollama", what="Ollama stand-in (not Ollama)",
            argv=[python, "-m", "homelab_app.ollama_standin", "--host", LOOPBACK, "--port", str(standin_port)],
            url=f"http://{LOOPBACK}:{standin_port}", ready_path="/api/version",
        ),
        _llama("gpu-box/coder", llama_server, model, "qwen2.5-coder-7b"),
        _llama("gpu-box/general", llama_server, model, "qwen2.5-14b"),
    ]  # fmt: skip
    down = _llama(f"{DOWN_NODE}/small", llama_server, model, "qwen2.5-1.5b")
    gateway_url = master_key_file = None
    if litellm is not None:
        port = free_port()
        gateway_url = f"http://{LOOPBACK}:{port}"
        master_key_file = str(folder / "litellm-master-key")
        processes.append(
            DemoProcess(
                name="desk-litellm", endpoint="desk/litellm", what="LiteLLM proxy, the gateway",
                # Through this Python, not the script's shebang: the process then shows the
                # command line it was started with, which is how a stop knows it again.
                argv=[python, str(litellm), "--config", str(folder / "litellm.yaml"),
                      "--host", LOOPBACK, "--port", str(port)],
                url=gateway_url, ready_path="/health/liveliness", ready_timeout_s=_LITELLM_START_S,
                env={
                    "LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_TELEMETRY": "False",
                    "LITELLM_DONT_SHOW_FEEDBACK_BOX": "true", "LITELLM_LOG": "ERROR", "NO_PROXY": "*",
                },
                secret_env_files={"LITELLM_MASTER_KEY": master_key_file},
            )
        )  # fmt: skip
    return DemoState(
        folder=str(folder), inventory=str(folder / "cluster.yaml"), processes=processes, down=down,
        gateway_url=gateway_url, master_key_file=master_key_file,
    )  # fmt: skip


def _served(alias: str, name: str) -> dict[str, str]:
    return {"name": name, "alias": alias}


def inventory_data(state: DemoState) -> dict[str, Any]:
    """The demo's cluster file as data (valid per `homelab validate`)."""
    by_name = {p.name: p for p in [*state.processes, state.down]}
    wake = shlex.join([sys.executable, "-m", "homelab_app.demo.wake", "--state", state.folder, DOWN_NODE])
    desk: list[dict[str, Any]] = [
        {
            "name": "ollama", "kind": "ollama", "url": by_name["desk-ollama"].url,
            "models": [
                _served("chat", "llama3.2:1b"), _served("quick", "qwen2.5:0.5b"), _served("embed", "nomic-embed-text")
            ],
        }
    ]  # fmt: skip
    if state.gateway_url is not None:
        desk.append({"name": "litellm", "kind": "litellm", "url": state.gateway_url})
    container = {"image": "ghcr.io/ggml-org/llama.cpp:server-cuda"}
    gpu_box = [
        {
            "name": "coder", "kind": "llamacpp", "url": by_name["gpu-box-coder"].url,
            "models": [_served("coder", "qwen2.5-coder-7b")],
            "container": container
            | {"model_file": "qwen2.5-coder-7b-instruct-q4_k_m.gguf", "ctx_size": 16384, "start_order": 1},
        },
        {
            "name": "general", "kind": "llamacpp", "url": by_name["gpu-box-general"].url,
            "models": [_served("general", "qwen2.5-14b")],
            "container": container
            | {"model_file": "qwen2.5-14b-instruct-q4_k_m.gguf", "ctx_size": 8192, "start_order": 2},
        },
    ]  # fmt: skip
    nas = [
        {"name": "small", "kind": "llamacpp", "url": state.down.url, "models": [_served("nas-fast", "qwen2.5-1.5b")]}
    ]
    data: dict[str, Any] = {
        "version": 1,
        "name": "homelab-demo",
        "nodes": [
            {"name": "desk", "tier": "primary", "host": LOOPBACK, "endpoints": desk},
            {"name": "gpu-box", "tier": "secondary", "host": LOOPBACK,
             "gpus": [{"name": "RTX 4060 Ti", "vram_gib": 16}], "endpoints": gpu_box},
            {"name": DOWN_NODE, "tier": "nas", "host": LOOPBACK, "wake": {"command": wake}, "endpoints": nas},
        ],
        "experts": {
            "code": ["coder", "general"],
            "reason": ["general", "chat"],
            "chat": ["chat", "general"],
            "fast": ["nas-fast", "quick"],
            "embed": ["embed"],
        },
        "history": {"url": f"sqlite:///{HISTORY_FILE}"},
        # Prefect's webhook block that `homelab demo` saves, posting to its loopback receiver.
        "notify": {"blocks": [DEMO_BLOCK], "min_repeat": "30m"},
    }  # fmt: skip
    if state.gateway_url is not None:
        data["gateway"] = {"endpoint": "desk/litellm"}
    return data


INVENTORY_HEADER = """\
# The homelab demo cluster, written by `homelab demo`; stop it with `homelab demo --stop`.
# Everything runs on this machine, on 127.0.0.1:
# - desk/ollama is homelab's Ollama stand-in (python -m homelab_app.ollama_standin): it keeps
#   Ollama's API with canned replies and runs no model. It is not Ollama.
# - the llama-servers are real llama.cpp servers loading one tiny random-weight GGUF (their
#   answers are gibberish); gpu-box declares a GPU and the containers a real box would run,
#   for `homelab plan`, but the demo runs its servers as plain processes and has no GPU.
# - nas is left down on purpose: its wake command (a stand-in for a smart plug or a BMC)
#   starts its llama-server again when the recover-node flow wakes it.
# - notify: sends alerts through a webhook block to a receiver in the `homelab demo` process,
#   which prints what it gets (the node going down, then its recovery).
"""
