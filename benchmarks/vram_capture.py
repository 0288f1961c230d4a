"""Capture llama-server's own memory figures for generated GGUF models: the VRAM ground truth.

llama-server logs every buffer it allocates while loading (model weights per device, KV cache,
compute buffers). This script writes GGUF models of several shapes with `homelab.tiny_gguf`,
starts llama-server on each with a matrix of settings (context, parallel sequences, KV cache
type, flash attention, GPU layers), waits until it is loaded, stops it and keeps its log.
`benchmarks/vram_accuracy.py` compares those figures with homelab's estimate.

It runs on the CPU build here and on a CUDA build on a lent GPU machine
(`benchmarks/vram_gpu_capture.sh`), where partial offload can be observed.

    python benchmarks/vram_capture.py --server PATH/llama-server --out DIR [--gpu] [--quick] [--runs ID ...]
"""

from __future__ import annotations

import argparse
import json
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gguf import GGMLQuantizationType

from homelab.tiny_gguf import write_tiny_llama
from homelab.tiny_moe import MOE_ARCHS, write_tiny_moe

CASES = Path(__file__).with_name("vram_cases.json")


@dataclass(frozen=True)
class Run:
    model: str
    ctx: int
    parallel: int
    cache_type: str
    flash_attn: bool
    ngl: int

    @property
    def id(self) -> str:
        fa = "fa" if self.flash_attn else "nofa"
        return f"{self.model}_c{self.ctx}_p{self.parallel}_{self.cache_type}_{fa}_ngl{self.ngl}"

    @classmethod
    def parse(cls, run_id: str) -> Run:
        """The run named by an id such as `llama-q4_c32768_p1_f16_nofa_ngl0`."""
        match = re.fullmatch(r"(.+)_c(\d+)_p(\d+)_(\w+?)_(fa|nofa)_ngl(\d+)", run_id)
        if match is None:
            raise ValueError(f"not a run id: {run_id!r}")
        model, ctx, parallel, cache, fa, ngl = match.groups()
        return cls(model, int(ctx), int(parallel), cache, fa == "fa", int(ngl))


# Log lines kept in benchmarks/data: what homelab.vram.llama_log reads and the model's shape.
_KEEP = re.compile(
    r"print_info: (file type|n_embd|n_layer|n_head|n_swa |n_ff |model params|n_vocab)"
    r"|load_tensors: (?!layer)|llama_context:|llama_kv_cache|sched_reserve:"
    r"|using device "  # the device order, which -ts and -mg count in
)


def trim_log(text: str, also: re.Pattern[str] | None = None) -> str:
    """The command line and the memory-relevant lines of a llama-server log (and those `also` matches)."""
    lines = text.splitlines()
    kept = [line for line in lines[1:] if _KEEP.search(line) or (also and also.search(line))]
    return "\n".join(lines[:1] + kept) + "\n"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_models(cases: dict, models_dir: Path) -> dict[str, Path]:
    paths = {}
    for spec in cases["models"]:
        path = models_dir / f"{spec['id']}.gguf"
        if not path.exists():
            write_model(spec, path)
        paths[spec["id"]] = path
    return paths


def write_model(spec: dict, path: Path) -> None:
    """Write a case's model: `write_tiny_moe` for the mixture-of-experts architectures."""
    args = {k: v for k, v in spec.items() if k not in {"id", "dtype"}}
    if "expert_dtype" in args:
        args["expert_dtype"] = GGMLQuantizationType[args["expert_dtype"]]
    writer = write_tiny_moe if spec["arch"] in MOE_ARCHS else write_tiny_llama
    writer(path, dtype=GGMLQuantizationType[spec["dtype"]], **args)


def runs_for(cases: dict, gpu: bool, quick: bool) -> list[Run]:
    """A pruned matrix: every axis varies against a baseline, not every combination.

    Per model: each context with fa off/on at 0, half and all GPU layers; 4 parallel sequences
    at the larger contexts; q8_0 and q4_0 caches (which need flash attention) at half and all.
    On the CPU build only ngl 0 is meaningful.
    """
    contexts = cases["contexts"][: 2 if quick else None]
    runs = []
    for spec in cases["models"]:
        layers = spec["n_layer"] + 1  # llama.cpp counts the output layer as one more
        all_ngl = sorted({0, layers // 2, layers}) if gpu else [0]
        top_ngl = all_ngl[-2:] if gpu else [0]
        model = spec["id"]
        for ctx in contexts:
            runs += [Run(model, ctx, 1, "f16", fa, ngl) for fa in (False, True) for ngl in all_ngl]
        for ctx in contexts[1:]:
            runs += [Run(model, ctx, 4, "f16", fa, all_ngl[-1]) for fa in (False, True)]
            runs += [Run(model, ctx, 1, cache, True, ngl) for cache in ("q8_0", "q4_0") for ngl in top_ngl]
    return runs


def capture(server: Path, model: Path, run: Run, log: Path, timeout_s: float) -> bool:
    port = free_port()
    cmd = [
        str(server), "-m", str(model), "--host", "127.0.0.1", "--port", str(port),
        "-c", str(run.ctx), "-np", str(run.parallel), "-ctk", run.cache_type, "-ctv", run.cache_type,
        "-fa", "on" if run.flash_attn else "off", "-ngl", str(run.ngl), "--fit", "off",
        "--no-warmup", "-t", "4", "--offline", "--no-webui", "-lv", "4",
    ]  # fmt: skip
    return start_logged(cmd, port, log, timeout_s)


def start_logged(cmd: list[str], port: int, log: Path, timeout_s: float) -> bool:
    """Start llama-server, its command line (less the binary) first in its log; stop it once it serves."""
    with log.open("w") as out:
        out.write("# " + " ".join(cmd[1:]) + "\n")
        out.flush()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        ready = wait_healthy(port, proc, timeout_s)
        stop(proc)
    return ready


def wait_healthy(port: int, proc: subprocess.Popen, timeout_s: float) -> bool:
    """Poll llama-server's /health until it answers 200, the process exits or time runs out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as resp:
                if resp.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    return False


def stop(proc: subprocess.Popen) -> None:
    """Terminate a server, killing it if it does not exit within 10 s."""
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", type=Path, required=True, help="the llama-server binary")
    parser.add_argument("--out", type=Path, required=True, help="folder for models/, logs/ and runs.json")
    parser.add_argument(
        "--models-dir", type=Path, help="where the GGUF models are (written if missing); default OUT/models"
    )
    parser.add_argument("--cases", type=Path, default=CASES)
    parser.add_argument("--gpu", action="store_true", help="also offload 0, half and all layers")
    parser.add_argument("--quick", action="store_true", help="only the two smallest contexts")
    parser.add_argument("--models", nargs="*", help="only these model ids")
    parser.add_argument("--runs", nargs="*", help="these run ids instead of the matrix")
    parser.add_argument("--prepare-only", action="store_true", help="write the models, run nothing")
    parser.add_argument("--trim", action="store_true", help="trim OUT/logs/*.log to the lines kept in benchmarks/data")
    parser.add_argument("--timeout-s", type=float, default=60.0, help="per server start")
    args = parser.parse_args()

    if args.trim:
        for log in (args.out / "logs").glob("*.log"):
            log.write_text(trim_log(log.read_text(errors="replace")))
        return
    cases = json.loads(args.cases.read_text())
    chosen = [Run.parse(r) for r in args.runs or ()]
    wanted = args.models or {run.model for run in chosen}
    if wanted:
        cases["models"] = [m for m in cases["models"] if m["id"] in wanted]
    models_dir = args.models_dir or args.out / "models"
    models_dir.mkdir(parents=True, exist_ok=True)
    (args.out / "logs").mkdir(parents=True, exist_ok=True)
    models = write_models(cases, models_dir)
    if args.prepare_only:
        return
    runs = chosen or runs_for(cases, args.gpu, args.quick)
    results = []
    started = time.monotonic()
    for i, run in enumerate(runs, 1):
        log = args.out / "logs" / f"{run.id}.log"
        ok = capture(args.server, models[run.model], run, log, args.timeout_s)
        results.append({**asdict(run), "id": run.id, "loaded": ok, "log": f"logs/{log.name}"})
        print(
            f"[{i}/{len(runs)}] {run.id}: {'ok' if ok else 'FAILED'} ({time.monotonic() - started:.0f} s)", flush=True
        )
        # Written after every run, so a capture cut short by its time limit keeps what it has.
        (args.out / "runs.json").write_text(json.dumps({"cases": cases, "runs": results}, indent=1))


if __name__ == "__main__":
    main()
