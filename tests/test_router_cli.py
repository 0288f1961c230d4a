"""`homelab route` end to end: the real console script against loopback servers and a SQLite history.

What the user sees is asserted: the explanation, the JSON lines of the evaluation interface
(`--inventory FILE --requests FILE.jsonl --json`: one line per request, in order, with at least
`category` and `model`), bad lines named by number on stderr, and the exit codes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from homelab.history import open_history
from tests.fixtures.fault_servers import FaultServer, Handler, canned, json_route
from tests.fixtures.net import LOOPBACK, free_port

HOMELAB = Path(sys.executable).with_name("homelab")
StartServer = Callable[[Handler], FaultServer]
PROBE = {"connect_s": 1.0, "total_s": 3.0, "slow_ms": 2500}


def _run(*args: str | Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "HOMELAB_INVENTORY"} | {"COLUMNS": "200"}
    return subprocess.run(
        [str(HOMELAB), *map(str, args)], input=stdin, capture_output=True, text=True, timeout=120, env=env, check=False
    )


def _cluster(tmp_path: Path, coder: str, chat: str) -> Path:
    cluster = {
        "name": "route-cli",
        "defaults": {"probe": PROBE},
        "history": {"url": "sqlite:///state/history.db"},
        "nodes": [
            {
                "name": "gpu",
                "tier": "gpu",
                "host": LOOPBACK,
                "endpoints": [
                    {
                        "name": "coder",
                        "kind": "openai",
                        "url": coder,
                        "models": [{"name": "qwen-coder", "alias": "coder"}],
                    }
                ],
            },
            {
                "name": "cpu",
                "tier": "cpu",
                "host": LOOPBACK,
                "endpoints": [
                    {"name": "chat", "kind": "openai", "url": chat, "models": [{"name": "llama-3b", "alias": "chatty"}]}
                ],
            },
        ],
        "experts": {"code": ["coder", "chatty"], "chat": ["chatty"]},
    }
    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump(cluster, sort_keys=False))
    return path


def _openai(name: str) -> Handler:
    return canned({"/v1/models": json_route({"object": "list", "data": [{"id": name}]})})


def _dead() -> str:
    return f"http://{LOOPBACK}:{free_port()}"


def _chat(text: str) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": text}]}


@pytest.fixture(autouse=True)
def _console_script() -> None:
    assert HOMELAB.exists(), f"no homelab console script next to {sys.executable}: pip install -e ."


def test_a_prompt_without_a_cluster_file_is_classified_only() -> None:
    result = _run("route", "write a bash script that rotates my nginx logs every night")
    assert result.returncode == 0, result.stderr
    assert "category  code (" in result.stdout
    assert "no cluster file given (--inventory): classified only" in result.stdout


def test_a_prompt_is_routed_with_an_explanation(tmp_path: Path, fault_server: StartServer) -> None:
    coder, chat = fault_server(_openai("qwen-coder")), fault_server(_openai("llama-3b"))
    inventory = _cluster(tmp_path, coder.url, chat.url)
    result = _run(
        "route", "fix this: TypeError: 'int' object is not iterable in my python loop", "--inventory", inventory
    )
    assert result.returncode == 0, result.stderr
    assert f"model     coder at {coder.url} (gpu/coder)" in result.stdout
    assert "coder is the first code expert and it serves" in result.stdout
    assert "fallbacks chatty" in result.stdout
    assert "candidates, in order" in result.stdout
    with open_history(f"sqlite:///{tmp_path}/state/history.db") as store:
        assert len(store.recent_sweeps()) == 1, "the live sweep is recorded next to the cluster file"


def test_the_json_decision_carries_everything(tmp_path: Path, fault_server: StartServer) -> None:
    inventory = _cluster(tmp_path, _dead(), fault_server(_openai("llama-3b")).url)
    result = _run("route", "Implement a trie in Go with insert and prefix search", "--inventory", inventory, "--json")
    assert result.returncode == 0, result.stderr
    d = json.loads(result.stdout)
    assert (d["category"], d["model"], d["node"], d["endpoint"]) == ("code", "chatty", "cpu", "chat")
    assert d["reason"].startswith("chatty is the first code expert that serves; skipped coder: gpu/coder is DOWN")
    assert d["fallbacks"] == [] and d["health_source"] == "live" and d["health_age_s"] >= 0
    assert 0 < d["confidence"] <= 1 and [c["alias"] for c in d["candidates"]] == ["coder", "chatty"]


def test_no_healthy_model_for_a_prompt_is_exit_3(tmp_path: Path) -> None:
    inventory = _cluster(tmp_path, _dead(), _dead())
    result = _run("route", "hello there", "--inventory", inventory)
    assert result.returncode == 3
    assert "model     none: no model serves: every endpoint is down or unprobed" in result.stdout


def _write_requests(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "requests.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_requests_file_gives_one_json_line_per_request_in_order(tmp_path: Path, fault_server: StartServer) -> None:
    inventory = _cluster(tmp_path, fault_server(_openai("qwen-coder")).url, fault_server(_openai("llama-3b")).url)
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
    requests = [
        {"endpoint": "/v1/chat/completions", "body": _chat("regex that matches a UK postcode")},
        {"endpoint": "/v1/embeddings", "body": {"input": ["a", "b"]}},
        {"endpoint": "/v1/chat/completions", "body": _chat("Write a short poem about spring rain.")},
        {"endpoint": "/v1/chat/completions", "body": {"messages": [{"role": "user", "content": [image]}]}},
    ]
    path = _write_requests(tmp_path, [json.dumps(r) for r in requests])
    result = _run("route", "--inventory", inventory, "--requests", path, "--json")
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(x["line"], x["category"], x["needs"], x["model"]) for x in lines] == [
        (1, "code", "completion", "coder"),
        (2, "embed", "embedding", None),
        (3, "chat", "completion", "chatty"),
        (4, "vision", "vision", None),
    ]
    assert lines[1]["reason"] == (
        "no embed experts are configured; embeddings go only to the embed experts "
        "(another model's vectors live in another space)"
    )
    assert lines[3]["reason"].startswith("no vision experts are configured; no serving model can take vision")


def test_bad_lines_are_reported_by_number_and_the_rest_still_routed(tmp_path: Path) -> None:
    inventory = _cluster(tmp_path, _dead(), _dead())
    huge = "Mar 03 02:14:07 nas kernel: ata3: hard resetting link\n" * 20_000 + "why does my NAS log this?"
    path = _write_requests(
        tmp_path,
        [
            json.dumps({"id": "a", "endpoint": "/v1/chat/completions", "body": _chat("What's the capital of Chile?")}),
            '{"endpoint": "/v1/chat/completions", "body": {',
            "",
            json.dumps({"endpoint": "/v1/chat/completions", "body": {"messages": []}}),
            json.dumps([1, 2, 3]),
            json.dumps(
                {
                    "endpoint": "/v1/chat/completions",
                    "body": {
                        "messages": [
                            {
                                "role": "user",
                                "content": [
                                    {"type": "input_audio", "input_audio": {}},
                                    {"type": "text", "text": "prove that 7 is prime"},
                                ],
                            }
                        ]
                    },
                }
            ),
            json.dumps({"endpoint": "/v1/chat/completions", "body": _chat(huge)}),
        ],
    )
    started = time.perf_counter()
    result = _run("route", "--inventory", inventory, "--requests", path, "--json")
    assert time.perf_counter() - started < 60
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [x["line"] for x in lines] == [1, 2, 4, 5, 6, 7]
    assert (lines[0]["id"], lines[0]["category"], lines[0]["model"]) == ("a", "fast", None)
    assert lines[0]["reason"] == "no model serves: every endpoint is down or unprobed"
    assert lines[1] == {"line": 2, "category": None, "model": None, "error": lines[1]["error"]}
    assert lines[1]["error"].startswith("not valid JSON")
    assert lines[2]["error"] == "body.messages is empty: there is nothing to classify"
    assert lines[3]["error"] == "expected a JSON object, got list"
    assert (lines[4]["category"], lines[5]["category"]) == ("reason", "code")
    assert f"{path}:2: not valid JSON" in result.stderr
    assert f"{path}:4: body.messages is empty" in result.stderr
    assert f"{path}:5: expected a JSON object" in result.stderr


def test_requests_from_stdin_and_as_a_table() -> None:
    line = json.dumps({"endpoint": "/v1/chat/completions", "body": _chat("thanks!")})
    result = _run("route", "--requests", "-", stdin=line + "\nnot json\n")
    assert result.returncode == 0
    assert "fast" in result.stdout and "not valid JSON" in result.stdout
    assert "stdin:2: not valid JSON" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "give a PROMPT or --requests FILE (exactly one)"),
        (("hi", "--requests", "x.jsonl"), "give a PROMPT or --requests FILE (exactly one)"),
        (("--requests", "/nonexistent/requests.jsonl"), "cannot read /nonexistent/requests.jsonl"),
    ],
    ids=["neither", "both", "missing-file"],
)
def test_bad_invocations_exit_2(args: tuple[str, ...], message: str) -> None:
    result = _run("route", *args)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr


def test_an_invalid_cluster_file_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("nodes: []\n")
    result = _run("route", "hi", "--inventory", path)
    assert result.returncode == 2 and "Traceback" not in result.stderr


def test_an_unusable_history_still_routes_on_live_probes(tmp_path: Path, fault_server: StartServer) -> None:
    inventory = _cluster(tmp_path, fault_server(_openai("qwen-coder")).url, _dead())
    (tmp_path / "state").write_text("a file where the history's directory should be")
    result = _run("route", "write a Makefile for a C project", "--inventory", inventory, "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["model"] == "coder"
    assert "routing on live probes only" in result.stderr
