"""Copy-in speed: a GGUF into a named volume, verified, against `cp` then `sha256sum` on the same disk.

    python benchmarks/copy_bench.py [--size-mib 1024] [--rounds 3] [--engine unix:///...] [--helper-image IMG]

Measured, rounds alternating so both see the same background load:
    baseline  `cp SRC DIR/copy && sha256sum DIR/copy`, DIR on the filesystem of the engine's volumes
    copy-in   `homelab.docker_ops.volumes.copy_into_volume`: a tar streamed through put_archive
              into a helper container, then `sha256sum` of the written file inside it and the
              comparison with the source's hash; what `homelab rollout` does per model file
    source    the source's own SHA-256 (a fact the plan takes once; not part of copy-in)
Speed is bytes over seconds; the ratio is copy-in speed over baseline speed (1.0: as fast).
Both start with the source in the page cache (it was just written and hashed).

Without `--engine` (or DOCKER_HOST), a private dockerd is started as the tests start theirs.
No network is used, so the helper image is built here (`--helper`):
    busybox   the tests' image: Debian bookworm's busybox 1.35, whose sha256 has no SHA-NI
              code and runs at about 2/3 the speed of coreutils' sha256sum
    upstream  busybox 1.37 (Debian trixie's static build, `scripts/fetch-busybox.sh`): the
              version of the default helper, busybox:stable, which cannot be pulled here;
              since 1.36 busybox hashes with SHA-NI where the CPU has it
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from homelab.docker_ops.connect import Engine, open_engine  # noqa: E402
from homelab.docker_ops.helper import HelperSettings  # noqa: E402
from homelab.docker_ops.sources import ModelSource, hash_local_file  # noqa: E402
from homelab.docker_ops.volumes import copy_into_volume, ensure_volume  # noqa: E402
from homelab.inventory import Node  # noqa: E402
from tests.fixtures.docker_engine import (  # noqa: E402
    BUSYBOX_IMAGE,
    _spawn_dockerd,
    busybox_rootfs,
    ensure_imported,
)

VOLUME = "homelab-copy-bench"
UPSTREAM_IMAGE = "homelab/busybox-1.37:bench"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--engine", default=os.environ.get("DOCKER_HOST"), help="engine URL; default: a private dockerd"
    )
    parser.add_argument("--helper", choices=["busybox", "upstream"], default="upstream")
    parser.add_argument("--json", action="store_true", help="print the numbers as JSON")
    return parser.parse_args(argv)


@contextmanager
def engine_url(given: str | None) -> Iterator[str]:
    """The engine to measure: the given one, or a private dockerd for the duration."""
    if given:
        yield given
        return
    daemon = _spawn_dockerd()
    try:
        daemon.wait_ready()
        yield daemon.base_url
    finally:
        daemon.stop()


def helper_image(engine: Engine, kind: str) -> str:
    """Import the helper image the run asks for; its tag."""
    if kind == "busybox":
        ensure_imported(engine.client, BUSYBOX_IMAGE, busybox_rootfs(), changes=['CMD ["sh"]'])
        return BUSYBOX_IMAGE
    fetched = subprocess.run([str(ROOT / "scripts/fetch-busybox.sh")], capture_output=True, text=True, check=True)
    ensure_imported(engine.client, UPSTREAM_IMAGE, busybox_rootfs(Path(fetched.stdout.strip())), changes=['CMD ["sh"]'])
    return UPSTREAM_IMAGE


def write_source(path: Path, size_mib: int) -> None:
    """Random bytes (incompressible, unlike zeros), written once."""
    with path.open("wb") as fh:
        for _ in range(size_mib):
            fh.write(os.urandom(1 << 20))


def timed(action: Callable[[], Any]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def baseline(source: Path, folder: Path) -> float:
    """`cp` then `sha256sum`, as a person would verify a copy by hand."""
    target = folder / "copy.bin"
    try:
        return timed(
            lambda: subprocess.run(
                f"cp {source} {target} && sha256sum {target}", shell=True, check=True, capture_output=True
            )
        )
    finally:
        target.unlink(missing_ok=True)


def copy_in(engine: Engine, source: Path, helper: HelperSettings, expected: Any) -> float:
    model = ModelSource(model_file="bench.gguf", local_path=source)
    return timed(lambda: copy_into_volume(engine, VOLUME, model, expected, helper))


def volume_folder(engine: Engine) -> Path:
    """A folder beside the volume's data (same filesystem), for the baseline's copy."""
    mountpoint = Path(engine.client.volumes.get(VOLUME).attrs["Mountpoint"])
    folder = mountpoint.parent.parent / "copy-bench-baseline"
    folder.mkdir(exist_ok=True)
    return folder


def measure(args: argparse.Namespace, url: str, work: Path) -> dict[str, Any]:
    node = Node(name="bench", tier="bench", host="127.0.0.1", docker={"url": url})
    with closing(open_engine(node)) as engine:
        helper = HelperSettings(image=helper_image(engine, args.helper))
        ensure_volume(engine, VOLUME)
        source = work / "source.bin"
        write_source(source, args.size_mib)
        hash_s = timed(lambda: hash_local_file(source, "bench.gguf"))
        expected = hash_local_file(source, "bench.gguf")
        folder = volume_folder(engine)
        same_disk = os.stat(folder).st_dev == os.stat(source).st_dev
        rounds: list[tuple[float, float]] = []
        try:
            for _ in range(args.rounds):
                rounds.append((baseline(source, folder), copy_in(engine, source, helper, expected)))
        finally:
            shutil.rmtree(folder, ignore_errors=True)
            engine.client.volumes.get(VOLUME).remove(force=True)
    size = args.size_mib << 20
    base, ours = statistics.median(r[0] for r in rounds), statistics.median(r[1] for r in rounds)
    return {
        "ratio_per_round": [round(b / c, 2) for b, c in rounds],
        "size_bytes": size,
        "rounds_s": [{"baseline": round(b, 2), "copy_in": round(c, 2)} for b, c in rounds],
        "baseline_mb_s": round(size / base / 1e6, 1),
        "copy_in_mb_s": round(size / ours / 1e6, 1),
        "ratio": round(base / ours, 2),
        "source_hash_s": round(hash_s, 2),
        "baseline_on_source_disk": same_disk,
        "helper_image": helper.image,
        "cpus": os.cpu_count(),
        "load_avg": os.getloadavg(),
    }


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="copy-bench-") as tmp, engine_url(args.engine) as url:
        result = measure(args, url, Path(tmp))
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(
        f"{result['size_bytes'] >> 20} MiB, {len(result['rounds_s'])} rounds (median), helper {result['helper_image']}"
    )
    print(f"  baseline (cp + sha256sum): {result['baseline_mb_s']:8.1f} MB/s")
    print(f"  copy-in (put_archive + verify): {result['copy_in_mb_s']:8.1f} MB/s   ratio {result['ratio']:.2f}")
    print(f"  source hash (plan fact, not in copy-in): {result['source_hash_s']:.2f} s")
    print(f"  rounds: {result['rounds_s']}  load {tuple(round(x, 1) for x in result['load_avg'])}")


if __name__ == "__main__":
    main()
