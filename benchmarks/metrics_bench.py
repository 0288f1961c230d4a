"""What one `homelab metrics` scrape costs, on a small and on a long generated history (issue #19).

A history of DAYS x ENDPOINTS x one sweep a minute, plus nvidia-smi rows for 6 GPUs and Ollama
rows every minute (`homelab.reports.synthetic`), ending now; then, through the exporter's own
collector and prometheus_client's text exposition:

- the first scrape, which also derives incidents from every sweep (a one-off: later scrapes
  only scan the sweeps since);
- the median and worst of REPEAT scrapes (read the history, build the families, render text).

A scrape should cost the same after a month as after a day: it reads one sweep, the VRAM
rows of the last `vram_max_age_s` (an index range) and incidents counted by the database.

Usage:
    .venv/bin/python benchmarks/metrics_bench.py --days 1
    .venv/bin/python benchmarks/metrics_bench.py --days 30 --url sqlite:////tmp/homelab-metrics-bench.db
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from prometheus_client import generate_latest

from homelab.history import open_history
from homelab.metrics import HistoryCollector
from homelab.reports.synthetic import SyntheticHistory, write_synthetic_history


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=float, default=30.0, help="days of history, one sweep a minute")
    parser.add_argument("--endpoints", type=int, default=20, help="endpoints per sweep")
    parser.add_argument("--repeat", type=int, default=20, help="scrapes timed after the first")
    parser.add_argument("--url", help="history URL (default: a fresh SQLite file in a temporary folder)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        url = args.url or f"sqlite:///{folder}/history.db"
        now = datetime.now(UTC).replace(second=0, microsecond=0)
        spec = SyntheticHistory(start=now - timedelta(days=args.days), days=args.days, endpoints=args.endpoints)
        started = time.perf_counter()
        with open_history(url) as history:
            probe_rows = write_synthetic_history(history, spec)
        generation_s = time.perf_counter() - started
        collector = HistoryCollector(lambda: open_history(url), vram_max_age_s=600.0)
        try:
            started = time.perf_counter()
            text = generate_latest(collector)
            first_s = time.perf_counter() - started
            times = []
            for _ in range(args.repeat):
                started = time.perf_counter()
                generate_latest(collector)
                times.append(time.perf_counter() - started)
        finally:
            collector.close()
    figures = {
        "days": args.days,
        "endpoints": args.endpoints,
        "probe_rows": probe_rows,
        "generation_s": round(generation_s, 1),
        "first_scrape_s": round(first_s, 3),
        "scrape_median_ms": round(statistics.median(times) * 1000, 1),
        "scrape_max_ms": round(max(times) * 1000, 1),
        "exposition_bytes": len(text),
        "history_up": collector.history_up,
    }
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
