"""The lineup planner: whole, partial or CPU-only, by priority, never over-committing a GPU."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from homelab.errors import LineupError
from homelab.inventory import load_inventory
from homelab.vram.guess import guess_shape
from homelab.vram.lineup import (
    DEFAULT_RESERVE_BYTES,
    LineupFile,
    ModelOverride,
    lineup_from_inventory,
    load_lineup_file,
)
from homelab.vram.planner import GpuSlot, LineupEntry, Plan, PlanPolicy, plan_lineup
from homelab.vram.sizes import GIB

ROOT = Path(__file__).resolve().parents[1]
CASES = [json.loads(line) for line in (ROOT / "tests" / "cases" / "vram" / "plans.jsonl").read_text().splitlines()]
RESERVE_GIB = 0.5


def _slots(gpus: list[dict[str, Any]]) -> list[GpuSlot]:
    index: dict[str, int] = {}
    slots = []
    for gpu in gpus:
        i = index[gpu["node"]] = index.get(gpu["node"], -1) + 1
        reserve = int(gpu.get("reserve_gib", RESERVE_GIB) * GIB)
        slots.append(
            GpuSlot(
                node=gpu["node"], name=gpu["name"], index=i, vram_bytes=gpu["vram_gib"] * GIB, reserve_bytes=reserve
            )
        )
    return slots


def _entry(item: dict[str, Any]) -> LineupEntry:
    return LineupEntry(shape=guess_shape(item["name"]), ctx_size=8192, **item)


def _verdicts(plan: Plan) -> dict[str, str]:
    verdicts = {c.model: "cpu" for c in plan.cpu_only}
    for gpu in plan.gpus:
        for p in gpu.placements:
            verdicts[p.model] = f"{p.node}/{p.gpu_index} {'whole' if p.whole else 'partial'}"
    return verdicts


def _assert_never_over_committed(plan: Plan) -> None:
    for gpu in plan.gpus:
        assert gpu.used_bytes <= max(gpu.slot.vram_bytes - gpu.slot.reserve_bytes, 0), gpu.slot.label


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_plan_cases(case: dict[str, Any]) -> None:
    plan = plan_lineup([_entry(item) for item in case["lineup"]], _slots(case["gpus"]))

    assert _verdicts(plan) == case["expect"]
    reasons = {c.model: c.reason for c in plan.cpu_only}
    for model, text in case.get("reason", {}).items():
        assert text in reasons[model]
    _assert_never_over_committed(plan)


def test_partial_offload_gives_as_many_layers_as_fit() -> None:
    slot = _slots([{"node": "a", "name": "RTX 4060 Ti", "vram_gib": 8}])[0]
    plan = plan_lineup([_entry({"name": "qwen2.5-14b"})], [slot])
    placed = plan.gpus[0].placements[0].estimate

    assert 25 <= placed.n_gpu_layers < 49
    assert plan.gpus[0].free_bytes >= 0
    one_more = _entry({"name": "qwen2.5-14b", "gpu_layers": placed.n_gpu_layers + 1})
    assert _verdicts(plan_lineup([one_more], [slot])) == {"qwen2.5-14b": "cpu"}


def test_cpu_only_models_carry_their_cpu_estimate() -> None:
    plan = plan_lineup([_entry({"name": "qwen2.5-72b"})], _slots([{"node": "a", "name": "RTX 4080", "vram_gib": 16}]))
    verdict = plan.cpu_only[0]

    assert verdict.needs_gpu_bytes is not None and verdict.needs_gpu_bytes > 40 * GIB
    assert verdict.best_free_bytes == int(15.5 * GIB)
    assert (verdict.estimate.gpu_total_bytes, verdict.estimate.n_gpu_layers) == (0, 0)
    assert verdict.estimate.cpu_total_bytes > 40 * GIB


def test_random_lineups_never_over_commit() -> None:
    rng = random.Random(4)
    names = ["qwen2.5:0.5b", "qwen2.5-7b", "qwen2.5-14b", "qwen2.5-32b", "llama3.1:8b q8_0", "gemma2:9b"]
    shapes = {n: guess_shape(n) for n in names}
    for _ in range(30):
        gpus = [{"node": rng.choice("ab"), "name": "GPU", "vram_gib": rng.choice([4, 8, 12, 16, 24]),
                 "reserve_gib": rng.choice([0, 0.5, 2])} for _ in range(rng.randint(1, 3))]  # fmt: skip
        lineup = [
            LineupEntry(name=f"m{i}", shape=shapes[rng.choice(names)], ctx_size=rng.choice([2048, 8192, 32768]),
                        parallel=rng.choice([1, 2, 4]), priority=rng.randint(0, 3), node=rng.choice([None, "a", "b"]))
            for i in range(rng.randint(1, 6))
        ]  # fmt: skip
        plan = plan_lineup(lineup, _slots(gpus), PlanPolicy(flash_attn=rng.random() < 0.5))
        _assert_never_over_committed(plan)
        assert sorted(_verdicts(plan)) == sorted(e.name for e in lineup)


def test_lineup_from_the_example_inventory() -> None:
    lineup = lineup_from_inventory(load_inventory(ROOT / "examples" / "three-tier.yaml"))

    assert [(s.node, s.name, s.vram_bytes, s.reserve_bytes) for s in lineup.slots] == [
        ("mark-i", "RTX 4090", 24 * GIB, DEFAULT_RESERVE_BYTES),
        ("mark-ii", "RTX 3090", 24 * GIB, DEFAULT_RESERVE_BYTES),
    ]
    got = [(e.name, e.node, e.ctx_size, e.parallel, e.gpu_layers, e.shape.estimated) for e in lineup.entries]
    assert got == [
        ("chat", "mark-i", 8192, 1, None, True),  # deployed to Ollama: one sequence
        ("reason", "mark-i", 8192, 1, None, True),
        ("vision", "mark-i", 32768, 1, None, True),  # not deployed: Ollama's default for a 24 GiB node
        ("coder", "mark-ii", 16384, 1, None, True),
        ("general", "mark-ii", 8192, 1, 28, True),
        ("quick", "mark-ii", 4096, 2, None, True),
    ]
    [embed] = lineup.unsized
    assert (embed.model, embed.endpoint) == ("embed", "ollama")
    assert embed.reason.startswith("node: the node was not asked; name: 'nomic-embed-text': no parameter count")


def test_a_rollout_plans_only_the_ollama_models_it_deploys() -> None:
    inventory = load_inventory(ROOT / "examples" / "three-tier.yaml")

    lineup = lineup_from_inventory(inventory, deployed_only=True)

    assert [e.name for e in lineup.entries] == ["chat", "reason", "coder", "general", "quick"]
    assert lineup.unsized == []


def test_models_dir_and_lineup_file_give_files_and_priorities(tmp_path: Path) -> None:
    from homelab.tiny_gguf import write_tiny_llama

    write_tiny_llama(tmp_path / "llama-3.2-3b-instruct-q8_0.gguf")
    other = write_tiny_llama(tmp_path / "elsewhere.gguf", n_layer=3)
    lineup_file = LineupFile(reserve_gib=1.0, models=[
        ModelOverride(model="general", priority=5, ctx_size=4096),
        ModelOverride(model="qwen2.5-coder-7b-instruct-q4_k_m.gguf", gguf=str(other)),
    ])  # fmt: skip
    inventory = load_inventory(ROOT / "examples" / "three-tier.yaml")

    lineup = lineup_from_inventory(inventory, models_dir=tmp_path, lineup_file=lineup_file)
    entries = {e.name: e for e in lineup.entries}

    assert (entries["coder"].shape.estimated, entries["coder"].shape.n_layer) == (False, 3)
    assert (entries["quick"].shape.estimated, entries["quick"].shape.n_layer) == (False, 2)
    assert (entries["general"].priority, entries["general"].ctx_size, entries["general"].shape.estimated) == (
        5,
        4096,
        True,
    )
    assert {s.reserve_bytes for s in lineup.slots} == {GIB}


def test_lineup_file_naming_an_unknown_model(tmp_path: Path) -> None:
    inventory = load_inventory(ROOT / "examples" / "three-tier.yaml")
    with pytest.raises(LineupError, match=r"no llama\.cpp container or Ollama model on a GPU node serves: nas-fast"):
        lineup_from_inventory(inventory, lineup_file=LineupFile(models=[ModelOverride(model="nas-fast")]))


@pytest.mark.parametrize(
    ("text", "message"),
    [("models: [", ":1: YAML syntax error"),
     ("models: [{model: x, priority: high}]", r":1: models\[0\].priority: Input should be a valid integer"),
     ("surprise: 1", ":1: surprise: Extra inputs are not permitted"),
     ("reserve_gib: .inf", "reserve_gib: Input should be a finite number"),
     ("models: [{model: x, ctx_size: 99999999999}]",
      r"models\[0\].ctx_size: Input should be less than or equal to 67108864")],
)  # fmt: skip
def test_bad_lineup_files(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "lineup.yaml"
    path.write_text(text)
    with pytest.raises(LineupError, match=message):
        load_lineup_file(path)
