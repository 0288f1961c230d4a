"""A container section's own fields, from the cluster file to the container spec and the VRAM plan.

`env`, `container_port`, `args`, `command`, `entrypoint`, `restart_policy` and `gpus` reach the
spec the engine is given (and its recorded config); a `-c`/`-ngl` in `args` is the value the
command line carries once and the VRAM plan uses. The engine's side is in
tests/test_rollout_any_image.py; the plan's reasons in tests/cases/docker_ops/plan.jsonl.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from homelab.docker_ops.containers import ContainerSettings, container_spec, desired_containers
from homelab.inventory import Inventory, Node, load_inventory
from homelab.inventory.container import PLANNED_FLAGS, flag_values
from homelab.tiny_gguf import write_tiny_llama
from homelab.vram.estimate import estimate
from homelab.vram.lineup import lineup_from_inventory
from homelab.vram.metadata import read_gguf
from homelab.vram.node_plan import plan_node_vram
from homelab.vram.settings import RunSettings
from homelab.vram.sizes import GIB
from tests.inventory_cases import ROOT

GPUS = [{"name": "RTX 3090", "vram_gib": 24}, {"name": "RTX 3060", "vram_gib": 12, "index": 2}]


def node_with(container: dict[str, Any], gpus: list[dict[str, Any]] | None = None) -> Node:
    return Node.model_validate(
        {
            "name": "gpu2",
            "tier": "secondary",
            "host": "127.0.0.1",
            "gpus": gpus or [],
            "endpoints": [
                {
                    "name": "coder",
                    "kind": "llamacpp",
                    "url": "http://127.0.0.1:3009",
                    "models": [{"name": "qwen-coder", "alias": "coder"}],
                    "container": {"image": "llama:server", "model_file": "coder.gguf"} | container,
                }
            ],
        }
    )


def spec_of(container: dict[str, Any], gpus: list[dict[str, Any]] | None = None, **settings: Any) -> Any:
    node = node_with(container, gpus)
    return container_spec(node, node.endpoints[0], ContainerSettings(**settings))


def test_args_carrying_ctx_and_layers_give_each_flag_once() -> None:
    spec = spec_of({"args": ["-c", "16384", "--n-gpu-layers=20", "--flash-attn", "on"]}, GPUS, extra_args=("-t", "4"))

    assert (spec.ctx_size, spec.gpu_layers) == (16384, 20)
    assert spec.cmd() == [
        "-m", "/models/coder.gguf", "--host", "0.0.0.0", "--port", "8080", "-np", "1", "--alias", "qwen-coder",
        "-t", "4", "-c", "16384", "--n-gpu-layers=20", "--flash-attn", "on",
    ]  # fmt: skip


_FLAGS = [flag for flags in PLANNED_FLAGS.values() for flag in flags]
_NUMBER = st.integers(1, 99)
_WORD = st.one_of(
    st.sampled_from([*_FLAGS, "-t", "--jinja"]),
    st.integers(0, 99).map(str),
    st.tuples(st.sampled_from(_FLAGS), st.integers(0, 99)).map(lambda fv: f"{fv[0]}={fv[1]}"),
)


@settings(max_examples=300, deadline=1000, database=None)
@given(args=st.lists(_WORD, max_size=8), fixed=st.dictionaries(st.sampled_from(sorted(PLANNED_FLAGS)), _NUMBER))
def test_each_planned_flag_has_one_value_on_the_command_line(args: list[str], fixed: dict[str, int]) -> None:
    try:
        spec = spec_of({"args": args, **fixed}, GPUS)
    except ValidationError:
        event("refused")
        return  # a conflict or a bad number: the located error is the answer (hostile rows)
    words = spec.cmd() or []
    for field, flags in PLANNED_FLAGS.items():
        value = getattr(spec, field)
        given = flag_values(words, flags)
        assert set(given) <= {str(value)}, (field, words)  # the value the VRAM plan uses
        # homelab adds its own only when args have none: what args give stays as given
        assert len(given) == max(len(flag_values(args, flags)), int(value is not None)), (field, words)


def test_container_port_is_llama_servers_port() -> None:
    spec = spec_of({"container_port": 8000})

    assert spec.cmd()[4:6] == ["--port", "8000"]  # type: ignore[index]
    assert (spec.container_port, spec.host_port) == (8000, 3009)


@pytest.mark.parametrize(
    ("command", "expected"),
    [([], None), (["--model", "/models/x.gguf", "--port", "8000"], ["--model", "/models/x.gguf", "--port", "8000"])],
    ids=["images-own-cmd", "verbatim"],
)
def test_a_command_replaces_homelabs_arguments(command: list[str], expected: list[str] | None) -> None:
    spec = spec_of({"command": command, "entrypoint": ["/app/llama-server"]}, extra_args=("-t", "4"))

    assert spec.cmd() == expected  # nothing of homelab's, not even the settings' extra arguments
    assert spec.entrypoint == ("/app/llama-server",)
    assert spec.config()["command"] == command and spec.config()["extra_args"] == []


@pytest.mark.parametrize(
    ("section", "override", "gpus", "expected"),
    [
        (None, None, GPUS, "no"),
        (None, None, None, "unless-stopped"),
        ("always", None, GPUS, "always"),
        (None, "on-failure", GPUS, "on-failure"),
        ("unless-stopped", "no", None, "unless-stopped"),
    ],
    ids=["gpu-node-default", "cpu-node-default", "section-wins", "settings-override", "section-over-settings"],
)
def test_restart_policy_resolution(
    section: str | None, override: str | None, gpus: list[dict[str, Any]] | None, expected: str
) -> None:
    spec = spec_of({"restart_policy": section} if section else {}, gpus, restart_policy=override)

    assert spec.restart_policy == expected
    assert spec.config()["restart_policy"] == expected


@pytest.mark.parametrize(
    ("container", "gpus", "expected"),
    [({}, GPUS, (-1, [])), ({"gpus": [2, 0]}, GPUS, (0, ["2", "0"])), ({}, None, None)],
    ids=["all-gpus", "by-cuda-index", "cpu-node"],
)
def test_device_requests(
    container: dict[str, Any], gpus: list[dict[str, Any]] | None, expected: tuple[int, list[str]] | None
) -> None:
    requests = spec_of(container, gpus).device_requests()

    if expected is None:
        assert requests is None
        return
    [request] = requests or []  # `--gpus all` / `--gpus '"device=2,0"'`: one request
    assert (request["Count"], request["DeviceIDs"], request["Capabilities"]) == (*expected, [["gpu"]])


def test_env_is_recorded_and_digested() -> None:
    plain = spec_of({})
    with_env = spec_of({"env": {"MODEL_PATH": "/models/coder.gguf"}})

    assert with_env.config()["env"] == {"MODEL_PATH": "/models/coder.gguf"}
    assert with_env.digest() != plain.digest()


def _inventory(container: dict[str, Any]) -> Inventory:
    node = node_with({"model_file": "deep.gguf"} | container, GPUS[:1]).model_dump(mode="json")
    return Inventory.model_validate({"nodes": [node]})


def test_the_vram_plan_uses_ctx_and_layers_from_args(tmp_path: Path) -> None:
    write_tiny_llama(tmp_path / "deep.gguf", n_layer=24, seed=3)
    inv = _inventory({"args": ["-c", "16384", "-ngl", "20"]})

    [entry] = lineup_from_inventory(inv, models_dir=tmp_path).entries
    plan = plan_node_vram(inv, inv.nodes[0], models_dir=tmp_path)

    assert (entry.ctx_size, entry.gpu_layers) == (16384, 20)
    assert plan.gpu_layers == {"coder": 20}
    settings = RunSettings(ctx_size=16384, n_gpu_layers=20, flash_attn=True)
    expected = estimate(read_gguf(tmp_path / "deep.gguf"), settings)
    assert plan.lines == [f"coder: 20/25 layers on gpu2 GPU0 (RTX 3090), {expected.gpu_total_bytes / GIB:.2f} GiB"]
    plain = _inventory({})
    default = plan_node_vram(plain, plain.nodes[0], models_dir=tmp_path)
    assert default.gpu_layers == {"coder": 25}  # without args: every layer, at the default 4096 context


def test_the_llamacpp_images_example_makes_the_containers_it_describes() -> None:
    inv = load_inventory(ROOT / "examples" / "llamacpp-images.yaml")
    specs = {s.endpoint: s for node in inv.nodes for s in desired_containers(node, ContainerSettings())}

    coder, general, mini, tiny = (specs[name] for name in ("coder", "general", "mini", "tiny"))
    assert [s.restart_policy for s in (coder, general, mini, tiny)] == ["no", "no", "no", "always"]
    assert (coder.ctx_size, coder.gpu_layers, coder.gpu_ids) == (16384, 40, (0,))
    assert coder.cmd() == [
        "-m", "/models/qwen2.5-coder-14b-instruct-q4_k_m.gguf", "--host", "0.0.0.0", "--port", "8080", "-np", "1",
        "--alias", "qwen2.5-coder-14b", "-c", "16384", "-ngl", "40", "--flash-attn", "on", "--jinja",
    ]  # fmt: skip
    assert (general.cmd(), general.container_port, general.host_port) == (None, 8000, 3010)
    assert general.env == {"MODEL_PATH": "/models/llama-3.1-8b-instruct-q4_k_m.gguf"}
    assert mini.entrypoint == ("/opt/llama.cpp/bin/llama-server",)
    assert (mini.cmd() or [])[:2] == ["-m", "/models/llama-3.2-3b-instruct-q8_0.gguf"]
    assert (tiny.cmd() or [])[-2:] == ["-t", "4"] and tiny.extra_args == () and tiny.device_requests() is None


def test_the_vram_plan_puts_a_container_only_on_the_gpus_it_is_given(tmp_path: Path) -> None:
    write_tiny_llama(tmp_path / "deep.gguf", n_layer=4, seed=3)

    def where(container: dict[str, Any]) -> list[str]:
        return [line.split(" on ")[1].split(",")[0] for line in plan_lines(container)]

    def plan_lines(container: dict[str, Any]) -> list[str]:
        node = node_with({"model_file": "deep.gguf"} | container, GPUS).model_dump(mode="json")
        inv = Inventory.model_validate({"nodes": [node]})
        return plan_node_vram(inv, inv.nodes[0], models_dir=tmp_path).lines

    # Seeing both GPUs, llama.cpp splits the layers over them (-sm layer, by memory); -sm none keeps one.
    assert plan_lines({})[0].startswith("coder: all layers split over gpu2's GPUs, ")
    assert plan_lines({})[0].endswith(" GiB on GPU2")
    assert where({"args": ["-sm", "none"]}) == ["gpu2 GPU0 (RTX 3090)"]
    assert where({"gpus": [0]}) == ["gpu2 GPU0 (RTX 3090)"]  # the only device the engine gives it
