"""Vision discovered on the real llama-server: a tiny model with a tiny projector (`--mmproj`).

Two real servers on the same tiny text model: `coder` alone, `eyes` with `homelab.tiny_mmproj`'s
llava-style projector. Neither name hints at vision, so `vision` can only come from `/props`
(`modalities.vision`); an image request must go to `eyes`, which really decodes and embeds it,
and never to `coder`, which refuses images.
"""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from PIL import Image

from homelab.tiny_mmproj import write_tiny_mmproj
from tests.fixtures.llama import LlamaServer
from tests.fixtures.net import LOOPBACK, free_port

pytestmark = pytest.mark.llama

HOMELAB = Path(sys.executable).with_name("homelab")
PROBE = {"connect_s": 1.0, "total_s": 5.0, "slow_ms": 4000}
PROMPT = "what is in this picture?"


@dataclass(frozen=True)
class Servers:
    coder: LlamaServer
    eyes: LlamaServer


@pytest.fixture(scope="module")
def servers(llama_server: Callable[..., LlamaServer], tiny_gguf: Path, tiny_mmproj: Path) -> Servers:
    coder = llama_server(tiny_gguf, alias="coder")
    eyes = llama_server(tiny_gguf, alias="eyes", extra_args=("--mmproj", str(tiny_mmproj)))
    return Servers(coder, eyes)


def _png_data_url() -> str:
    """A real 16x16 PNG: llama-server decodes the bytes, so a bare PNG signature would not do."""
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), (200, 30, 30)).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _cluster(tmp_path: Path, servers: Servers) -> Path:
    """`coder` first among the vision experts, so only its capabilities can keep it from an image."""
    endpoints = [
        {"name": alias, "kind": "llamacpp", "url": server.url, "models": [{"name": alias, "alias": alias}]}
        for alias, server in (("coder", servers.coder), ("eyes", servers.eyes))
    ]
    cluster = {
        "name": "vision",
        "defaults": {"probe": PROBE},
        "history": {"url": "sqlite:///history.db"},
        "nodes": [{"name": "gpu", "tier": "gpu", "host": LOOPBACK, "endpoints": endpoints}],
        "experts": {"vision": ["coder", "eyes"], "chat": ["coder", "eyes"]},
    }
    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump(cluster, sort_keys=False))
    return path


def _homelab(tmp_path: Path, *args: str | Path) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if k != "HOMELAB_INVENTORY"}
    result = subprocess.run(
        [str(HOMELAB), *map(str, args), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def _chat(server: LlamaServer, image: str) -> httpx.Response:
    parts = [{"type": "text", "text": PROMPT}, {"type": "image_url", "image_url": {"url": image}}]
    body = {"messages": [{"role": "user", "content": parts}], "max_tokens": 4}
    return httpx.post(f"{server.url}/v1/chat/completions", json=body, timeout=60)


def test_the_projector_makes_llama_server_report_vision(servers: Servers) -> None:
    props = {name: httpx.get(f"{s.url}/props", timeout=5).json() for name, s in vars(servers).items()}

    assert props["eyes"]["modalities"]["vision"] is True
    assert props["coder"]["modalities"]["vision"] is False


def test_a_sweep_discovers_vision_only_where_the_projector_is(servers: Servers, tmp_path: Path) -> None:
    report = _homelab(tmp_path, "sweep", "-i", _cluster(tmp_path, servers))

    assert report["capabilities"]["eyes"] == {"have": ["completion", "vision"], "source": "discovered"}
    assert report["capabilities"]["coder"] == {"have": ["completion"], "source": "discovered"}
    assert [e["capabilities"] for e in report["endpoints"]] == [
        {"coder": ["completion"]},
        {"eyes": ["completion", "vision"]},
    ]


def test_an_image_goes_to_the_server_that_takes_images(servers: Servers, tmp_path: Path) -> None:
    image = _png_data_url()

    decision = _homelab(tmp_path, "route", PROMPT, "-i", _cluster(tmp_path, servers), "--ttl", "0", "--image", image)

    assert (decision["category"], decision["needs"], decision["model"]) == ("vision", "vision", "eyes")
    capable = {c["alias"]: c["capable"] for c in decision["candidates"]}
    assert capable == {"coder": False, "eyes": True}, "coder serves and comes first, but cannot take images"
    answered, refused = _chat(servers.eyes, image), _chat(servers.coder, image)
    assert answered.status_code == 200, answered.text
    text_only = httpx.post(
        f"{servers.eyes.url}/v1/chat/completions",
        json={"messages": [{"role": "user", "content": PROMPT}], "max_tokens": 4},
        timeout=60,
    )
    # The projector's 32x32 input in 8x8 patches: the image adds 16 embeddings to the prompt.
    assert answered.json()["usage"]["prompt_tokens"] >= text_only.json()["usage"]["prompt_tokens"] + 16
    assert refused.status_code >= 400 and "image input is not supported" in refused.text


def test_a_projector_for_another_width_is_refused_by_the_real_loader(
    llama_server_bin: Path, tiny_gguf: Path, tmp_path: Path
) -> None:
    narrow = write_tiny_mmproj(tmp_path / "narrow-mmproj.gguf", n_embd_text=32)
    args = ["-m", tiny_gguf, "--mmproj", narrow, "--host", LOOPBACK, "--port", free_port(), "-c", "512", "--offline"]

    result = subprocess.run(
        [str(a) for a in (llama_server_bin, *args)], capture_output=True, text=True, timeout=60, check=False
    )

    assert result.returncode != 0
    assert "mismatch between text model (n_embd = 64) and mmproj (n_embd = 32)" in result.stdout + result.stderr


def test_the_writer_refuses_shapes_clip_cpp_would_misread(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="n_ff"):
        write_tiny_mmproj(tmp_path / "swapped.gguf", n_embd=32, n_ff=32)
    with pytest.raises(ValueError, match="patch_size"):
        write_tiny_mmproj(tmp_path / "ragged.gguf", image_size=30, patch_size=8)
