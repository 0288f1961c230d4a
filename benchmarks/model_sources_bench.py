"""What a model source costs (issue #19): a plan's header read, a hub download, a cached rerun, an https download.

Against the hub stand-in on loopback (tests/fixtures/hf_hub.py: the hub on 127.0.0.1, its CDN on
127.0.0.2), for a random-weight GGUF of about SIZE_MB:

- plan: bytes and requests a ranged GGUF header read takes, and how long (`source_shape`);
- hub download: `Fetcher.fetch` of an hf:// source into an empty cache (huggingface_hub's
  download, then homelab's SHA-256 check), in MB/s;
- cached: the same fetch again (a HEAD; no GET, and no read: the file was checked unchanged);
- https download: an https-kind source served by the stand-in's CDN (http to loopback), MB/s.

Loopback speeds are the machine's, not a network's: they show what homelab adds on top of the bytes.

Usage:
    .venv/bin/python benchmarks/model_sources_bench.py --size-mb 256
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from homelab.sources.fetch import Fetcher, open_fetch_client
from homelab.sources.remote_header import source_shape
from homelab.sources.spec import SourceSpec
from homelab.tiny_gguf import write_tiny_llama
from tests.fixtures.hf_hub import running_hub


def _model(folder: Path, size_mb: int) -> Path:
    # token_embd and output are n_vocab x n_embd F32 each: pick n_vocab for the size asked.
    n_vocab = max(512, size_mb * 2**20 // (2 * 4 * 1024))
    return write_tiny_llama(folder / "bench.gguf", n_embd=1024, n_head=8, n_head_kv=4, n_ff=1024, n_vocab=n_vocab)


def _timed(call: Callable[[], object]) -> tuple[object, float]:
    start = time.perf_counter()
    result = call()
    return result, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mb", type=int, default=256, help="the model's size in MB (default 256)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, running_hub() as hub:
        folder = Path(tmp)
        model = _model(folder, args.size_mb)
        data = model.read_bytes()
        mb = len(data) / 1e6
        hub.add("bench/model", {"bench.gguf": data})
        fetcher = Fetcher(client=open_fetch_client(), cache_dir=folder / "cache", hub_endpoint=hub.endpoint,
                          hub_cache_dir=folder / "hf")  # fmt: skip
        spec = SourceSpec(url="hf://bench/model/bench.gguf")
        _, plan_s = _timed(lambda: source_shape(fetcher, spec, "bench.gguf"))
        header_bytes, header_gets = sum(hub.sent.values()), len(hub.requests("GET"))
        _, hub_s = _timed(lambda: fetcher.fetch(spec, "bench.gguf"))
        _, cached_s = _timed(lambda: fetcher.fetch(spec, "bench.gguf"))
        sha = hashlib.sha256(data).hexdigest()
        https = SourceSpec(url=f"{hub.cdn}/cdn/{sha}", sha256=sha)
        _, https_s = _timed(lambda: fetcher.fetch(https, "bench.gguf"))
        fetcher.client.close()
    figures = {
        "model_mb": round(mb, 1),
        "plan_header_bytes": header_bytes,
        "plan_header_gets": header_gets,
        "plan_ms": round(plan_s * 1000, 1),
        "hub_download_mb_s": round(mb / hub_s, 1),
        "cached_fetch_s": round(cached_s, 3),
        "https_download_mb_s": round(mb / https_s, 1),
    }
    if args.json:
        print(json.dumps(figures, indent=2))
        return
    print(f"model: {figures['model_mb']} MB GGUF (random weights)")
    print(f"plan (ranged header read): {header_bytes:,} bytes in {header_gets} GETs, {figures['plan_ms']} ms")
    print(f"hub download + SHA-256 check: {figures['hub_download_mb_s']} MB/s")
    print(f"cached rerun (a HEAD; no GET, no read): {figures['cached_fetch_s']} s")
    print(f"https download + SHA-256 check: {figures['https_download_mb_s']} MB/s")


if __name__ == "__main__":
    main()
