"""`homelab gateway import` then `homelab gateway config` gives back the LiteLLM config it read.

Each case under `tests/cases/gateway/roundtrip/` is a config as homelab owners publish them
(replicas, fallbacks of three kinds, cloud models mixed in, environment references, embedding
models); a new case needs no code. Both steps run as the user runs them, through the CLI.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from homelab.inventory import load_inventory
from homelab.inventory.gateway import env_name, is_secret_key
from tests.inventory_cases import ROOT
from tests.test_cli_validate import homelab

CASES = sorted((ROOT / "tests" / "cases" / "gateway" / "roundtrip").glob("*.litellm.yaml"))
SECTIONS = ("router_settings", "litellm_settings", "general_settings")
FALLBACK_KEYS = ("fallbacks", "context_window_fallbacks", "content_policy_fallbacks")
LITERAL_SECRETS = ("sk-literal-key-that-must-not-travel", "sk-1234-literal-master-key")
EXIT_INVALID = 2


def _round_trip(case: Path, tmp_path: Path, *extra: str) -> tuple[dict[str, Any], Path, str]:
    """The generated config, the imported cluster file, and what import said on stderr."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    cluster, generated = tmp_path / "cluster.yaml", tmp_path / "litellm.yaml"
    imported = homelab("gateway", "import", case, "-o", cluster, *extra)
    assert imported.returncode == 0, imported.stderr
    validated = homelab("validate", cluster)
    assert validated.returncode == 0, validated.stderr
    written = homelab("gateway", "config", "-i", cluster, "-o", generated)
    assert written.returncode == 0, written.stderr
    return yaml.safe_load(generated.read_text(encoding="utf-8")), cluster, imported.stderr


def _triples(config: dict[str, Any]) -> set[tuple[str, str | None, str]]:
    """(model_name, api_base, model) of every deployment: what a client's request can reach."""
    out = set()
    for entry in config["model_list"]:
        params = entry["litellm_params"]
        api_base = params.get("api_base")
        out.add((entry["model_name"], api_base.rstrip("/") if api_base else None, params["model"]))
    return out


def _fallbacks(config: dict[str, Any]) -> dict[tuple[str, str], dict[str, list[str]]]:
    """Every fallback list by (section, key), merged into `{model: [next, ...]}`."""
    out: dict[tuple[str, str], dict[str, list[str]]] = {}
    for section in ("router_settings", "litellm_settings"):
        for key in FALLBACK_KEYS:
            merged = {head: tail for entry in config.get(section, {}).get(key) or [] for head, tail in entry.items()}
            if merged:
                out[(section, key)] = merged
    return out


def _kept(value: Any) -> bool:
    """A value the import keeps: anything but a literal secret."""
    return value is None or isinstance(value, bool | int | float) or env_name(value) is not None


@pytest.mark.parametrize("case", CASES, ids=[c.name.removesuffix(".litellm.yaml") for c in CASES])
def test_import_then_config_loses_no_model_name_replica_or_fallback(case: Path, tmp_path: Path) -> None:
    original = yaml.safe_load(case.read_text(encoding="utf-8"))

    generated, _, _ = _round_trip(case, tmp_path)

    assert _triples(generated) == _triples(original)
    assert len(generated["model_list"]) == len(original["model_list"]), "a replica was merged or doubled"
    assert _fallbacks(generated) == _fallbacks(original)


@pytest.mark.parametrize("case", CASES, ids=[c.name.removesuffix(".litellm.yaml") for c in CASES])
def test_every_setting_and_model_parameter_comes_back_as_written(case: Path, tmp_path: Path) -> None:
    original = yaml.safe_load(case.read_text(encoding="utf-8"))

    generated, _, _ = _round_trip(case, tmp_path)

    for section in SECTIONS:
        for key, value in original.get(section, {}).items():
            if key in FALLBACK_KEYS or (is_secret_key(key) and not _kept(value)):
                continue
            got = generated[section][key]
            assert got == (got | value if isinstance(value, dict) else value), f"{section}.{key}"
    by_deployment = {
        (e["model_name"], e["litellm_params"].get("api_base", "").rstrip("/")): e for e in generated["model_list"]
    }
    for entry in original["model_list"]:
        params = entry["litellm_params"]
        twin = by_deployment[(entry["model_name"], params.get("api_base", "").rstrip("/"))]
        for key, value in params.items():
            if key != "api_base" and (not is_secret_key(key) or _kept(value)):
                assert twin["litellm_params"][key] == value, f"{entry['model_name']}: {key}"
        for key, value in (entry.get("model_info") or {}).items():
            assert twin["model_info"][key] == value, f"{entry['model_name']}: model_info.{key}"


def test_replicas_become_one_alias_on_three_endpoints_of_two_nodes(tmp_path: Path) -> None:
    _, cluster, _ = _round_trip(CASES[-1], tmp_path)
    assert CASES[-1].name == "replicas-on-two-hosts.litellm.yaml"

    inv = load_inventory(cluster)

    replicas = inv.replicas("qwen2.5-7b")
    assert [(n.name, e.name) for n, e, _ in replicas] == [
        ("gpu-box", "ollama"),
        ("mini-pc", "llamacpp"),
        ("mini-pc", "openai"),  # 8081 is no llama-server's default: said openai, as before
    ]
    assert [m.gateway.params.get("weight") if m.gateway else None for _, _, m in replicas] == [None, 2, 1]


def test_cloud_entries_wildcards_and_environment_addresses_are_external(tmp_path: Path) -> None:
    cloud = next(c for c in CASES if c.name.startswith("cloud"))
    env = next(c for c in CASES if c.name.startswith("env"))

    _, cloud_cluster, _ = _round_trip(cloud, tmp_path / "cloud")
    _, env_cluster, _ = _round_trip(env, tmp_path / "env")

    external = load_inventory(cloud_cluster).gateway
    assert external is not None
    assert [m.model_name for m in external.external] == [
        "gpt-4o",
        "gpt-4o-mini",
        "claude-3-5-sonnet",
        "gemini-pro",
        "azure-gpt-4o",
        "openrouter/*",
    ]
    kept = load_inventory(env_cluster).gateway
    assert kept is not None and [m.api_base for m in kept.external] == ["os.environ/OLLAMA_API_BASE"]


def test_embedding_models_embed_and_an_only_one_is_the_embed_expert(tmp_path: Path) -> None:
    env = next(c for c in CASES if c.name.startswith("env"))
    only_one = tmp_path / "one.litellm.yaml"
    config = yaml.safe_load(env.read_text(encoding="utf-8"))
    only_one.write_text(yaml.safe_dump(config | {"model_list": config["model_list"][:3]}), encoding="utf-8")

    generated, cluster, stderr = _round_trip(env, tmp_path / "two")
    _, one_cluster, _ = _round_trip(only_one, tmp_path / "one")

    inv = load_inventory(cluster)
    assert inv.experts == {}, "two embedding models need not share a vector space: the owner says which do"
    assert "embedding models embeddings, embeddings-big: list those that share a vector space" in stderr
    assert {c.value: chain for c, chain in load_inventory(one_cluster).experts.items()} == {"embed": ["embeddings"]}
    assert {m.alias: m.capabilities for _, e in inv.endpoints() for m in e.models if m.capabilities} == {
        "embeddings": ["embedding"],
        "embeddings-big": ["embedding"],
    }
    modes = {e["model_name"]: e["model_info"].get("mode") for e in generated["model_list"] if "model_info" in e}
    assert modes["embeddings"] == modes["embeddings-big"] == "embedding"


def test_literal_secrets_are_left_out_and_said_where_and_references_kept(tmp_path: Path) -> None:
    env = next(c for c in CASES if c.name.startswith("env"))

    generated, cluster, stderr = _round_trip(env, tmp_path)

    written = cluster.read_text(encoding="utf-8") + (tmp_path / "litellm.yaml").read_text(encoding="utf-8")
    for secret in LITERAL_SECRETS:
        assert secret not in written and secret not in stderr
    assert "general_settings.master_key: a literal secret, not copied" in stderr
    assert "model_list[3] (embeddings-big): litellm_params.api_key: a literal secret, not copied" in stderr
    assert "# note: general_settings.master_key: a literal secret" in written
    coder = next(e for e in generated["model_list"] if e["model_name"] == "coder")
    assert coder["litellm_params"]["api_key"] == "os.environ/LLAMA_SERVER_KEY"
    assert generated["general_settings"]["master_key"] == "os.environ/LITELLM_MASTER_KEY"


def test_resolve_env_reads_an_address_and_names_the_entry_when_it_is_unset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = next(c for c in CASES if c.name.startswith("env"))
    monkeypatch.delenv("OLLAMA_API_BASE", raising=False)

    unset = homelab("gateway", "import", env, "--resolve-env")
    monkeypatch.setenv("OLLAMA_API_BASE", "http://10.0.0.7:11434")
    monkeypatch.setenv("LLAMA_SERVER_KEY", "sk-from-the-environment")
    generated, cluster, _ = _round_trip(env, tmp_path, "--resolve-env")

    assert unset.returncode == EXIT_INVALID
    assert f"{env}:7: model_list[0] (chat): api_base os.environ/OLLAMA_API_BASE:" in unset.stderr
    assert "OLLAMA_API_BASE is not set" in unset.stderr
    inv = load_inventory(cluster)
    assert [(n.host, e.kind) for n, e, _ in inv.replicas("chat")] == [("10.0.0.7", "ollama")]
    assert ("chat", "http://10.0.0.7:11434", "ollama_chat/mistral-nemo:12b") in _triples(generated)
    assert "sk-from-the-environment" not in cluster.read_text(encoding="utf-8"), "keys are never resolved"
