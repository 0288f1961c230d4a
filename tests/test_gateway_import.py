"""`homelab gateway import`: a starting cluster file from a LiteLLM config the user already has.

Bad configs live in `tests/cases/gateway/bad/`, one per file, each with the `# expect-...`
header of the cluster-file corpus (see `tests/inventory_cases.py`): a new case needs no code.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from homelab.errors import GatewayConfigError
from homelab.gateway.config import build_config
from homelab.gateway.importer import import_litellm, import_litellm_with_notes, load_litellm_config, render_inventory
from homelab.inventory import EndpointKind, Inventory
from homelab.inventory.load import parse_inventory
from homelab.yaml_source import SourceMap, loads_yaml
from tests.inventory_cases import ROOT, read_expected
from tests.test_cli_validate import homelab

CASES = ROOT / "tests" / "cases" / "gateway"
BAD = sorted((CASES / "bad").glob("*.yaml"))
HANDWRITTEN = CASES / "good" / "handwritten.yaml"
EXIT_INVALID = 2
_PROVIDER_FAMILY = {"ollama": "ollama", "ollama_chat": "ollama", "openai": "openai"}


def _imported(path: Path, **options: Any) -> Inventory:
    data, source = load_litellm_config(path)
    return import_litellm(data, source, **options)


def _model_list(config: dict[str, Any]) -> dict[str, tuple[str, str, str]]:
    """model_name -> (provider family, backend model, api_base): what a client's request reaches."""
    models = {}
    for entry in config["model_list"]:
        provider, _, backend = entry["litellm_params"]["model"].partition("/")
        api_base = entry["litellm_params"]["api_base"].rstrip("/")
        models[entry["model_name"]] = (_PROVIDER_FAMILY[provider], backend, api_base)
    return models


def test_a_handwritten_config_becomes_nodes_by_host_and_endpoints_by_port() -> None:
    inv = _imported(HANDWRITTEN)

    assert [(n.name, n.tier, n.host) for n in inv.nodes] == [
        ("mark-i", "local", "mark-i.home.arpa"),
        ("mark-ii", "remote", "mark-ii.home.arpa"),
        ("192-168-1-20", "nas", "192.168.1.20"),
    ]
    kinds = {(node.name, e.url): e.kind for node, e in inv.endpoints()}
    assert kinds == {
        ("mark-i", "http://mark-i.home.arpa:11434"): EndpointKind.OLLAMA,
        ("mark-ii", "http://mark-ii.home.arpa:8080"): EndpointKind.LLAMACPP,  # llama-server's default port
        ("mark-ii", "http://mark-ii.home.arpa:8081"): EndpointKind.OPENAI,  # no sign of llama.cpp: plain OpenAI
        ("192-168-1-20", "http://192.168.1.20:11434"): EndpointKind.OLLAMA,
    }
    assert inv.serving("coder") is not None and inv.serving("coder")[2].name == "qwen2.5-coder-7b"


def test_llamacpp_ports_can_be_named() -> None:
    inv = _imported(HANDWRITTEN, llamacpp_ports=[8080, 8081])

    assert {e.kind for _, e in inv.endpoints() if e.port in (8080, 8081)} == {EndpointKind.LLAMACPP}


def test_importing_then_generating_gives_an_equivalent_model_list() -> None:
    original = yaml.safe_load(HANDWRITTEN.read_text(encoding="utf-8"))

    generated = build_config(_imported(HANDWRITTEN))

    assert _model_list(generated) == _model_list(original)


def test_secrets_in_the_litellm_config_are_not_copied() -> None:
    text = yaml.safe_dump(_imported(HANDWRITTEN).model_dump(mode="json"))

    assert "sk-1234" not in text and "sk-anything" not in text


def test_a_taken_alias_gets_its_tier_as_prefix() -> None:
    data = {
        "model_list": [
            {"model_name": "local/chat", "litellm_params": {"model": "ollama_chat/a", "api_base": "http://a:11434"}},
            {"model_name": "nas/chat", "litellm_params": {"model": "ollama_chat/b", "api_base": "http://nas:11434"}},
            {"model_name": "chat", "litellm_params": {"model": "ollama_chat/c", "api_base": "http://nas:11434"}},
        ]
    }

    inv = import_litellm(data, SourceMap("litellm.yaml"))

    assert [m.alias for _, e in inv.endpoints() for m in e.models] == ["chat", "nas-chat", "chat-2"]


@pytest.mark.parametrize("case", BAD, ids=[c.stem for c in BAD])
def test_bad_configs_name_file_line_and_entry(case: Path) -> None:
    expected = read_expected(case)

    with pytest.raises(GatewayConfigError) as caught:
        _imported(case)

    first = caught.value.problems[0]
    assert (first.file, first.line, first.path) == (str(case), expected.line, expected.path)
    for message in expected.messages:
        assert message in first.message
    assert len(caught.value.problems) == expected.count, caught.value


# -- the command -----------------------------------------------------------------------------


def test_import_writes_a_cluster_file_that_validates(tmp_path: Path) -> None:
    out = tmp_path / "cluster.yaml"

    imported = homelab("gateway", "import", HANDWRITTEN, "-o", out, "--name", "adopted", "--llamacpp-port", "8081")
    validated = homelab("validate", out)

    assert imported.returncode == 0, imported.stderr
    assert out.read_text(encoding="utf-8").startswith("# Imported from handwritten.yaml by `homelab gateway import`")
    assert validated.returncode == 0, validated.stderr
    assert f"{out}: 3 nodes in 3 tiers, 4 endpoints, 6 models" in validated.stdout


def test_import_of_a_bad_config_exits_2_with_located_messages_and_no_traceback() -> None:
    result = homelab("gateway", "import", "tests/cases/gateway/bad/api-base-not-http.yaml")

    assert result.returncode == EXIT_INVALID
    assert result.stdout == ""
    assert (
        "tests/cases/gateway/bad/api-base-not-http.yaml:9: model_list[0] (local/chat): api_base must be an http://"
        in result.stderr
    )
    assert "Traceback" not in result.stderr


def test_import_never_overwrites_a_file(tmp_path: Path) -> None:
    existing = tmp_path / "cluster.yaml"
    existing.write_text("precious\n")

    result = homelab("gateway", "import", HANDWRITTEN, "-o", existing)

    assert result.returncode == EXIT_INVALID
    assert "exists" in result.stderr
    assert existing.read_text() == "precious\n"


def test_long_names_that_collide_are_cut_to_fit_the_cluster_file() -> None:
    long_alias, long_host = "a" * 140, "h" * 63
    data = {
        "model_list": [
            {"model_name": long_alias, "litellm_params": {"model": "ollama_chat/m1", "api_base": "http://x:11434"}},
            {
                "model_name": f"{long_alias}!",
                "litellm_params": {"model": "ollama_chat/m2", "api_base": "http://x:11434"},
            },
            {"model_name": "b", "litellm_params": {"model": "ollama_chat/m3", "api_base": f"http://{long_host}.one:1"}},
            {"model_name": "c", "litellm_params": {"model": "ollama_chat/m4", "api_base": f"http://{long_host}.two:1"}},
        ]
    }

    inv = import_litellm(data, SourceMap("litellm.yaml"))

    assert [m.alias for _, e in inv.endpoints() for m in e.models][:2] == ["a" * 128, "a" * 126 + "-2"]
    assert [n.name for n in inv.nodes][1:] == ["h" * 63, "h" * 61 + "-2"]


def test_a_value_the_cluster_file_refuses_is_named_by_the_entry_it_came_from() -> None:
    over_long_label = "h" * 64
    data = {
        "model_list": [
            {"model_name": "a", "litellm_params": {"model": "ollama_chat/m1", "api_base": "http://x:11434"}},
            {"model_name": "b", "litellm_params": {"model": "openai/m2", "api_base": f"http://{over_long_label}.y:1"}},
        ]
    }

    with pytest.raises(GatewayConfigError) as caught:
        import_litellm(data, SourceMap("litellm.yaml"))

    [problem] = caught.value.problems
    assert problem.path == "model_list[1] (b)"
    assert problem.message.startswith("as a cluster file, its host is refused: is not a valid host name")


def test_ten_thousand_entries_wanting_one_alias_import_in_linear_time() -> None:
    # Ten thousand model names (`chat!`, `chat@`, `chat@!`...) that all want the alias `chat-`.
    names = ["chat" + "".join("!@#$%^&~()"[int(d)] for d in str(i)) for i in range(10_000)]
    params = {"model": "ollama_chat/m", "api_base": "http://h:11434"}
    model_list = [
        {"model_name": name, "litellm_params": params | {"model": f"ollama_chat/m{i}"}} for i, name in enumerate(names)
    ]
    started = time.process_time()  # CPU, not wall time: steady on a loaded machine

    inv = import_litellm({"model_list": model_list}, SourceMap("litellm.yaml"))

    assert time.process_time() - started < 5, "was 16 s when each entry tried every taken suffix again"
    aliases = [m.alias for _, e in inv.endpoints() for m in e.models]
    assert aliases[:3] == ["chat-", "chat--2", "chat--3"] and len(set(aliases)) == 10_000


_TEXT = st.text(st.characters(codec="utf-8"), max_size=90)


@settings(max_examples=150, deadline=1000, suppress_health_check=[HealthCheck.too_slow])
@given(
    entries=st.lists(
        st.fixed_dictionaries(
            {
                "model_name": st.one_of(
                    _TEXT,
                    st.from_regex(r"[a-zA-Z0-9/_.:-]{1,140}", fullmatch=True),
                    st.builds("{}/{}".format, st.from_regex(r"[a-zA-Z0-9_-]{0,80}", fullmatch=True), _TEXT),
                ),
                "litellm_params": st.fixed_dictionaries(
                    {
                        "model": st.builds("{}/{}".format, st.sampled_from(["ollama", "ollama_chat", "openai"]), _TEXT),
                        "api_base": st.builds(
                            "http://{}:{}".format,
                            st.one_of(_TEXT, st.from_regex(r"[a-z0-9.-]{1,80}", fullmatch=True)),
                            st.integers(-1, 70000),
                        ),
                    }
                ),
            }
        ),
        min_size=1,
        max_size=6,
    )
)
def test_any_model_list_imports_or_is_refused_entry_by_entry(entries: list[dict[str, Any]]) -> None:
    """Whatever the names, hosts and ports: a cluster file that validates, or located problems; never a traceback.

    Every entry is a model of the cluster, an external entry, or an exact repeat merged (with a note).
    """
    try:
        inv, notes = import_litellm_with_notes({"model_list": entries}, SourceMap("litellm.yaml"))
    except GatewayConfigError as exc:
        assert exc.problems and all(p.path.startswith("model_list") for p in exc.problems)
        assert all(len(str(p)) < 1000 for p in exc.problems), "a message stays short"
    else:
        merged = sum(note.endswith(": merged") for note in notes)
        external = len(inv.gateway.external) if inv.gateway else 0
        assert sum(len(e.models) for _, e in inv.endpoints()) + external + merged == len(entries)
        data, source = loads_yaml(render_inventory(inv, "litellm.yaml"), "cluster.yaml")
        parse_inventory(data, source)  # what import writes is a cluster file that validates


def test_a_password_in_a_kept_url_is_left_out_and_said_where() -> None:
    data = {
        "model_list": [
            {"model_name": "chat", "litellm_params": {"model": "ollama_chat/m", "api_base": "http://h:11434"}},
            {"model_name": "az", "litellm_params": {"model": "azure/gpt", "api_base": "https://u:hunter2@az.example"}},
        ],
        "litellm_settings": {"cache_params": {"type": "redis", "url": "redis://:hunter2@127.0.0.1:6379"}},
    }

    inv, notes = import_litellm_with_notes(data, SourceMap("litellm.yaml"))

    text = render_inventory(inv, "litellm.yaml", notes)
    assert "hunter2" not in text and "hunter2" not in "".join(notes)
    assert "model_list[1] (az): litellm_params.api_base: a literal secret, not copied" in notes[0]
    assert notes[1].startswith("litellm_settings.cache_params.url: a literal secret")
    assert inv.gateway is not None and inv.gateway.settings.litellm_settings == {"cache_params": {"type": "redis"}}
