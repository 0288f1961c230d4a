"""How close homelab's VRAM estimate comes to llama.cpp's own buffer figures.

Reads the captures in benchmarks/data/vram-*/ (llama-server logs of generated models started
with many settings, on CUDA builds on an H200 and an H100 and on the CPU-only build), estimates every run
with `homelab.vram` and compares six components with the log: weights on the GPU and on the CPU,
KV cache on each side, compute buffer on the GPU and in host memory. The bound is 3 % or 16 MiB,
whichever is larger.

Then the captures on two llama.cpp RPC devices (benchmarks/data/vram-rpc*/, written by
benchmarks/vram_rpc_capture.py): the same six components and, per device, weights, KV and compute,
grouped by what the run varied (-ts, -sm none, -ngl, --n-cpu-moe, -ot), and the starts that
failed with their reason.

The model shapes come from the GGUF files themselves when --models-dir is given (missing files
are written there from the capture's specs with homelab.tiny_gguf; same seed, same bytes, about
300 MB each), else from the stored shapes in tests/cases/vram/models/ that --export-shapes writes.

Then the per-GPU overhead no log shows (benchmarks/data/gpu-overhead-*): per GPU, run and stage,
nvidia-smi's used memory of the process less the logged GPU buffers and the modelled CUDA pool,
the estimate's whole GPU total beside what nvidia-smi showed after a full context, and the
default derived from them.

    python benchmarks/vram_accuracy.py [--models-dir /tmp/vram-models] [--export-shapes] [--worst N] [--rpc-only]
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from vram_capture import write_model

from homelab.vram.accuracy import (
    CapturedRun,
    ComponentCheck,
    Summary,
    check_devices,
    check_run,
    estimator_backend,
    load_capture,
    summarize,
)
from homelab.vram.metadata import read_gguf
from homelab.vram.overhead import (
    bare_context_bytes,
    derived_overhead_bytes,
    full_context_totals,
    load_overhead_capture,
)
from homelab.vram.shape import ModelShape
from homelab.vram.sizes import MIB

ROOT = Path(__file__).resolve().parent.parent
DATA = sorted(f for f in (ROOT / "benchmarks" / "data").glob("vram-*") if not f.name.startswith("vram-rpc"))
RPC_DATA = sorted((ROOT / "benchmarks" / "data").glob("vram-rpc*"))
SHAPES = ROOT / "tests" / "cases" / "vram" / "models"
OVERHEAD = sorted((ROOT / "benchmarks" / "data").glob("gpu-overhead-*"))


def model_shape(spec: dict, models_dir: Path | None) -> ModelShape:
    """The shape of a capture's model: from its GGUF (written if missing) or the stored JSON."""
    if models_dir is None:
        return ModelShape.model_validate_json((SHAPES / f"{spec['id']}.json").read_text())
    path = models_dir / f"{spec['id']}.gguf"
    if not path.exists():
        print(f"writing {path} ...", file=sys.stderr, flush=True)
        write_model(spec, path)
    return read_gguf(path).model_copy(update={"name": spec["id"]})


def run_all(models_dir: Path | None, export: bool) -> tuple[list[ComponentCheck], dict[str, str]]:
    """Every captured run checked; and each model's architecture."""
    checks: list[ComponentCheck] = []
    shapes: dict[str, ModelShape] = {}
    for folder in DATA:
        specs, runs = load_capture(folder)
        for spec in specs:
            if spec["id"] not in shapes:
                shapes[spec["id"]] = model_shape(spec, models_dir)
                if export:
                    SHAPES.mkdir(parents=True, exist_ok=True)
                    (SHAPES / f"{spec['id']}.json").write_text(shapes[spec["id"]].model_dump_json(indent=1) + "\n")
        for run in runs:
            checks += check_run(shapes[run.model], run)[1]
    return checks, {model: shape.arch for model, shape in shapes.items()}


def gpu_totals(checks: list[ComponentCheck]) -> list[ComponentCheck]:
    """Per run: weights + KV + compute on the GPU, what a plan compares with free VRAM."""
    runs: dict[str, list[ComponentCheck]] = {}
    for c in checks:
        if c.component.endswith("gpu_bytes"):
            runs.setdefault(f"{c.backend}/{c.run}", []).append(c)
    return [
        ComponentCheck(
            run=parts[0].run,
            model=parts[0].model,
            backend=parts[0].backend,
            component="gpu_total_bytes",
            logged_bytes=sum(p.logged_bytes for p in parts),
            estimated_bytes=sum(p.estimated_bytes for p in parts),
        )
        for parts in runs.values()
        if parts[0].backend == "cuda"
    ]


def _mib(n: float) -> str:
    return f"{n / MIB:.1f}"


def _summary_row(label: str, s: Summary) -> str:
    return (
        f"| {label} | {s.checks} | {s.within} ({100 * s.share_within:.1f} %) | "
        f"{_mib(s.max_abs_error_bytes)} | {100 * s.max_relative_error:.1f} % |"
    )


def report(checks: list[ComponentCheck], worst: int, archs: dict[str, str]) -> str:
    """Markdown: summary per build and architecture, per build and model, per component, then the worst cases."""
    lines = ["| checks | n | within bound | max abs error (MiB) | max rel. error (≥ 64 MiB) |", "|---|---|---|---|---|"]
    lines.append(_summary_row("all", summarize(checks)))
    for backend in sorted({c.backend for c in checks}):
        for arch in sorted(set(archs.values())):
            subset = [c for c in checks if c.backend == backend and archs[c.model] == arch]
            if subset:
                lines.append(_summary_row(f"{backend} {arch} (all models)", summarize(subset)))
    for backend in sorted({c.backend for c in checks}):
        for model in sorted({c.model for c in checks}):
            subset = [c for c in checks if c.backend == backend and c.model == model]
            if subset:
                lines.append(_summary_row(f"{backend} {model}", summarize(subset)))
    for component in dict.fromkeys(c.component for c in checks):
        lines.append(_summary_row(component, summarize([c for c in checks if c.component == component])))
    lines.append(_summary_row("GPU total (derived)", summarize(gpu_totals(checks))))
    lines += ["", "| run | build | component | logged MiB | estimated MiB | error MiB | bound MiB | ok |"]
    lines.append("|---|---|---|---|---|---|---|---|")
    ranked = sorted(checks, key=lambda c: abs(c.error_bytes) / c.bound_bytes, reverse=True)[:worst]
    for c in ranked:
        lines.append(
            f"| {c.run} | {c.backend} | {c.component} | {_mib(c.logged_bytes)} | {_mib(c.estimated_bytes)} | "
            f"{c.error_bytes / MIB:+.1f} | {_mib(c.bound_bytes)} | {'yes' if c.ok else '**no**'} |"
        )
    return "\n".join(lines)


def overhead_report() -> str:
    """Markdown: per GPU, the overhead per run and stage, the bare context, the estimate against
    nvidia-smi after a full context; then the default derived from all of them."""

    def shape_of(model: str) -> ModelShape:
        return ModelShape.model_validate_json((SHAPES / f"{model}.json").read_text())

    lines: list[str] = []
    everything = []
    for folder in OVERHEAD:
        samples = load_overhead_capture(folder, shape_of)
        everything += samples
        totals = {run: (used, estimated) for run, used, estimated in full_context_totals(folder, shape_of)}
        bare = bare_context_bytes(folder)
        lines += [
            f"{folder.name}: bare CUDA context {_mib(bare['context'])} MiB, with cuBLAS after one GEMM "
            f"{_mib(bare['cublas_gemm'])} MiB",
            "",
            "| run | stage | process used MiB | logged GPU buffers MiB | CUDA pool MiB | overhead MiB "
            "| estimated total MiB |",
            "|---|---|---|---|---|---|---|",
        ]
        for x in samples:
            estimated = _mib(totals[x.run][1]) if x.stage == "full" and x.run in totals else ""
            lines.append(
                f"| {x.run} | {x.stage} | {_mib(x.used_bytes)} | {_mib(x.logged_gpu_bytes)} | {_mib(x.pool_bytes)} "
                f"| {_mib(x.overhead_bytes)} | {estimated} |"
            )
        lines.append("")
    lines.append(f"derived default overhead: {_mib(derived_overhead_bytes(everything))} MiB")
    return "\n".join(lines)


def scenario(run: CapturedRun, layers: int) -> str:
    """What a multi-device run varied, in llama-server's flags (the context and flash attention aside)."""
    flags = [f"-ngl {'all' if run.ngl >= layers else 'partial'}"]
    if run.devices > 1:
        flags.append(f"-ts {run.tensor_split}" if run.tensor_split else "2 devices")
    if run.split_mode != "layer":
        flags.append(f"-sm {run.split_mode} -mg {run.main_gpu}")
    if run.n_cpu_moe:
        flags.append(f"--n-cpu-moe {'all' if run.n_cpu_moe >= layers - 1 else run.n_cpu_moe}")
    if run.override_tensor:
        flags.append(f"-ot {run.override_tensor}")
    return " ".join(flags) if run.devices > 1 else "one device " + " ".join(flags)


@dataclass
class RpcResults:
    """The RPC captures checked: every component, each run's scenario, the starts that failed,
    and the builds the estimates modelled (CUDA while the estimator has no RPC build)."""

    checks: list[ComponentCheck] = field(default_factory=list)
    scenarios: dict[str, str] = field(default_factory=dict)
    folders: dict[str, str] = field(default_factory=dict)  # run -> its capture folder
    failed: list[str] = field(default_factory=list)
    estimated_as: set[str] = field(default_factory=set)

    @property
    def summary_line(self) -> str:
        s = summarize(self.checks)
        return (
            f"RPC: {s.within}/{s.checks} components within 3 % or 16 MiB (summed and per device; "
            f"estimated as {', '.join(sorted(self.estimated_as))})"
        )


def rpc_checks(models_dir: Path | None) -> RpcResults:
    """Every RPC run checked, summed and per device."""
    out = RpcResults()
    for folder in RPC_DATA:
        specs, runs = load_capture(folder)
        shapes = {spec["id"]: model_shape(spec, models_dir) for spec in specs}
        for run in runs:
            shape = shapes[run.model]
            result, summed = check_run(shape, run)
            out.checks += summed + check_devices(shape, run, result)
            out.scenarios[run.id] = scenario(run, shape.n_layer + 1)
            out.folders[run.id] = folder.name
            out.estimated_as.add(estimator_backend(run.logged))
        for entry in json.loads((folder / "runs.json").read_text())["runs"]:
            if not entry["loaded"]:
                reason = next((line for line in entry.get("error", []) if " E " in line), "no /health in time")
                out.failed.append(f"{entry['id']}: {reason.split(' E ', 1)[-1].strip()}")
    return out


def scenario_group(label: str) -> str:
    """The README's coarser rows: what a scenario varied most."""
    if label.startswith("one device"):
        return "one device: all layers; --n-cpu-moe all"
    for flag, group in (
        ("-ot blk", "-ts 1,0 -ot 'blk\\.1\\.=RPC1'"),
        ("-sm none", "-sm none -mg 1"),
        ("-ngl partial", "-ngl half the layers"),
        ("--n-cpu-moe", "--n-cpu-moe 2 / all, -ot exps=CPU"),
        ("-ot exps", "--n-cpu-moe 2 / all, -ot exps=CPU"),
    ):
        if flag in label:
            return group
    return "-ts 1,1 / 3,1, all layers"


def _scenario_row(label: str, checks: list[ComponentCheck]) -> str:
    placed = [c for c in checks if "compute" not in c.component]
    compute = summarize([c for c in checks if "compute" in c.component])
    runs = len({c.run for c in checks})
    return (
        f"| {label} | {runs} | {sum(c.ok for c in placed)} of {len(placed)} | {compute.within} of {compute.checks} "
        f"| {_mib(compute.max_abs_error_bytes)} |"
    )


def rpc_report(results: RpcResults, worst: int) -> str:
    """Markdown: per scenario (placement apart from compute), per component (summed and per device),
    the worst cases, the failed starts."""
    checks, scenarios = results.checks, results.scenarios
    header = [
        "| RPC runs (two devices unless said) | runs | weights and KV within bound | compute within bound "
        "| largest compute error (MiB) |",
        "|---|---|---|---|---|",
        _scenario_row("all", checks),
    ]
    groups = {run: scenario_group(label) for run, label in scenarios.items()}
    lines = list(header)
    for folder in sorted(set(results.folders.values())):
        lines.append(_scenario_row(f"{folder}/", [c for c in checks if results.folders[c.run] == folder]))
    for group in dict.fromkeys(sorted(groups.values())):
        lines.append(_scenario_row(group, [c for c in checks if groups[c.run] == group]))
    lines += ["", *header]
    for label in sorted(set(scenarios.values())):
        lines.append(_scenario_row(label, [c for c in checks if scenarios[c.run] == label]))
    lines += ["", "| component | n | within bound | max abs error (MiB) | max rel. error (≥ 64 MiB) |"]
    lines.append("|---|---|---|---|---|")
    for component in dict.fromkeys(c.component for c in checks):
        lines.append(_summary_row(component, summarize([c for c in checks if c.component == component])))
    lines += ["", "| run | component | logged MiB | estimated MiB | error MiB | bound MiB | ok |"]
    lines.append("|---|---|---|---|---|---|---|")
    for c in sorted(checks, key=lambda c: abs(c.error_bytes) / c.bound_bytes, reverse=True)[:worst]:
        lines.append(
            f"| {c.run} | {c.component} | {_mib(c.logged_bytes)} | {_mib(c.estimated_bytes)} | "
            f"{c.error_bytes / MIB:+.1f} | {_mib(c.bound_bytes)} | {'yes' if c.ok else '**no**'} |"
        )
    if results.failed:
        lines += ["", "Left out, llama-server did not start:", *(f"- {line}" for line in results.failed)]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models-dir", type=Path, help="read (or write) the GGUF models here")
    parser.add_argument("--export-shapes", action="store_true", help=f"store the shapes in {SHAPES.relative_to(ROOT)}")
    parser.add_argument("--worst", type=int, default=12, help="how many of the worst cases to list")
    parser.add_argument("--rpc-only", action="store_true", help="only the captures on RPC devices")
    args = parser.parse_args()
    if args.models_dir:
        args.models_dir.mkdir(parents=True, exist_ok=True)
    misses = 0
    if not args.rpc_only:
        checks, archs = run_all(args.models_dir, args.export_shapes)
        print(report(checks, args.worst, archs))
        misses = sum(not c.ok for c in checks)
        print(f"\n{len(checks) - misses} of {len(checks)} components within 3 % or 16 MiB\n")
        print(overhead_report())
    rpc = rpc_checks(args.models_dir)
    print("\n" + rpc_report(rpc, args.worst))
    print("\n" + rpc.summary_line)
    return 1 if misses or not all(c.ok for c in rpc.checks) else 0


if __name__ == "__main__":
    raise SystemExit(main())
