"""Shapes from serving runtimes: a real llama-server's /props and /v1/models, and the Ollama stand-in's /api/show."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import httpx
import pytest
from gguf import GGUFReader

from homelab.errors import MetadataUnavailable, UnsupportedModel
from homelab.health.http import open_probe_client
from homelab.ollama.api import OllamaAPI, open_ollama_client
from homelab.ollama.settings import OllamaTimeouts
from homelab.vram.metadata import read_gguf
from homelab.vram.served import (
    fetch_llama_server_model,
    fetch_ollama_shape,
    server_model_from_llama,
    shape_from_ollama_show,
)
from homelab_app.ollama_standin import ModelSpec
from tests.fixtures.llama import LlamaServer
from tests.fixtures.net import LOOPBACK, free_port
from tests.fixtures.ollama import StandInServer

StartStandIn = Callable[[Sequence[ModelSpec]], StandInServer]

QWEN_14B = ModelSpec(
    name="qwen2.5:14b", size=8_988_110_976, family="qwen2", parameter_size="14.8B",
    quantization_level="Q4_K_M", context_length=32768,
)  # fmt: skip


def _same_model(a: object, b: object) -> None:
    fields = ("arch", "n_layer", "n_embd", "n_head", "n_head_kv", "head_dim_k", "n_ff", "n_vocab", "tensors")
    assert [getattr(a, f) for f in fields] == [getattr(b, f) for f in fields]


@pytest.mark.llama
async def test_llama_server_reads_the_file_it_serves(llama_server: Callable[..., LlamaServer], tiny_gguf: Path) -> None:
    server = llama_server(tiny_gguf, alias="vram-props", extra_args=["-np", "2"])
    async with open_probe_client() as client:
        served = await fetch_llama_server_model(client, server.url)

    _same_model(served.shape, read_gguf(tiny_gguf))
    assert (served.shape.name, served.shape.source, served.shape.estimated) == ("vram-props", "llama-server", False)
    assert (served.n_ctx_slot, served.parallel, served.model_path) == (256, 2, str(tiny_gguf))  # -c 512 over 2 slots


@pytest.mark.llama
async def test_llama_server_elsewhere_is_estimated_from_its_counts(
    llama_server: Callable[..., LlamaServer], tiny_gguf: Path
) -> None:
    server = llama_server(tiny_gguf, alias="vram-remote")
    async with httpx.AsyncClient(timeout=5) as client:
        props = (await client.get(f"{server.url}/props")).json()
        models = (await client.get(f"{server.url}/v1/models")).json()
    meta = models["data"][0]["meta"]

    served = server_model_from_llama(props, models, read_local=False)  # as if the file were on another machine

    assert (served.shape.estimated, served.shape.source) == (True, "llama-server")
    assert served.shape.parameter_count == meta["n_params"]
    assert served.shape.weight_bytes == pytest.approx(meta["size"], rel=0.01)


async def test_unreachable_server_is_metadata_unavailable() -> None:
    url = f"http://{LOOPBACK}:{free_port()}"
    async with open_probe_client() as client:
        with pytest.raises(MetadataUnavailable, match=rf"GET {url}/props: connection refused"):
            await fetch_llama_server_model(client, url)


async def test_ollama_show_without_tensors_is_estimated(ollama_standin_factory: StartStandIn) -> None:
    server = ollama_standin_factory([QWEN_14B])
    with open_ollama_client(server.url, OllamaTimeouts()) as client:
        shape = fetch_ollama_shape(OllamaAPI(client, "gpu1/ollama"), "qwen2.5:14b")

    assert (shape.source, shape.estimated, shape.arch, shape.n_layer) == ("ollama", True, "qwen2", 48)
    assert (shape.file_type, shape.parameter_count) == ("Q4_K_M", 14_800_000_000)
    assert shape.weight_bytes == pytest.approx(QWEN_14B.size, rel=0.02)


async def test_ollama_keys_shape_the_estimate_and_per_layer_ones_need_verbose(
    ollama_standin_factory: StartStandIn,
) -> None:
    kv_heads = [8] * 20 + [4] * 10
    keys = {"qwen2.block_count": 30, "qwen2.embedding_length": 5120, "qwen2.attention.head_count": 40,
            "qwen2.attention.head_count_kv": kv_heads, "qwen2.feed_forward_length": 13824}  # fmt: skip
    spec = QWEN_14B.model_copy(update={"gguf_keys": keys, "n_vocab": 1000, "parameter_size": "9.3B"})
    server = ollama_standin_factory([spec])
    plain = httpx.post(f"{server.url}/api/show", json={"model": "qwen2.5:14b"}, timeout=10).json()["model_info"]
    with open_ollama_client(server.url, OllamaTimeouts()) as client:
        shape = fetch_ollama_shape(OllamaAPI(client, "gpu1/ollama"), "qwen2.5:14b")

    assert plain["qwen2.attention.head_count_kv"] is None and plain["tokenizer.ggml.tokens"] is None
    assert plain["qwen2.block_count"] == 30
    assert (shape.n_layer, shape.n_embd, shape.n_ff, shape.n_vocab) == (30, 5120, 13824, 1000)
    assert shape.n_head_kv == kv_heads and (shape.source, shape.estimated) == ("ollama", True)


async def test_ollama_unknown_model_is_metadata_unavailable(ollama_standin_factory: StartStandIn) -> None:
    server = ollama_standin_factory([QWEN_14B])
    api = OllamaAPI(open_ollama_client(server.url, OllamaTimeouts()), "gpu1/ollama")
    with api.client, pytest.raises(MetadataUnavailable, match=r"gpu1/ollama: show llama9:400b: .*no model .*HTTP 404"):
        fetch_ollama_shape(api, "llama9:400b")


async def test_ollama_that_does_not_answer_is_metadata_unavailable() -> None:
    url = f"http://{LOOPBACK}:{free_port()}"
    api = OllamaAPI(open_ollama_client(url, OllamaTimeouts()), "gpu1/ollama")
    with api.client, pytest.raises(MetadataUnavailable, match=r"gpu1/ollama: show m: cannot talk to"):
        fetch_ollama_shape(api, "m")


def test_ollama_show_with_tensors_is_as_good_as_the_file(tmp_path: Path, tiny_gguf: Path) -> None:
    # Recent Ollama returns the GGUF keys as model_info and the tensor table; built here from a real file.
    reader = GGUFReader(tiny_gguf)
    info = {k: f.contents() for k, f in reader.fields.items() if not k.startswith(("tokenizer.", "GGUF."))}
    info["tokenizer.ggml.tokens"] = reader.fields["tokenizer.ggml.tokens"].contents()
    tensors = [{"name": t.name, "type": t.tensor_type.name, "shape": [int(x) for x in t.shape]} for t in reader.tensors]
    body = {"model_info": info, "tensors": tensors, "details": {"quantization_level": "F32"}}

    shape = shape_from_ollama_show("tiny:latest", body)

    _same_model(shape.model_copy(update={"tensors": []}), read_gguf(tiny_gguf).model_copy(update={"tensors": []}))
    assert [t.n_bytes for t in shape.tensors] == [t.n_bytes for t in read_gguf(tiny_gguf).tensors]
    assert (shape.source, shape.estimated) == ("ollama", False)


def test_ollama_show_with_nothing_to_size_by() -> None:
    with pytest.raises(UnsupportedModel, match="no parameter count and no tensors"):
        shape_from_ollama_show("bare", {"model_info": {"general.architecture": "llama"}, "details": {}})
