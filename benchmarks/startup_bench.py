"""How long `homelab` takes to start, over a bare interpreter.

    python benchmarks/startup_bench.py [--runs 15] [--cluster examples/three-tier.yaml] [--json]

Runs each command --runs times, interleaved (a load spike then hits all of them alike), and
prints the median wall time and the median CPU time (user + system of the child), and how
much each exceeds `python -c pass`. CPU time is the steadier figure on a busy machine: other
processes stretch wall time, not CPU time. The targets of issue #18: `--version` and `--help`
within 0.25 s of the bare interpreter, `validate` within 0.6 s. They hold when the command
modules import only typer, rich and the cluster file's models at the top, and every heavy
library (Prefect, docker, paramiko, numpy, SQLAlchemy, pandas) inside the command that uses it;
`tests/test_core_boundaries.py` checks the imports, this script the time.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HOMELAB = Path(sys.executable).with_name("homelab")
TARGETS_S = {"--version": 0.25, "--help": 0.25, "validate": 0.6}

__all__ = ["main", "measure"]


def _commands(cluster: Path) -> dict[str, list[str]]:
    return {
        "bare": [sys.executable, "-c", "pass"],
        "--version": [str(HOMELAB), "--version"],
        "--help": [str(HOMELAB), "--help"],
        "validate": [str(HOMELAB), "validate", str(cluster)],
    }


def _run_once(argv: list[str]) -> tuple[float, float]:
    """Wall and CPU seconds of one run (CPU: the child's user + system time)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def measure(runs: int, cluster: Path) -> dict[str, dict[str, float]]:
    """Median wall and CPU seconds per command, and each one's excess over the bare interpreter."""
    commands = _commands(cluster)
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
    for argv in commands.values():  # one warm-up each: bytecode caches written, files in the page cache
        _run_once(argv)
    for _ in range(runs):
        for name, argv in commands.items():
            samples[name].append(_run_once(argv))
    result = {
        name: {
            "wall_s": statistics.median(w for w, _ in runs_),
            "cpu_s": statistics.median(c for _, c in runs_),
        }
        for name, runs_ in samples.items()
    }
    for figures in result.values():
        figures["wall_over_bare_s"] = figures["wall_s"] - result["bare"]["wall_s"]
        figures["cpu_over_bare_s"] = figures["cpu_s"] - result["bare"]["cpu_s"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--cluster", type=Path, default=ROOT / "examples" / "three-tier.yaml")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = measure(args.runs, args.cluster)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"median of {args.runs} runs each, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}")
    print(f"{'command':<12}{'wall':>9}{'over bare':>11}{'cpu':>9}{'over bare':>11}  target over bare")
    for name, f in result.items():
        target = f"{TARGETS_S[name]:.2f} s" if name in TARGETS_S else ""
        print(
            f"{name:<12}{f['wall_s']:>8.3f}s{f['wall_over_bare_s']:>10.3f}s"
            f"{f['cpu_s']:>8.3f}s{f['cpu_over_bare_s']:>10.3f}s  {target}"
        )


if __name__ == "__main__":
    main()
