"""Capture llama.cpp's per-device buffers with two RPC devices: ground truth for offload and split.

llama.cpp's RPC backend (ggml-rpc) makes a remote backend a device. Two `rpc-server`s on
loopback ports are two devices to `llama-server --rpc`, which then runs the same device code
as on CUDA: layers assigned per device from --tensor-split and --split-mode, the output layer on
the last device, KV of each layer beside it, experts kept on the host by --n-cpu-moe and
--override-tensor, a compute buffer per device plus the host's, pipeline parallelism (four graph
copies) when every layer is offloaded to several devices. Only the allocation sizes differ from
CUDA: an RPC device asks the server's CPU backend (plain ggml_nbytes, 32-byte alignment).

Every run's log is kept (trimmed, as benchmarks/vram_capture.py keeps its logs) with the run's
flags in runs.json; `benchmarks/vram_accuracy.py --rpc` compares them with the estimate.
Needs rpc-server, which scripts/build-llama-server.sh builds beside llama-server (it prints the latter).

    bin="$(dirname "$(scripts/build-llama-server.sh)")"
    python benchmarks/vram_rpc_capture.py --bin "$bin" --out DIR [--runs ID ...]

On a machine with GPUs, `--cuda N` runs the same matrix on a CUDA build's N GPUs instead (runs
that need more devices are left out; `-ot ...=RPC1` becomes `=CUDA1`): the CUDA sizes, op offload
of CPU experts included, that RPC devices cannot show.
"""

from __future__ import annotations

import argparse
import json
import re
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from vram_capture import free_port, start_logged, stop, trim_log, write_models

HERE = Path(__file__).resolve().parent
# The tiny shapes: every MoE architecture (F16, plus Q4_0 experts, which the CPU repacks) and two dense ones.
MODELS = {
    HERE / "vram_moe_cases.json": (
        "qwen3moe-f16",
        "qwen3moe-q4",
        "qwen2moe-f16",
        "gpt-oss-mxfp4",
        "glm4moe-f16",
        "deepseek2-f16",
    ),
    HERE / "vram_cases.json": ("llama-q4", "qwen2-f16"),
}
DEVICES = 2
_LOG_TAIL = 12  # lines of a failed start's log kept as its reason
# Beyond vram_capture's lines: where each layer and each overridden tensor went (llama-model.cpp:1601,
# llama-model-loader.cpp:1253), the ground truth of the device assignment.
_ALSO_KEEP = re.compile(r"assigned to device|buffer type overridden")


@dataclass(frozen=True)
class RpcRun:
    """One llama-server start on RPC devices. `override_tensor` names devices as `RPC0`, `RPC1`:
    llama.cpp's buffer names carry the server's port (`RPC0[127.0.0.1:PORT]`), known only at start."""

    model: str
    ctx: int
    flash_attn: bool
    ngl: int
    devices: int = DEVICES
    tensor_split: str = ""
    split_mode: str = "layer"
    main_gpu: int = 0
    n_cpu_moe: int = 0
    override_tensor: str = ""
    label: str = ""  # names the override in the id
    parallel: int = 1
    cache_type: str = "f16"

    @property
    def id(self) -> str:
        parts = [self.model, f"c{self.ctx}", "fa" if self.flash_attn else "nofa", f"ngl{self.ngl}", f"d{self.devices}"]
        if self.tensor_split:
            parts.append("ts" + self.tensor_split.replace(",", "-"))
        if self.split_mode != "layer":
            parts.append(f"sm{self.split_mode}-mg{self.main_gpu}")
        if self.n_cpu_moe:
            parts.append(f"cmoe{self.n_cpu_moe}")
        if self.override_tensor:
            parts.append(f"ot-{self.label}")
        return "_".join(parts)


def runs_for(spec: dict[str, Any]) -> list[RpcRun]:
    """Each axis against a baseline (all layers on two devices, split 1:1, 4096 cells, no flash attention)."""
    model, layers = spec["id"], spec["n_layer"] + 1  # llama.cpp counts the output layer as one more
    base = RpcRun(model, 4096, False, layers, tensor_split="1,1")
    runs = [
        RpcRun(model, 4096, False, layers, devices=1),
        base,
        RpcRun(model, 4096, True, layers, tensor_split="1,1"),
        RpcRun(model, 512, False, layers, tensor_split="1,1"),
        RpcRun(model, 16384, False, layers, tensor_split="1,1"),
        RpcRun(model, 4096, False, layers, tensor_split="3,1"),
        RpcRun(model, 4096, True, layers, tensor_split="3,1"),
        RpcRun(model, 4096, False, layers // 2, tensor_split="1,1"),
        RpcRun(model, 4096, False, layers, tensor_split="1,1", split_mode="none", main_gpu=1),
        RpcRun(model, 4096, False, layers, tensor_split="1,0", override_tensor=r"blk\.1\.=RPC1", label="blk1-rpc1"),
        RpcRun(model, 4096, True, layers, tensor_split="1,0", override_tensor=r"blk\.1\.=RPC1", label="blk1-rpc1"),
        # Row and tensor split need a split buffer type only some GPU backends have: tried, to record what happens.
        RpcRun(model, 4096, False, layers, tensor_split="1,1", split_mode="row"),
        RpcRun(model, 4096, False, layers, tensor_split="1,1", split_mode="tensor"),
    ]
    if "n_expert" in spec:
        n_layer = spec["n_layer"]
        runs += [
            RpcRun(model, 4096, False, layers, tensor_split="1,1", n_cpu_moe=2),
            RpcRun(model, 4096, True, layers, tensor_split="3,1", n_cpu_moe=2),
            RpcRun(model, 4096, False, layers, tensor_split="1,1", n_cpu_moe=n_layer),
            RpcRun(model, 4096, False, layers // 2, tensor_split="1,1", n_cpu_moe=2),
            RpcRun(model, 4096, False, layers, devices=1, n_cpu_moe=n_layer),
            RpcRun(model, 4096, False, layers, tensor_split="1,1", override_tensor="exps=CPU", label="exps-cpu"),
            RpcRun(model, 4096, True, layers, tensor_split="1,1", override_tensor="exps=CPU", label="exps-cpu"),
        ]
    return runs


class RpcServers:
    """`rpc-server`s on free loopback ports, restarted when one has died (a crash of a run)."""

    def __init__(self, binary: Path, count: int, logs: Path) -> None:
        self.binary, self.logs = binary, logs
        self.procs: list[subprocess.Popen[bytes] | None] = [None] * count
        self.ports = [0] * count

    def ensure(self) -> list[str]:
        for i, proc in enumerate(self.procs):
            if proc is None or proc.poll() is not None:
                self.ports[i] = free_port()
                cmd = [str(self.binary), "-H", "127.0.0.1", "-p", str(self.ports[i]), "-t", "1"]
                with (self.logs / f"rpc-server-{i}.log").open("a") as out:
                    self.procs[i] = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
                _wait_listening(self.ports[i])
        return [f"127.0.0.1:{port}" for port in self.ports]

    def close(self) -> None:
        for proc in self.procs:
            if proc is not None:
                stop(proc)


def _wait_listening(port: int, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"rpc-server on 127.0.0.1:{port} did not listen within {timeout_s:.0f} s")


def command(server: Path, model: Path, run: RpcRun, endpoints: list[str], port: int) -> list[str]:
    """llama-server's command line; `RPCi` in an override becomes device i's buffer name."""
    used = endpoints[: run.devices]
    cmd = [
        str(server), "-m", str(model), "--host", "127.0.0.1", "--port", str(port),
        "-c", str(run.ctx), "-np", str(run.parallel), "-ctk", run.cache_type, "-ctv", run.cache_type,
        "-fa", "on" if run.flash_attn else "off", "-ngl", str(run.ngl), "-sm", run.split_mode,
        "-mg", str(run.main_gpu), "--fit", "off", "--no-warmup", "-t", "2", "--offline", "--no-webui", "-lv", "5",
    ]  # fmt: skip
    if used:
        cmd[1:1] = ["--rpc", ",".join(used)]  # first: -ot looks the RPC buffer types up when it is parsed
    if run.tensor_split:
        cmd += ["-ts", run.tensor_split]
    if run.n_cpu_moe:
        cmd += ["--n-cpu-moe", str(run.n_cpu_moe)]
    if run.override_tensor:
        override = run.override_tensor
        for i, endpoint in enumerate(used):
            override = override.replace(f"=RPC{i}", f"=RPC0[{endpoint}]")  # each server has one device, 0
        cmd += ["-ot", override]
    return cmd


def capture(server: Path, model: Path, run: RpcRun, endpoints: list[str], log: Path, timeout_s: float) -> bool:
    port = free_port()
    return start_logged(command(server, model, run, endpoints, port), port, log, timeout_s)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__
    )
    parser.add_argument("--bin", type=Path, required=True, help="folder with llama-server and rpc-server")
    parser.add_argument("--out", type=Path, required=True, help="folder for logs/ and runs.json")
    parser.add_argument(
        "--models-dir", type=Path, help="where the GGUF models are (written if missing); default OUT/models"
    )
    parser.add_argument("--models", nargs="*", help="these model ids of the case files instead of the default ones")
    parser.add_argument("--runs", nargs="*", help="only these run ids")
    parser.add_argument("--timeout-s", type=float, default=90.0, help="per server start")
    parser.add_argument("--cuda", type=int, default=0, metavar="N", help="a CUDA build's N GPUs instead of RPC")
    args = parser.parse_args()

    every = [m for path in MODELS for m in json.loads(path.read_text())["models"]]
    chosen = args.models or [model for ids in MODELS.values() for model in ids]
    specs = [m for m in every if m["id"] in chosen]
    # dict.fromkeys: on a two-block model --n-cpu-moe 2 and all are one run.
    runs = list(dict.fromkeys(run for spec in specs for run in runs_for(spec) if not args.runs or run.id in args.runs))
    if args.cuda:
        runs = [
            replace(run, override_tensor=run.override_tensor.replace("=RPC", "=CUDA"))
            for run in runs
            if run.devices <= args.cuda
        ]
    logs = args.out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    models_dir = args.models_dir or args.out / "models"
    models_dir.mkdir(parents=True, exist_ok=True)
    cases = {"models": specs}
    models = write_models(cases, models_dir)
    servers = RpcServers(args.bin / "rpc-server", 0 if args.cuda else DEVICES, args.out)
    results, started = [], time.monotonic()
    try:
        for i, run in enumerate(runs, 1):
            log = logs / f"{run.id}.log"
            ok = capture(args.bin / "llama-server", models[run.model], run, servers.ensure(), log, args.timeout_s)
            text = log.read_text(errors="replace")
            entry = {**asdict(run), "id": run.id, "loaded": ok, "log": f"logs/{log.name}"}
            if not ok:
                entry["error"] = text.splitlines()[-_LOG_TAIL:]
            log.write_text(trim_log(text, _ALSO_KEEP))
            results.append(entry)
            print(
                f"[{i}/{len(runs)}] {run.id}: {'ok' if ok else 'FAILED'} ({time.monotonic() - started:.0f} s)",
                flush=True,
            )
            # Written after every run, so a capture cut short keeps what it has.
            (args.out / "runs.json").write_text(json.dumps({"cases": cases, "runs": results}, indent=1) + "\n")
    finally:
        servers.close()
    return 0 if all(r["loaded"] for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
