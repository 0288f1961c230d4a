"""How long a health sweep of a big cluster takes: the core sweep, the Prefect flow, a naive loop.

N loopback endpoints answer like llama-server (fast), slowly, not at all (a blackholed socket
that accepts and never answers) or refuse. They run in a separate process
(`tests/fixtures/endpoint_fleet.py`) at a raised priority (nice -10 when root) so they answer
as promptly as remote machines would; their work is not timed as the prober's, but it comes
out of the same cores (and, for the flow, so does the Prefect server's). The cluster file
spreads them round-robin over the nodes and sets one timeout (connect and total) for all.
Runs are `--settle-s` apart, as scheduled sweeps are minutes apart.

    python benchmarks/sweep_bench.py [--endpoints 500] [--nodes 50] [--timeout-s 2] [--runs 3]

Measured:
    core   `asyncio.run(sweep(...))` as `homelab sweep` does it, client creation included
    flow   the `health-sweep` flow on `prefect_test_harness`'s local server (start not timed):
           wall time of the call, and the probe phase inside it (the report's duration)
    naive  one `httpx.get` after another with the same timeouts, on a sample with the same
           mix, extrapolated to N (a blackholed endpoint alone costs the full timeout)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import yaml  # noqa: E402

from homelab.health.http import open_probe_client  # noqa: E402
from homelab.health.sweep import SweepReport, sweep  # noqa: E402
from homelab.inventory import Inventory, load_inventory  # noqa: E402

BEHAVIOURS = ("ok", "slow", "blackhole", "refused")
# Niceness of the fleet process (negative: ahead of the prober and the Prefect server; needs root).
FLEET_NICE = -10


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoints", type=int, default=500)
    parser.add_argument("--nodes", type=int, default=50)
    parser.add_argument("--timeout-s", type=float, default=2.0, help="connect and total timeout of every probe")
    parser.add_argument("--blackhole", type=float, default=0.20, help="share of blackholed endpoints")
    parser.add_argument("--refused", type=float, default=0.10, help="share of refused ports")
    parser.add_argument("--slow", type=float, default=0.10, help="share of slow endpoints")
    parser.add_argument(
        "--slow-s", type=float, default=0.3, help="delay of each slow answer (a probe makes two requests)"
    )
    parser.add_argument("--runs", type=int, default=3, help="runs of the core sweep and of the flow")
    parser.add_argument("--naive-sample", type=int, default=25, help="endpoints the naive loop really probes")
    parser.add_argument(
        "--settle-s",
        type=float,
        default=5.0,
        help="pause between runs: the Prefect server works off each run's events for a few seconds, "
        "and scheduled sweeps are minutes apart",
    )
    parser.add_argument("--skip-flow", action="store_true")
    return parser.parse_args(argv)


def mix(args: argparse.Namespace) -> dict[str, int]:
    counts = {b: round(args.endpoints * getattr(args, b)) for b in ("slow", "blackhole", "refused")}
    return {"ok": args.endpoints - sum(counts.values()), **counts}


def _raise_priority() -> None:
    """Real endpoints answer from their own machines: keep the fleet from waiting for a core."""
    try:
        os.nice(FLEET_NICE)
    except PermissionError:
        pass


def start_fleet(counts: dict[str, int], slow_s: float) -> tuple[subprocess.Popen[str], dict[str, list[int]]]:
    """The endpoint fleet as its own process; it prints its ports once every listener is up."""
    command = [sys.executable, "-m", "tests.fixtures.endpoint_fleet", "--slow-s", str(slow_s)]
    command += [arg for b, n in counts.items() for arg in (f"--{b}", str(n))]
    fleet = subprocess.Popen(
        command, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, preexec_fn=_raise_priority
    )
    assert fleet.stdout is not None
    return fleet, json.loads(fleet.stdout.readline())


def write_cluster(directory: Path, ports: dict[str, list[int]], nodes: int, timeout_s: float) -> Path:
    """Endpoints shuffled (fixed seed) and dealt round-robin to the nodes."""
    endpoints = [(b, port) for b in BEHAVIOURS for port in ports[b]]
    random.Random(0).shuffle(endpoints)
    spec: list[dict[str, Any]] = [
        {"name": f"node{i:02d}", "tier": f"tier{i % 3}", "host": "127.0.0.1", "endpoints": []} for i in range(nodes)
    ]
    for i, (behaviour, port) in enumerate(endpoints):
        spec[i % nodes]["endpoints"].append(
            {"name": f"{behaviour}-{port}", "kind": "llamacpp", "url": f"http://127.0.0.1:{port}"}
        )
    cluster = {
        "name": "bench",
        "defaults": {"probe": {"connect_s": timeout_s, "total_s": timeout_s, "slow_ms": 1500}},
        "nodes": spec,
        "history": {"url": "sqlite:///history.db"},
    }
    path = directory / "cluster.yaml"
    path.write_text(yaml.safe_dump(cluster, sort_keys=False))
    return path


def core_sweep(inv: Inventory) -> SweepReport:
    async def run() -> SweepReport:
        async with open_probe_client() as client:
            return await sweep(inv, client)

    return asyncio.run(run())


def naive_loop(urls: list[str], timeout_s: float) -> None:
    """What a first script does: GET each /health in turn, waiting out every timeout."""
    with httpx.Client(timeout=httpx.Timeout(timeout_s), trust_env=False) as client:
        for url in urls:
            try:
                client.get(url + "/health")
            except httpx.HTTPError:
                pass


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    value = fn()
    return time.perf_counter() - started, value


def naive_sample(ports: dict[str, list[int]], counts: dict[str, int], size: int) -> list[str]:
    """`size` endpoints with the fleet's mix (at least one of each behaviour present)."""
    total = sum(counts.values())
    take = {b: max(1, round(size * n / total)) if n else 0 for b, n in counts.items()}
    return [f"http://127.0.0.1:{port}" for b in BEHAVIOURS for port in ports[b][: take[b]]]


def repeated(fn: Callable[[], Any], runs: int, settle_s: float) -> list[tuple[float, Any]]:
    """`runs` timed calls with a pause before each but the first."""
    out = []
    for i in range(runs):
        if i:
            time.sleep(settle_s)
        out.append(timed(fn))
    return out


def flow_runs(cluster: Path, runs: int, settle_s: float) -> list[tuple[float, SweepReport]]:
    """(wall s, report) per flow run, on a temporary local Prefect server."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    from prefect.testing.utilities import prefect_test_harness

    from flows.health_sweep import health_sweep

    with prefect_test_harness(server_startup_timeout=180):
        return repeated(lambda: asyncio.run(health_sweep(str(cluster))), runs, settle_s)


def states(reports: list[SweepReport]) -> str:
    """UP/SLOW/DOWN counts per run: DOWN above the refused + blackholed count means a starved prober."""
    counts = [[sum(r.state == s for r in report.endpoints) for s in ("UP", "SLOW", "DOWN")] for report in reports]
    return "UP/SLOW/DOWN " + " ".join("/".join(map(str, c)) for c in counts)


def row(label: str, seconds: list[float], note: str) -> str:
    best, median = min(seconds), statistics.median(seconds)
    return f"| {label:<34} | {best:8.2f} | {median:8.2f} | {note} |"


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    counts = mix(args)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    fleet, ports = start_fleet(counts, args.slow_s)
    fleet_nice = os.getpriority(os.PRIO_PROCESS, fleet.pid)
    try:
        with tempfile.TemporaryDirectory(prefix="sweep-bench-") as tmp:
            cluster = write_cluster(Path(tmp), ports, args.nodes, args.timeout_s)
            inv = load_inventory(cluster)
            core = repeated(lambda: core_sweep(inv), args.runs, args.settle_s)
            sample = naive_sample(ports, counts, args.naive_sample)
            naive_s, _ = timed(lambda: naive_loop(sample, args.timeout_s))
            flows = [] if args.skip_flow else flow_runs(cluster, args.runs, args.settle_s)
    finally:
        assert fleet.stdin is not None
        fleet.stdin.close()
        fleet.wait(timeout=30)

    print("command:", shlex.join([sys.executable, *sys.argv]))
    mixed = ", ".join(f"{n} {b}" for b, n in counts.items())
    print(
        f"endpoints: {args.endpoints} on {args.nodes} nodes ({mixed}); "
        f"timeout {args.timeout_s:g} s; slow answers {args.slow_s:g} s per request; "
        f"cores: {os.cpu_count()}; load average at the end {os.getloadavg()[0]:.2f}; ulimit -n {soft}/{hard}"
    )
    print(
        f"the fleet runs in its own process at nice {fleet_nice} but shares the cores "
        "(and, for the flow, with the Prefect server);"
    )
    expected_down = counts["blackhole"] + counts["refused"]
    print(f"expected DOWN: {expected_down} (blackholed + refused); more means probes starved of CPU")
    print()
    print(f"| {'what':<34} | {'best s':>8} | {'median s':>8} | note |")
    print(f"|{'-' * 36}|{'-' * 10}|{'-' * 10}|------|")
    print(row("core sweep (homelab sweep)", [t for t, _ in core], states([r for _, r in core])))
    if flows:
        walls = [wall for wall, _ in flows]
        probes = [report.duration_ms / 1000 for _, report in flows]
        overheads = [wall - probe for wall, probe in zip(walls, probes, strict=True)]
        print(row("flow health-sweep, wall", walls, "first run includes warm-up; " + states([r for _, r in flows])))
        print(row("flow health-sweep, probe phase", probes, "the probe-cluster task (the core sweep)"))
        print(row("flow overhead (wall - probe phase)", overheads, "load, node tasks, history, events, artifact"))
    factor = args.endpoints / len(sample)
    print(row(f"naive loop, measured on {len(sample)}", [naive_s], "same mix, sequential"))
    print(row(f"naive loop, EXTRAPOLATED to {args.endpoints}", [naive_s * factor], f"x {factor:g}, not run"))


if __name__ == "__main__":
    main()
