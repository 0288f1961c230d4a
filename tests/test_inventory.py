"""The cluster file: every bad case fails as its header says, good files load as written."""

from __future__ import annotations

from pathlib import Path

import pytest

from homelab.errors import InventoryError, Problem
from homelab.history import open_history
from homelab.inventory import Endpoint, EndpointKind, Inventory, ProbeSettings, load_inventory
from tests.inventory_cases import BAD, EXAMPLES, GOOD, ROOT, read_expected


def _problems(path: Path) -> tuple[str, list[Problem]]:
    with pytest.raises(InventoryError) as caught:
        load_inventory(path)
    return str(caught.value), caught.value.problems


def _endpoint(inv: Inventory, node_name: str, endpoint_name: str) -> Endpoint:
    return next(e for n, e in inv.endpoints() if (n.name, e.name) == (node_name, endpoint_name))


def test_the_corpus_is_large_enough() -> None:
    assert len(BAD) >= 36


@pytest.mark.parametrize("case", BAD, ids=[p.stem for p in BAD])
def test_bad_file_is_reported_where_its_header_says(case: Path) -> None:
    expected = read_expected(case)

    text, problems = _problems(case)

    found = "\n".join(str(p) for p in problems)
    assert any(
        p.line == expected.line and p.path == expected.path and all(m in p.message for m in expected.messages)
        for p in problems
    ), f"expected line {expected.line}, path {expected.path!r}, message with {expected.messages}; got:\n{found}"
    assert len(problems) == expected.count, found
    assert all(p.file == str(case) for p in problems)
    assert str(case) in text


@pytest.mark.parametrize("path", EXAMPLES + GOOD, ids=[p.relative_to(ROOT).as_posix() for p in EXAMPLES + GOOD])
def test_good_file_loads(path: Path) -> None:
    inv = load_inventory(path)

    assert inv.nodes
    for _, endpoint in inv.endpoints():
        settings = inv.probe_settings(endpoint)
        assert settings.connect_s <= settings.total_s


def test_missing_file_is_an_inventory_error(tmp_path: Path) -> None:
    text, problems = _problems(tmp_path / "cluster.yaml")

    assert [(p.line, p.path, p.message) for p in problems] == [(None, "", "file not found")]
    assert text == f"{tmp_path / 'cluster.yaml'}: file not found"


def test_not_utf8_names_the_line_and_byte(tmp_path: Path) -> None:
    cluster = tmp_path / "cluster.yaml"
    cluster.write_bytes(b"nodes:\n  - name: caf\xe9\n")

    text, _ = _problems(cluster)

    assert text == f"{cluster}:2: not UTF-8 text (invalid continuation byte at byte 20)"


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    cluster = tmp_path / "cluster.yaml"
    cluster.write_text(
        "nodes:\n"
        "  - name: Mark-I\n"
        "    tier: primary\n"
        "    host: mark-i.home.arpa\n"
        "    gpus: [{name: RTX 4090, vram_gib: 0}]\n"
        "    endpoints:\n"
        "      - {name: ollama, kind: olama, url: 'http://mark-i.home.arpa:11434'}\n"
    )

    _, problems = _problems(cluster)

    assert [(p.line, p.path) for p in problems] == [
        (2, "nodes[0].name"),
        (5, "nodes[0].gpus[0].vram_gib"),
        (7, "nodes[0].endpoints[0].kind"),
    ]


def test_every_cross_reference_problem_is_reported_at_once(tmp_path: Path) -> None:
    cluster = tmp_path / "cluster.yaml"
    cluster.write_text(
        "nodes:\n"
        "  - name: mark-i\n"
        "    tier: primary\n"
        "    host: mark-i.home.arpa\n"
        "    ssh: {user: homelab, key_secret: ssh-key}\n"
        "experts:\n"
        "  chat: [chat]\n"
        "gateway: {endpoint: mark-i/litellm}\n"
    )

    _, problems = _problems(cluster)

    assert [(p.line, p.path) for p in problems] == [
        (5, "nodes[0].ssh.key_secret"),
        (7, "experts.chat[0]"),
        (8, "gateway.endpoint"),
    ]


def test_three_tier_example() -> None:
    inv = load_inventory(ROOT / "examples/three-tier.yaml")

    assert inv.name == "miller-home"
    assert inv.tiers() == ["primary", "secondary", "nas"]
    assert [n.name for n in inv.nodes] == ["mark-i", "mark-ii", "nas"]
    assert [e.port for _, e in inv.endpoints()] == [11434, 8080, 3009, 3010, 3011, 11434]
    assert inv.experts["code"] == ["coder", "nas-coder", "general"]
    assert inv.gateway is not None and inv.gateway.endpoint == "mark-i/litellm"
    assert inv.nodes[0].wake is not None and inv.nodes[0].wake.broadcast == "192.168.1.255"


def test_probe_settings_merge_endpoint_overrides_into_defaults() -> None:
    inv = load_inventory(ROOT / "examples/three-tier.yaml")

    assert inv.probe_settings(_endpoint(inv, "mark-i", "ollama")) == ProbeSettings(connect_s=2, total_s=8, slow_ms=2000)
    assert inv.probe_settings(_endpoint(inv, "nas", "ollama")) == ProbeSettings(connect_s=2, total_s=10, slow_ms=5000)
    assert inv.probe_settings(_endpoint(inv, "mark-ii", "coder")) is inv.defaults.probe


def test_probe_overrides_inherit_field_by_field() -> None:
    inv = load_inventory(ROOT / "tests/cases/inventory/good/probe-overrides.yaml")

    assert inv.defaults.probe == ProbeSettings(connect_s=2, total_s=6, slow_ms=2000)
    assert inv.probe_settings(_endpoint(inv, "desktop", "ollama")) == ProbeSettings(
        connect_s=2, total_s=6, slow_ms=4000
    )
    assert inv.probe_settings(_endpoint(inv, "desktop", "llama")) == ProbeSettings(
        connect_s=10, total_s=30, slow_ms=2000
    )
    assert inv.probe_settings(_endpoint(inv, "desktop", "proxy")) == inv.defaults.probe


def test_values_are_normalized() -> None:
    inv = load_inventory(ROOT / "tests/cases/inventory/good/node-without-endpoints.yaml")

    nas, desktop = inv.nodes
    assert nas.endpoints == []
    assert nas.wake is not None and nas.wake.mac == "a8:a1:59:10:20:30"
    assert _endpoint(inv, "desktop", "ollama").url == "http://127.0.0.1:11434"
    assert desktop.docker is None and desktop.os == "linux"


def test_default_ports_follow_the_scheme() -> None:
    inv = load_inventory(ROOT / "tests/cases/inventory/good/default-ports.yaml")

    assert [(e.name, e.port) for _, e in inv.endpoints()] == [("plain", 80), ("tls", 443)]


def test_serving_finds_the_node_endpoint_and_model_of_an_alias() -> None:
    inv = load_inventory(ROOT / "examples/three-tier.yaml")

    served = inv.serving("coder")

    assert served is not None
    node, endpoint, model = served
    assert (node.name, endpoint.name, endpoint.kind, model.name) == (
        "mark-ii",
        "coder",
        EndpointKind.LLAMACPP,
        "qwen2.5-coder-7b",
    )
    assert inv.serving("nas-fast") is not None and inv.serving("nas-fast")[0].name == "nas"


def test_serving_an_unknown_alias_is_none() -> None:
    inv = load_inventory(ROOT / "examples/minimal.yaml")

    assert inv.serving("chat") is not None
    assert inv.serving("qwen2.5:14b") is None
    assert inv.serving("Chat") is None


def test_structural_and_reference_problems_are_reported_together(tmp_path: Path) -> None:
    cluster = tmp_path / "cluster.yaml"
    cluster.write_text(
        "nodes:\n"
        "  - name: mark-i\n"
        "    tier: primary\n"
        "    host: mark-i.home.arpa\n"
        "    ssh: {user: homelab, key_secret: ssh-key}\n"
        "    gpus: [{name: RTX 4090, vram_gib: .inf}]\n"
        "    endpoints:\n"
        "      - {name: ollama, kind: olama, url: 'http://mark-i.home.arpa:11434', models: [{name: m, alias: chat}]}\n"
        "experts:\n"
        "  chat: [chat, nowhere]\n"
        "gateway: {endpoint: mark-i/litellm, master_key_secret: master}\n"
    )

    _, problems = _problems(cluster)

    assert [(p.line, p.path) for p in problems] == [
        (5, "nodes[0].ssh.key_secret"),
        (6, "nodes[0].gpus[0].vram_gib"),
        (8, "nodes[0].endpoints[0].kind"),
        (10, "experts.chat[1]"),
        (11, "gateway.master_key_secret"),
        (11, "gateway.endpoint"),
    ]


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_history_is_kept_outside_the_checkout(
    example: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    before = sorted(example.parent.iterdir())
    inv = load_inventory(example)

    # As `homelab route` and the flows open it: relative paths from the cluster file's folder.
    with open_history(inv.history.url, relative_to=example.parent) as history:
        database = Path(str(history.engine.url.database))

    assert database.is_relative_to(tmp_path), database
    assert database.is_file()
    assert sorted(example.parent.iterdir()) == before


def test_a_key_written_beside_a_merge_key_overrides_the_merged_one() -> None:
    inv = load_inventory(ROOT / "tests/cases/inventory/good/merge-keys.yaml")

    assert inv.probe_settings(inv.nodes[0].endpoints[0]) == ProbeSettings(connect_s=5, total_s=30, slow_ms=8000)
