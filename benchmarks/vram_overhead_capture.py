"""Measure what a llama-server process holds on the GPU beyond the buffers it logs.

llama.cpp logs its model, KV cache and compute buffers, never the CUDA context, cuBLAS's handle
and workspace or ggml's CUDA memory pool; the estimate adds a per-GPU overhead for those. This
script measures it: it starts llama-server (CUDA build, warm-up on, as users run it) for a few
shapes and reads nvidia-smi's per-process used memory three times: once loaded, after a prompt of
one micro-batch (512 tokens) and after a prompt that fills the context (the pool grows with the
attention it computes). It also measures a bare CUDA context and one with a cuBLAS handle that ran
one GEMM, so the overhead can be split. Overhead = used - logged GPU buffers
(`homelab.vram.overhead`).

    python benchmarks/vram_overhead_capture.py --server PATH/llama-server --models DIR --out DIR
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import random
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.vram_capture import CASES, Run, free_port, stop, wait_healthy, write_models

# (model, context, flash attention, GPU layers): no, partial and full offload, short and long
# contexts, quantized (MMQ kernels) and F16 weights (cuBLAS), with and without flash attention.
SHAPES = [
    ("llama-q4", 4096, True, 13),
    ("llama-q4", 4096, True, 6),
    ("llama-q4", 4096, True, 0),
    ("llama-q4", 32768, True, 13),
    ("llama-q4", 32768, False, 13),
    ("llama-f16", 4096, True, 9),
    ("llama-f16", 4096, False, 9),
    ("llama-f16", 32768, False, 4),
    ("llama-q4", 32768, False, 0),
]
_REQUEST_TIMEOUT_S = 180.0


def _smi(query: str) -> str:
    try:
        done = subprocess.run(["nvidia-smi", query, "--format=csv,noheader,nounits"], capture_output=True, text=True)
    except OSError:
        return ""
    return done.stdout


def gpu_memory(pid: int | None) -> dict[str, int | None]:
    """nvidia-smi's used memory (MiB): the whole GPU's and, when `pid` is given, that process's."""
    total = _smi("--query-gpu=memory.used").split()
    apps = _smi("--query-compute-apps=pid,used_memory")
    used = None
    for line in apps.splitlines():
        fields = [f.strip() for f in line.split(",")]
        if pid is not None and len(fields) == 2 and fields[0] == str(pid) and fields[1].isdigit():
            used = int(fields[1])
    return {"gpu_used_mib": int(total[0]) if total and total[0].isdigit() else None, "process_used_mib": used}


def _prompt(port: int, n_tokens: int, n_vocab: int) -> float:
    """Send a prompt of `n_tokens` token ids (no prompt cache); returns the seconds it took."""
    rng = random.Random(n_tokens)
    body = {"prompt": [rng.randrange(300, n_vocab) for _ in range(n_tokens)], "n_predict": 1, "cache_prompt": False}
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/completion",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    started = time.monotonic()
    with urllib.request.urlopen(request, timeout=_REQUEST_TIMEOUT_S) as resp:
        resp.read()
    return time.monotonic() - started


def measure(server: Path, model: Path, run: Run, n_vocab: int, log: Path) -> dict:
    """One server start: memory once loaded, after one micro-batch, after a full context."""
    port = free_port()
    cmd = [
        str(server), "-m", str(model), "--host", "127.0.0.1", "--port", str(port), "-c", str(run.ctx),
        "-np", str(run.parallel), "-ctk", run.cache_type, "-ctv", run.cache_type,
        "-fa", "on" if run.flash_attn else "off", "-ngl", str(run.ngl), "--fit", "off",
        "-t", "4", "--offline", "--no-webui", "-lv", "4",
    ]  # fmt: skip
    result: dict = {"samples": {}, "prompt_s": {}}
    with log.open("w") as out:
        out.write("# " + " ".join(cmd[1:]) + "\n")
        out.flush()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        try:
            result["loaded"] = wait_healthy(port, proc, 120.0)
            if result["loaded"]:
                time.sleep(0.5)
                result["samples"]["loaded"] = gpu_memory(proc.pid)
                # A full context less room for the one generated token.
                for stage, n_tokens in (("ubatch", 512), ("full", run.ctx // run.parallel - 8)):
                    result["prompt_s"][stage] = round(_prompt(port, n_tokens, n_vocab), 3)
                    result["samples"][stage] = gpu_memory(proc.pid)
        except OSError as exc:
            result["error"] = str(exc)
        finally:
            stop(proc)
    return result


def _load_first(stem: str) -> ctypes.CDLL:
    """A CUDA library by soname, else from the toolkit or the pip-installed nvidia packages."""
    found = [f"{stem}.so.13", f"{stem}.so.12", f"{stem}.so"]
    for folder in (Path("/usr/local/cuda/lib64"), *Path(sys.prefix).glob("lib/python3*/site-packages/nvidia/*/lib")):
        found += [str(p) for p in sorted(folder.glob(f"{stem}.so*"))]
    for name in found:
        try:
            return ctypes.CDLL(name)
        except OSError:
            continue
    raise OSError(f"{stem} could not be loaded")


def bare_context() -> None:
    """Print the MiB a process holds with only a CUDA context, then with a cuBLAS handle after one GEMM."""
    rt = _load_first("libcudart")
    rt.cudaFree(ctypes.c_void_p(0))  # creates the primary context
    print(json.dumps({"stage": "context", **gpu_memory(os.getpid())}), flush=True)
    blas = _load_first("libcublas")
    handle = ctypes.c_void_p()
    blas.cublasCreate_v2(ctypes.byref(handle))
    n = 256
    ptrs = [ctypes.c_void_p() for _ in range(3)]
    for p in ptrs:
        rt.cudaMalloc(ctypes.byref(p), ctypes.c_size_t(n * n * 4))
    one, zero = ctypes.c_float(1.0), ctypes.c_float(0.0)
    blas.cublasSgemm_v2(
        handle, 0, 0, n, n, n, ctypes.byref(one), ptrs[0], n, ptrs[1], n, ctypes.byref(zero), ptrs[2], n
    )
    rt.cudaDeviceSynchronize()
    print(
        json.dumps({"stage": "cublas_gemm", "buffers_mib": 3 * n * n * 4 / 2**20, **gpu_memory(os.getpid())}),
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", type=Path, help="the llama-server binary")
    parser.add_argument("--models", type=Path, help="folder of the GGUF models (written if missing)")
    parser.add_argument("--out", type=Path, help="folder for logs/ and overhead.json")
    parser.add_argument("--runs", nargs="*", help="run ids (vram_capture.py's) instead of SHAPES")
    parser.add_argument("--bare", action="store_true", help="only measure a bare CUDA context and cuBLAS")
    args = parser.parse_args()
    if args.bare:
        bare_context()
        return
    runs = [Run.parse(r) for r in args.runs] if args.runs else [Run(m, c, 1, "f16", fa, n) for m, c, fa, n in SHAPES]
    cases = json.loads(CASES.read_text())
    wanted = {run.model for run in runs}
    cases["models"] = [m for m in cases["models"] if m["id"] in wanted]
    vocab = {m["id"]: m["n_vocab"] for m in cases["models"]}
    args.models.mkdir(parents=True, exist_ok=True)
    (args.out / "logs").mkdir(parents=True, exist_ok=True)
    models = write_models(cases, args.models)
    idle = gpu_memory(None)
    results = []
    for run in runs:
        log = args.out / "logs" / f"{run.id}.log"
        started = time.monotonic()
        measured = measure(args.server, models[run.model], run, vocab[run.model], log)
        results.append({**run.__dict__, "id": run.id, "log": f"logs/{log.name}", **measured})
        print(f"{run.id}: {measured['samples']} ({time.monotonic() - started:.1f} s)", flush=True)
        (args.out / "overhead.json").write_text(json.dumps({"idle": idle, "runs": results}, indent=1))


if __name__ == "__main__":
    main()
