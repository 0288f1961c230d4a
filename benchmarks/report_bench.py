"""Scale benchmark of the history and reports (issue #9).

A generated history of DAYS x ENDPOINTS x one probe a minute (default 30 x 200: 8.64 million
probe rows) plus nvidia-smi rows for 6 GPUs and Ollama rows for 3 models every minute, then:

- generation time (bulk executemany / COPY), reported on its own; cached: a second run reuses it;
- maintenance: deriving incidents and rolling up every complete hour (what `daily-report`
  does incrementally each day; here once over the whole month), reported on its own;
- the full report (`build_report` of the whole period, all tables + both charts rendered),
  in a fresh process so its peak RSS is its own: budget 5 s and 2 GiB;
- writing one 500-endpoint sweep into the big history: budget 50 ms (median of 20).

Usage:
    .venv/bin/python benchmarks/report_bench.py --url sqlite:////tmp/homelab-report-bench.db
    .venv/bin/python benchmarks/report_bench.py --url postgresql+psycopg://postgres@127.0.0.1:PORT/bench
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import sqlalchemy as sa

from homelab.history import open_history
from homelab.reports import Period, build_report, to_html
from homelab.reports.synthetic import SyntheticHistory, write_synthetic_history
from tests.test_history import big_report

# Fixed so the cached history stays valid between runs: the month before this date.
END = datetime(2026, 3, 31, tzinfo=UTC)
REPORT_BUDGET_S = 5.0
MEMORY_BUDGET_MIB = 2048
SWEEP_BUDGET_MS = 50.0


def _generate(url: str, days: float, endpoints: int) -> dict[str, float]:
    with open_history(url) as history:
        with history.engine.connect() as conn:
            have = conn.execute(sa.text("SELECT COUNT(*) FROM sweeps")).scalar() or 0
        if have:
            return {"generation_s": 0.0, "cached_sweeps": float(have)}
        spec = SyntheticHistory(start=END - timedelta(days=days), days=days, endpoints=endpoints, gpus=6)
        started = time.perf_counter()
        rows = write_synthetic_history(history, spec, batch_sweeps=1000)
        generated = time.perf_counter() - started
        started = time.perf_counter()
        history.track_incidents()
        history.roll_up(END)
        return {
            "generation_s": round(generated, 1),
            "probe_rows": rows,
            "maintenance_s": round(time.perf_counter() - started, 1),
        }


def _report_phase(url: str, days: float) -> None:
    """Run in a child process: the full report, timed, with this process's peak RSS."""
    with open_history(url) as history:
        cpu = resource.getrusage(resource.RUSAGE_SELF)
        started = time.perf_counter()
        report = build_report(history, Period(start=END - timedelta(days=days), end=END))
        built = time.perf_counter() - started
        page = to_html(report)  # renders both charts (matplotlib, Agg) and every table
        total = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu_s = after.ru_utime + after.ru_stime - cpu.ru_utime - cpu.ru_stime
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "report_tables_s": round(built, 2),
                "report_total_s": round(total, 2),
                "report_cpu_s": round(cpu_s, 2),
                "report_peak_rss_mib": round(peak_mib),
                "endpoints": len(report.tables["uptime_endpoint"]),
                "incidents": len(report.tables["incidents"]),
                "gpus": len(report.tables["gpus"]),
                "html_bytes": len(page),
            }
        )
    )


def _sweep_write(url: str) -> dict[str, float]:
    times = []
    with open_history(url) as history:
        for i in range(20):
            sweep = big_report(500, at=END + timedelta(minutes=i + 1))
            started = time.perf_counter()
            history.record_sweep(sweep)
            times.append((time.perf_counter() - started) * 1000)
        with history.engine.begin() as conn:  # leave the cached history as it was
            conn.execute(
                sa.text("DELETE FROM probe_results WHERE sweep_id IN (SELECT id FROM sweeps WHERE started_at > :end)"),
                {"end": END},
            )
            conn.execute(sa.text("DELETE FROM sweeps WHERE started_at > :end"), {"end": END})
    return {
        "sweep_500_write_median_ms": round(statistics.median(times), 1),
        "sweep_500_write_max_ms": round(max(times), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="sqlite:////tmp/homelab-report-bench.db")
    parser.add_argument("--days", type=float, default=30.0)
    parser.add_argument("--endpoints", type=int, default=200)
    parser.add_argument("--report-phase", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.report_phase:
        _report_phase(args.url, args.days)
        return
    results: dict[str, object] = {"url": args.url.split("@")[-1], "days": args.days, "endpoints": args.endpoints}
    results |= _generate(args.url, args.days, args.endpoints)
    child = subprocess.run(
        [sys.executable, __file__, "--url", args.url, "--days", str(args.days), "--report-phase"],
        capture_output=True,
        text=True,
        check=True,
    )
    results |= json.loads(child.stdout.strip().splitlines()[-1])
    results |= _sweep_write(args.url)
    results["within_budget"] = (
        float(results["report_total_s"]) <= REPORT_BUDGET_S  # type: ignore[arg-type]
        and float(results["report_peak_rss_mib"]) <= MEMORY_BUDGET_MIB  # type: ignore[arg-type]
        and float(results["sweep_500_write_median_ms"]) <= SWEEP_BUDGET_MS  # type: ignore[arg-type]
    )
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
