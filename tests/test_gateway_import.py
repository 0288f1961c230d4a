"""`homelab gateway import`: a starting cluster file from a LiteLLM config the user already has.

Bad configs live in `tests/cases/gateway/bad/`, one per file, each with the `# expect-...`
header of the cluster-file corpus (see `tests/inventory_cases.py`): a new case needs no code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from homelab.errors import GatewayConfigError
from homelab.gateway.config import build_config
from homelab.gateway.importer import import_litellm, load_litellm_config
from homelab.inventory import EndpointKind, Inventory
from homelab.yaml_source import SourceMap
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
    result = homelab("gateway", "import", "tests/cases/gateway/bad/unknown-provider.yaml")

    assert result.returncode == EXIT_INVALID
    assert result.stdout == ""
    assert (
        "tests/cases/gateway/bad/unknown-provider.yaml:18: model_list[3] (nas/coder): unknown provider 'foo/...'"
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
