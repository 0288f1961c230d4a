"""`homelab plan fit`: the source document's 24 GB lineup plus a Qwen3-30B-A3B with its experts on the CPU.

The lineup is examples/three-tier.yaml's (two 24 GiB GPUs: Ollama models on one, llama.cpp
containers on the other) with a fourth container serving Qwen3-30B-A3B from a GGUF written by
`homelab.tiny_moe` at the released model's metadata (48 layers, 128 experts of 768, 8 used,
width 2048, 151,936 tokens, Q4_0: 16 GiB of tensors) as a sparse file: the planner reads its
header, no disk holds its weights. The others are sized from their names.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path
from typing import Any

import pytest
from gguf import GGMLQuantizationType

from homelab.errors import FileAccessError
from homelab.inventory import load_inventory
from homelab.inventory.settings import FitSettings
from homelab.tiny_gguf import write_tiny_llama
from homelab.tiny_moe import write_tiny_moe
from homelab.vram.fit import FitEntry, LineupFit, fit_entries
from homelab.vram.fit_file import fit_inventory, fitted_text, write_fitted
from homelab.vram.guess import guess_shape
from homelab.vram.metadata import read_gguf
from homelab.vram.node_plan import plan_node_vram
from homelab.vram.planner import GpuSlot, LineupEntry
from homelab.vram.sizes import DEFAULT_GPU_OVERHEAD_BYTES, GIB
from tests.fixtures.hf_hub import HubStandIn
from tests.model_sources_util import run_homelab
from tests.test_vram_cli import homelab  # the plan commands run as a user runs them

ROOT = Path(__file__).resolve().parents[1]
MOE_FILE = "qwen3-30b-a3b-q4_0.gguf"
MOE = f"""      - name: moe
        kind: llamacpp
        url: http://mark-ii.home.arpa:3012
        models: [{{name: qwen3-30b-a3b, alias: moe}}]
        container:
          image: ghcr.io/ggml-org/llama.cpp:server-cuda
          model_file: {MOE_FILE}
          ctx_size: 32768
          start_order: 4
"""


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("models")
    write_tiny_moe(
        folder / MOE_FILE, arch="qwen3moe", n_layer=48, n_embd=2048, n_head=32, n_head_kv=4, head_dim=128,
        n_expert=128, n_expert_used=8, n_ff_exp=768, n_ff=6144, n_vocab=151936, context_length=40960,
        dtype=GGMLQuantizationType.Q4_0, sparse=True, name="Qwen3-30B-A3B",
    )  # fmt: skip
    return folder


def cluster(tmp_path: Path, fit_section: str = "") -> Path:
    text = (ROOT / "examples" / "three-tier.yaml").read_text()
    anchor = "          start_order: 3\n"
    assert text.count(anchor) == 1
    path = tmp_path / "cluster.yaml"
    path.write_text(text.replace(anchor, anchor + MOE) + fit_section)
    return path


def assert_never_over_committed(fit: LineupFit) -> None:
    for gpu in fit.gpus:
        assert gpu.free_bytes >= 0, gpu.slot.label
        placed = sum(m.gpu_bytes for m in fit.models if m.gpu == gpu.slot.label)
        assert placed == gpu.used_bytes <= gpu.slot.vram_bytes - gpu.slot.reserve_bytes


def assert_never_over_committed_per_gpu(fit: LineupFit) -> None:
    for gpu in fit.gpus:
        shares = [m.gpu_shares[m.gpu_indexes.index(gpu.slot.index)] for m in fit.models if m.model in gpu.models]
        assert sum(shares) == gpu.used_bytes <= gpu.slot.vram_bytes - gpu.slot.reserve_bytes, gpu.slot.label


def test_the_24_gb_lineup_fits_with_the_experts_on_the_cpu(models_dir: Path, tmp_path: Path) -> None:
    fit = fit_inventory(load_inventory(cluster(tmp_path)), models_dir=models_dir)
    models = {m.model: m for m in fit.models}

    assert_never_over_committed(fit)
    assert sorted(models) == ["chat", "coder", "general", "moe", "quick", "reason"]
    assert all(m.gpu is not None for m in fit.models), [m.reasons for m in fit.models]
    assert fit.on_demand == ["vision", "embed"]
    moe = models["moe"]
    # Attention and the KV cache stay on the GPU: every layer there, some layers' experts on the CPU.
    assert (moe.n_gpu_layers, moe.n_layers_total, moe.n_moe_layers) == (49, 49, 48)
    assert 0 < moe.n_cpu_moe < 48
    assert moe.gpu == "mark-ii GPU0 (RTX 3090)" and moe.ctx_size == 32768
    assert moe.reasons[0].startswith(f"moe: 49/49 layers, {moe.n_cpu_moe} of 48 layers' experts on CPU, ctx 32768")
    # One experts' layer more on the GPU is what did not fit, and the line says so.
    assert any(
        re.fullmatch(rf"moe: {moe.n_cpu_moe - 1} layers' experts on CPU instead of {moe.n_cpu_moe} needs .* more "
                     r"than mark-ii GPU0 \(RTX 3090\) has left beside coder, general, quick", line)
        for line in moe.reasons
    ), moe.reasons  # fmt: skip


def test_quantized_v_only_with_flash_attention(models_dir: Path, tmp_path: Path) -> None:
    fit = fit_inventory(load_inventory(cluster(tmp_path)), models_dir=models_dir)
    assert {m.cache_type for m in fit.models} >= {"q8_0"}  # the lineup needs some
    assert all(m.flash_attn for m in fit.models if m.cache_type not in ("f16", "f32", "bf16"))

    no_flash = "fit: {flash_attn: false, kv_types: [f16]}\n"
    fit = fit_inventory(load_inventory(cluster(tmp_path, no_flash)), models_dir=models_dir)
    assert {(m.cache_type, m.flash_attn) for m in fit.models} == {("f16", False)}
    assert_never_over_committed(fit)


def test_equal_priorities_share_and_a_higher_one_climbs_first() -> None:
    slot = GpuSlot(node="box", name="RTX 4090", index=0, vram_bytes=24 * GIB, reserve_bytes=GIB // 2)
    shape = guess_shape("qwen2.5-7b")

    def contexts(priority_b: int) -> tuple[int, int]:
        entries = [
            FitEntry(entry=LineupEntry(name=name, shape=shape, ctx_size=131072, node="box", priority=priority),
                     ollama=False, ctx_asked=131072)
            for name, priority in (("a", 0), ("b", priority_b))
        ]  # fmt: skip
        fit = fit_entries(entries, [slot], FitSettings.model_validate({"kv_types": ["f16"]}))
        assert_never_over_committed(fit)
        a, b = fit.models
        return a.ctx_size, b.ctx_size

    # Equal priorities climb one rung each in turn (lineup order first): at most a rung apart.
    shared_a, shared_b = contexts(0)
    assert shared_a >= shared_b >= shared_a // 2 and shared_b < 131072
    # A higher priority climbs all the way first.
    first_a, first_b = contexts(5)
    assert first_b == 131072 > first_a and first_a < shared_a


def _one_model(prefer: list[str], kv_types: list[str]) -> tuple[int, int, str]:
    """qwen2.5-14b asking for 32k context on a 12 GiB GPU: (context, GPU layers, KV type) chosen."""
    slot = GpuSlot(node="box", name="RTX 4070 Ti", index=0, vram_bytes=12 * GIB, reserve_bytes=GIB // 2)
    entry = LineupEntry(name="general", shape=guess_shape("qwen2.5-14b"), ctx_size=32768, node="box")
    settings = FitSettings.model_validate({"prefer": prefer, "kv_types": kv_types})
    [m] = fit_entries([FitEntry(entry=entry, ollama=False, ctx_asked=32768)], [slot], settings).models
    return m.ctx_size, m.n_gpu_layers, m.cache_type


def test_the_preference_order_decides() -> None:
    full_first = _one_model(["full_gpu", "context"], ["f16"])
    context_first = _one_model(["context", "full_gpu"], ["f16"])
    kv_first = _one_model(["kv_precision", "full_gpu", "context"], ["f16", "q8_0", "q4_0"])
    context_over_kv = _one_model(["full_gpu", "context", "kv_precision"], ["f16", "q8_0", "q4_0"])

    assert full_first[1] == 49 and full_first[0] < 32768  # all layers, a smaller context
    assert context_first[0] == 32768 and context_first[1] < 49  # the whole context, layers on the CPU
    assert kv_first[1:] == (49, "f16") and kv_first[0] < 32768
    assert context_over_kv[:2] == (32768, 49) and context_over_kv[2] != "f16"


def test_a_model_no_gpu_holds_is_left_to_the_cpu_with_why() -> None:
    slot = GpuSlot(node="box", name="RTX 3060", index=0, vram_bytes=12 * GIB, reserve_bytes=GIB // 2)
    entries = [
        FitEntry(entry=LineupEntry(name=name, shape=guess_shape(name), ctx_size=8192, node="box"),
                 ollama=False, ctx_asked=8192)
        for name in ("qwen2.5-72b", "qwen2.5-7b")
    ]  # fmt: skip
    big, small = fit_entries(entries, [slot], FitSettings()).models

    assert (big.gpu, big.n_gpu_layers, big.gpu_bytes) == (None, 0, 0) and big.cpu_bytes > 40 * GIB
    assert re.fullmatch(
        r"qwen2\.5-72b: left to the CPU: even at ctx 4096 with 41 GPU layers it needs .* more than "
        r"box GPU0 \(RTX 3060\) has left", big.reasons[0]
    ), big.reasons  # fmt: skip
    assert small.gpu == "box GPU0 (RTX 3060)" and small.n_gpu_layers == small.n_layers_total


def test_random_lineups_never_over_commit() -> None:
    rng = random.Random(21)
    names = ["qwen2.5:0.5b", "qwen2.5-7b", "qwen2.5-14b", "qwen2.5-32b", "llama3.1:8b q8_0", "gemma2:9b"]
    shapes = {n: guess_shape(n) for n in names}
    for _ in range(8):
        slots = [GpuSlot(node="a", name="GPU", index=i, vram_bytes=rng.choice([8, 12, 24]) * GIB,
                         reserve_bytes=GIB // 2) for i in range(rng.randint(1, 2))]  # fmt: skip
        entries = []
        for i in range(rng.randint(1, 4)):
            ctx = rng.choice([4096, 16384, 32768])
            entry = LineupEntry(name=f"m{i}", shape=shapes[rng.choice(names)], ctx_size=ctx, node="a",
                                priority=rng.randint(0, 1), spans_gpus=rng.random() < 0.5)  # fmt: skip
            entries.append(FitEntry(entry=entry, ollama=rng.random() < 0.3, ctx_asked=ctx))
        prefer = rng.sample(["full_gpu", "context", "fewer_cpu_experts", "kv_precision"], 4)
        fit = fit_entries(entries, slots, FitSettings.model_validate({"prefer": prefer}))
        assert_never_over_committed_per_gpu(fit)
        assert sorted(m.model for m in fit.models) == sorted(e.entry.name for e in entries)
        assert all(m.cache_type == "f16" for m in fit.models if m.ollama)


def test_write_keeps_comments_and_a_second_write_changes_nothing(models_dir: Path, tmp_path: Path) -> None:
    path = cluster(tmp_path)
    before = path.read_text()

    first = homelab("plan", "fit", "-i", path, "--models-dir", models_dir, "--write")

    assert first.returncode == 0, first.stderr
    after = path.read_text()
    comments = [line.strip() for line in before.splitlines() if line.strip().startswith("#")]
    assert [line.strip() for line in after.splitlines() if line.strip().startswith("#")] == comments
    assert f"wrote {path}" in first.stdout and f"+++ {path} (fitted)" in first.stdout
    assert re.search(r"^\+\s+args: \[--n-cpu-moe, '\d+', -fa, 'on'", first.stdout, re.MULTILINE)
    assert "why:" in first.stdout and "mark-ii GPU0 (RTX 3090):" in first.stdout
    load_inventory(path)  # the written file validates

    second = homelab("plan", "fit", "-i", path, "--models-dir", models_dir, "--write")
    assert second.returncode == 0, second.stderr
    assert path.read_text() == after
    assert f"{path} already holds these choices" in second.stdout


def test_a_lowered_context_keeps_its_ask_and_gets_it_back(tmp_path: Path) -> None:
    path = cluster(tmp_path)
    # A dense 32B known by name only (no GGUF here) on the MoE's endpoint: its context is cut. (The
    # Qwen3-30B-A3B's name alone now gives its experts, which fit at the full context.)
    path.write_text(path.read_text().replace(MOE_FILE, "qwen3-32b-q4_0.gguf"))
    fit = fit_inventory(load_inventory(path))
    moe = next(m for m in fit.models if m.model == "moe")
    assert moe.ctx_size < 32768, moe.reasons
    text = fitted_text(path.read_text(), str(path), fit)
    assert re.search(r"^fit:\n  max_ctx:\n(    \S+: \d+\n)*    moe: 32768\n", text, re.MULTILINE), text[-300:]
    assert f"          ctx_size: {moe.ctx_size}\n" in text
    path.write_text(text)
    assert fitted_text(text, str(path), fit_inventory(load_inventory(path))) == text  # idempotent, ask recorded

    # A bigger GPU: the ask comes back from max_ctx, and the record goes.
    path.write_text(text.replace("{name: RTX 3090, vram_gib: 24}", "{name: RTX 6000 Ada, vram_gib: 48}"))
    bigger = fit_inventory(load_inventory(path))
    assert next(m for m in bigger.models if m.model == "moe").ctx_size == 32768
    assert "moe: 32768" not in fitted_text(path.read_text(), str(path), bigger)


def test_the_rollout_plans_with_the_written_choices(models_dir: Path, tmp_path: Path) -> None:
    path = cluster(tmp_path)
    fit = fit_inventory(load_inventory(path), models_dir=models_dir)
    path.write_text(fitted_text(path.read_text(), str(path), fit))
    inventory = load_inventory(path)
    fitted = {m.model: m for m in fit.models}

    moe = next(e for _, e in inventory.endpoints() if e.name == "moe").container
    assert moe is not None and moe.args[:2] == ["--n-cpu-moe", str(fitted["moe"].n_cpu_moe)]
    for node in inventory.nodes[:2]:
        # A rollout plans each node with plan_node_vram: the written layers, and bytes that say it
        # read the written --n-cpu-moe and KV types too (the per-process overhead is not counted there).
        plan = plan_node_vram(inventory, node, models_dir=models_dir)
        assert {name: (share.gpu_layers, share.gpu_bytes + DEFAULT_GPU_OVERHEAD_BYTES) for name, share in
                plan.models.items()} == {m.model: (m.n_gpu_layers, m.gpu_bytes) for m in fit.models
                                         if m.node == node.name}  # fmt: skip


TWO_GPUS = """# Two 24 GiB GPUs: a model that needs both, two that fit one each.
nodes:
  - name: duo
    tier: gpu
    host: duo.home.arpa
    gpus: [{name: RTX 3090, vram_gib: 24}, {name: RTX 3090, vram_gib: 24}]
    endpoints:
      - name: big
        kind: llamacpp
        url: http://duo.home.arpa:3001
        container: {image: llama, model_file: qwen2.5-32b-instruct-q8_0.gguf, ctx_size: 16384}
      - name: coder
        kind: llamacpp
        url: http://duo.home.arpa:3002
        container: {image: llama, model_file: qwen2.5-coder-7b-instruct-q4_k_m.gguf, ctx_size: 32768}
      - name: small
        kind: llamacpp
        url: http://duo.home.arpa:3003
        container: {image: llama, model_file: llama-3.2-3b-instruct-q8_0.gguf, ctx_size: 8192}
"""


def test_a_model_split_over_two_gpus_overcommits_neither(tmp_path: Path) -> None:
    path = tmp_path / "duo.yaml"
    path.write_text(TWO_GPUS)
    fit = fit_inventory(load_inventory(path))
    models = {m.model: m for m in fit.models}

    assert_never_over_committed_per_gpu(fit)
    big = models["big"]
    assert (big.gpu_indexes, big.pin_gpu, big.n_gpu_layers) == ([0, 1], False, 65)  # 33 GiB of weights: both
    assert all(sum(m.gpu_shares) == m.gpu_bytes for m in fit.models)
    assert {(m.model, len(m.gpu_indexes), m.pin_gpu) for m in fit.models if m.model != "big"} == {
        ("coder", 1, True),
        ("small", 1, True),
    }
    path.write_text(fitted_text(TWO_GPUS, str(path), fit))
    inventory = load_inventory(path)
    containers = {e.name: e.container for _, e in inventory.endpoints()}
    assert containers["big"] is not None and containers["big"].gpus is None  # still sees both
    assert [containers[name].gpus for name in ("coder", "small")] == [  # type: ignore[union-attr]
        models["coder"].gpu_indexes,
        models["small"].gpu_indexes,
    ]
    plan = plan_node_vram(inventory, inventory.nodes[0])  # the rollout places the same, refusing nothing
    assert {name: share.gpu_layers for name, share in plan.models.items()} == {"big": 65, "coder": 29, "small": 29}


def test_json_schema_is_stable(models_dir: Path, tmp_path: Path) -> None:
    result = homelab("plan", "fit", "-i", cluster(tmp_path), "--models-dir", models_dir, "--json")

    assert result.returncode == 0, result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    assert set(data) == {"fit", "diff", "written"}
    assert set(data["fit"]) == {"order", "gpus", "models", "unsized", "on_demand"}
    assert set(data["fit"]["gpus"][0]) == {"slot", "models", "used_bytes", "free_bytes"}
    assert set(data["fit"]["models"][0]) == {
        "model", "endpoint", "node", "ollama", "kept", "gpu", "gpu_indexes", "gpu_shares", "pin_gpu", "ctx_size",
        "ctx_asked", "parallel", "n_gpu_layers", "n_layers_total", "n_cpu_moe", "n_moe_layers", "cache_type",
        "flash_attn", "gpu_bytes", "cpu_bytes", "reasons",
    }  # fmt: skip
    assert data["written"] is False and data["diff"].startswith("---")


def test_kept_models_are_left_as_the_file_sets_them(models_dir: Path, tmp_path: Path) -> None:
    path = cluster(tmp_path, "fit:\n  keep: [general]\n")
    fit = fit_inventory(load_inventory(path), models_dir=models_dir)
    general = next(m for m in fit.models if m.model == "general")

    assert (general.kept, general.n_gpu_layers, general.ctx_size, general.cache_type) == (True, 28, 8192, "f16")
    assert "gpu_layers: 28\n" in fitted_text(path.read_text(), str(path), fit)


@pytest.mark.parametrize(
    ("section", "message"),
    [("fit: {prefer: [contxt]}", r"fit\.prefer\[0\]: must be 'full_gpu', 'context'"),
     ("fit: {prefer: [context, context]}", "fit: prefer: context listed more than once"),
     ("fit: {flash_attn: false}", "fit: kv_types: q8_0 quantize the V cache, which llama.cpp allows only with flash"),
     ("fit: {min_ctx: 0}", r"fit\.min_ctx: "),
     ("fit: {kv_types: [q3_k]}", r"fit\.kv_types\[0\]: "),
     ("fit: {keep: [nosuch]}", "fit.keep: nosuch: not a llama.cpp container or deployed Ollama model"),
     ("fit: {max_ctx: {vision: 4096}}", "fit.max_ctx: vision: not a llama.cpp container")],
)  # fmt: skip
def test_a_bad_fit_section_names_the_field(tmp_path: Path, section: str, message: str) -> None:
    result = homelab("plan", "fit", "-i", cluster(tmp_path, section + "\n"))

    assert result.returncode == 2
    assert re.search(message, result.stderr), result.stderr
    assert "Traceback" not in result.stderr


ONE_CONTAINER = """nodes:
   - name: box
     tier: gpu
     host: box.home.arpa
     gpus:
        - {name: RTX 3090, vram_gib: 24}
     endpoints:
        - name: coder
          kind: llamacpp
          url: http://box.home.arpa:3001
          container:
             image: llama
             model_file: qwen2.5-coder-7b-instruct-q4_k_m.gguf
             ctx_size: 16384
"""


def test_a_file_indented_its_own_way_gets_only_the_new_lines(tmp_path: Path) -> None:
    path = tmp_path / "three-spaces.yaml"
    path.write_text(ONE_CONTAINER)

    result = homelab("plan", "fit", "-i", path, "--write")

    assert result.returncode == 0, result.stderr
    assert path.read_text() == ONE_CONTAINER + "             gpu_layers: 29\n             args: [-fa, 'on']\n"


def test_flags_fit_writes_replace_every_occurrence_and_the_rest_stay(tmp_path: Path) -> None:
    path = tmp_path / "cluster.yaml"
    args = "             args: [-ctk, q4_0, -ub, '256', --cache_type_k, q4_0, -fa, 'off', -ctv, f16]\n"
    path.write_text(ONE_CONTAINER + args)

    text = fitted_text(path.read_text(), str(path), fit_inventory(load_inventory(path)))

    assert text == ONE_CONTAINER + "             gpu_layers: 29\n             args: [-ub, '256', -fa, 'on']\n"
    path.write_text(text)
    [coder] = fit_inventory(load_inventory(path)).models
    assert (coder.cache_type, coder.flash_attn, coder.n_gpu_layers) == ("f16", True, 29)


ALIASED = (
    ONE_CONTAINER
    + """             args: &common [-ub, '256']
        - name: other
          kind: llamacpp
          url: http://box.home.arpa:3002
          container: {image: llama, model_file: llama-3.2-3b-instruct-q8_0.gguf, args: *common}
"""
)


@pytest.mark.parametrize(
    ("text", "message"),
    [(ONE_CONTAINER.replace("{name: RTX 3090, vram_gib: 24}", "{ name: RTX 3090,  vram_gib: 24 }"),
      "its layout (indentation, spaces inside [ ] or { }) is not one plan fit can reproduce"),
     (ALIASED, "coder: its container or deploy section (or args) is shared through a YAML alias")],
    ids=["spaces-in-flow", "alias"],
)  # fmt: skip
def test_a_file_fit_cannot_rewrite_is_shown_but_not_written(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "cluster.yaml"
    path.write_text(text)

    shown = homelab("plan", "fit", "-i", path, "--json")
    written = homelab("plan", "fit", "-i", path, "--write")

    assert shown.returncode == 0 and json.loads(shown.stdout)["diff"] is None
    assert message in shown.stderr
    assert written.returncode == 2 and message in written.stderr
    assert path.read_text() == text


def test_a_model_with_a_source_is_sized_from_its_header(hf_hub: HubStandIn, tmp_path: Path) -> None:
    tiny = write_tiny_llama(tmp_path / "tiny.gguf")  # two blocks: no name estimate looks like it
    hf_hub.add("owner/repo", {"tiny.gguf": tiny.read_bytes()})
    path = tmp_path / "cluster.yaml"
    path.write_text(
        ONE_CONTAINER.replace("model_file: qwen2.5-coder-7b-instruct-q4_k_m.gguf", "source: hf://owner/repo/tiny.gguf")
    )

    result = run_homelab(tmp_path / "hf", "plan", "fit", "-i", path, "--hf-endpoint", hf_hub.endpoint, "--json")

    assert result.returncode == 0, result.stderr
    [coder] = json.loads(result.stdout)["fit"]["models"]
    assert (coder["model"], coder["n_layers_total"]) == ("coder", read_gguf(tiny).n_layer + 1)
    assert not (tmp_path / "hf").exists()  # read with ranges, not downloaded


def test_a_file_changed_since_it_was_read_is_not_overwritten(tmp_path: Path) -> None:
    path = cluster(tmp_path)
    read = path.read_bytes()
    new = fitted_text(read.decode(), str(path), fit_inventory(load_inventory(path)))
    path.write_text(read.decode() + "# someone else's edit\n")

    with pytest.raises(FileAccessError, match="changed since plan fit read it"):
        write_fitted(path, read, new)
    assert path.read_text().endswith("# someone else's edit\n")


def test_help_says_what_it_does() -> None:
    result = homelab("plan", "fit", "--help")

    assert result.returncode == 0
    for words in ("--write", "--models-dir", "--lineup", "--json", "fit: section", "--n-cpu-moe"):
        assert words in result.stdout
