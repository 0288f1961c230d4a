"""Model shapes from serving runtimes: Ollama's POST /api/show and a running llama-server.

Ollama's `/api/show` returns the GGUF keys as `model_info` and, in recent versions, the tensor
table (`tensors`: name, type, shape); with both the shape is as good as a file's. Without the
tensors (older Ollama, or the stand-in's pulled models) the size comes from
`general.parameter_count` and `details.quantization_level`, and the shape is estimated: on the
architecture's own keys (`llama.block_count`, `.embedding_length`, `.attention.head_count`,
`.feed_forward_length`...) when the node reports them, else on the nearest known family; a
mixture of experts on its released configuration with the expert counts the node reports.
`ask_ollama_nodes` asks every Ollama endpoint of a GPU node about its models without `deploy:`.

llama-server's `/props` names the model file it loaded (`model_path`) and the running context
and slots; `/v1/models` adds the parameter count and file size. When `model_path` is readable
here the file itself is read; otherwise the shape is estimated from those counts.

The parsers are pure. The fetchers talk through homelab's two HTTP boundaries and turn their
failures into `MetadataUnavailable`: Ollama through its connector (`homelab.ollama.api`, whose
errors are `OllamaError`s), llama-server through the probes' bounded GETs (`homelab.health.http`,
whose failures are `Down` reasons). No httpx error is caught here.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field

from homelab.errors import MetadataUnavailable, ModelFileError, OllamaError, UnsupportedModel
from homelab.health.http import DEFAULT_PROBE_LIMITS, Down, Fetcher, target_url
from homelab.inventory import Endpoint, EndpointKind, Inventory, Node, ProbeSettings
from homelab.ollama.api import OllamaAPI
from homelab.vram.architectures import ARCHITECTURES
from homelab.vram.guess import Family, family_of, parameter_count, parse_file_type, shape_from_counts
from homelab.vram.guess_moe import reported_moe
from homelab.vram.lineup import NodeReports
from homelab.vram.metadata import read_gguf, shape_from_fields
from homelab.vram.shape import ModelShape, TensorInfo, tensor_bytes

__all__ = [
    "OpenOllama",
    "ServerModel",
    "ask_ollama_nodes",
    "fetch_llama_server_model",
    "fetch_ollama_shape",
    "server_model_from_llama",
    "shape_from_ollama_show",
]


class ServerModel(BaseModel):
    """What a running llama-server serves, and how it runs it."""

    model_config = ConfigDict(frozen=True)

    shape: ModelShape
    n_ctx_slot: int | None = Field(description="context of one slot (the whole cache when it is unified)")
    parallel: int | None = Field(description="slots (-np)")
    model_path: str | None


def _ollama_tensors(entries: list[dict[str, Any]]) -> list[TensorInfo]:
    """Ollama's tensor list (shape in ggml order) as a table with sizes; offsets are cumulative."""
    out, offset = [], 0
    for entry in entries:
        shape = [int(x) for x in entry["shape"]]
        size = tensor_bytes(str(entry["type"]), shape)
        out.append(
            TensorInfo(
                name=str(entry["name"]), type=str(entry["type"]).upper(), shape=shape, n_bytes=size, offset=offset
            )
        )
        offset += size
    return out


def shape_from_ollama_show(name: str, body: dict[str, Any]) -> ModelShape:
    """A shape from an `/api/show` reply: read when it carries the tensors, estimated otherwise.

    Raises:
        UnsupportedModel: The reply has neither tensors nor a parameter count.
    """
    info = body.get("model_info") or {}
    details = body.get("details") or {}
    tensors = body.get("tensors")
    if tensors and "general.architecture" in info:
        try:
            table = _ollama_tensors(tensors)
        except (KeyError, TypeError, ValueError) as exc:
            raise UnsupportedModel(f"{name}: unreadable tensor list in /api/show: {exc}") from exc
        return shape_from_fields(info, table, name=name, source="ollama")
    params = info.get("general.parameter_count")
    if not params:
        raise UnsupportedModel(f"{name}: /api/show reports no parameter count and no tensors")
    arch = str(info.get("general.architecture") or details.get("family") or "")
    shape = shape_from_counts(
        name,
        params=float(params),
        file_type=parse_file_type(str(details.get("quantization_level") or "")),
        family_name=family_of(arch) or family_of(name),
        family=_reported_family(info, arch, float(params)) or reported_moe(info, arch, float(params)),
        source="ollama",
    )
    per_layer_kv = info.get(f"{arch}.attention.head_count_kv")
    if isinstance(per_layer_kv, list) and len(per_layer_kv) == shape.n_layer:  # verbose: not null
        shape = shape.model_copy(update={"n_head_kv": [int(n) for n in per_layer_kv]})
    # The model's own training context, even on a borrowed configuration: Ollama clamps num_ctx to it.
    if trained := _count(info, f"{arch}.context_length"):
        shape = shape.model_copy(update={"context_length": trained})
    return shape


def _count(info: dict[str, Any], key: str) -> int | None:
    """A positive whole-number key of `model_info`; a per-layer array gives its largest entry."""
    value = info.get(key)
    if isinstance(value, list):
        value = max(value) if value and all(isinstance(v, int) for v in value) else None
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 < value < 1 << 26 else None


def _reported_family(info: dict[str, Any], arch: str, params: float) -> Family | None:
    """The configuration the node reports in `model_info`; None when a key the estimate needs is missing.

    Only for the dense architectures the estimator models whose sliding window (if any) is on every
    other layer, as `shape_from_counts` lays it out: experts or another pattern need the tensors.
    The vocabulary is the token list's length (verbose only: Ollama empties longer arrays without
    it), else `vocab_size`; whether the output shares the embedding is what matches the reported
    parameter count better.
    """
    known = ARCHITECTURES.get(arch)
    if known is None or known.swa_period not in (None, 2) or f"{arch}.expert_count" in info:
        return None
    keys = ("block_count", "embedding_length", "attention.head_count", "feed_forward_length")
    n_layer, n_embd, n_head, n_ff = (_count(info, f"{arch}.{k}") for k in keys)
    tokens = info.get("tokenizer.ggml.tokens")
    n_vocab = (len(tokens) if isinstance(tokens, list) else 0) or _count(info, f"{arch}.vocab_size")
    if not (n_layer and n_embd and n_head and n_ff and n_vocab):
        return None
    head_dim = _count(info, f"{arch}.attention.key_length") or n_embd // n_head
    family = Family(
        arch=arch,
        n_layer=n_layer,
        n_embd=n_embd,
        n_head=n_head,
        n_head_kv=_count(info, f"{arch}.attention.head_count_kv") or n_head,
        head_dim=head_dim,
        n_ff=n_ff,
        n_vocab=n_vocab,
        context_length=_count(info, f"{arch}.context_length") or 4096,
        sliding_window=None
        if known.swa_period is None
        else _count(info, f"{arch}.attention.sliding_window") or known.default_window,
    )
    tied = family._replace(tied=True)
    return min((family, tied), key=lambda f: abs(parameter_count(f) - params))


def server_model_from_llama(props: dict[str, Any], models: dict[str, Any], *, read_local: bool = True) -> ServerModel:
    """A `ServerModel` from llama-server's `/props` and `/v1/models` replies.

    Raises:
        UnsupportedModel: The model file is not readable here and the replies carry no counts.
    """
    path = props.get("model_path")
    settings = props.get("default_generation_settings") or {}
    slots = props.get("total_slots")
    n_ctx = settings.get("n_ctx")
    data = (models.get("data") or [{}])[0]
    meta = data.get("meta") or {}
    name = str(props.get("model_alias") or data.get("id") or path or "llama-server model")
    shape = _local_shape(path, name) if read_local else None
    if shape is None:
        params, size = meta.get("n_params"), meta.get("size")
        if not params:
            raise UnsupportedModel(f"{name}: model file not readable here and /v1/models gives no n_params")
        bits = 8 * float(size) / float(params) if size else None
        file_type = parse_file_type(str(props.get("model_ftype") or "")) or parse_file_type(name)
        shape = shape_from_counts(
            name, params=float(params), file_type=file_type, family_name=family_of(name), source="llama-server"
        )
        if bits:
            shape = _rescaled(shape, bits)
    return ServerModel(shape=shape, n_ctx_slot=n_ctx, parallel=slots, model_path=path)


def _local_shape(path: str | None, name: str) -> ModelShape | None:
    """The served file's own shape when it is readable on this machine (same host, shared disk)."""
    if not path or not os.path.isfile(path):
        return None
    try:
        return read_gguf(path).model_copy(update={"name": name, "source": "llama-server"})
    except ModelFileError:
        return None


def _rescaled(shape: ModelShape, bits_per_weight: float) -> ModelShape:
    """The estimated shape with its tensor bytes scaled to the file's real bits per weight."""
    scale = bits_per_weight * shape.parameter_count / 8 / max(shape.weight_bytes, 1)
    tensors, offset = [], 0
    for t in shape.tensors:
        size = int(t.n_bytes * scale)
        tensors.append(t.model_copy(update={"n_bytes": size, "offset": offset}))
        offset += size
    return shape.model_copy(update={"tensors": tensors})


async def _get_json(fetcher: Fetcher, path: str) -> dict[str, Any]:
    """GET `path` through the probes' bounded fetcher: a JSON object, or `MetadataUnavailable` saying why."""
    where = f"GET {fetcher.base}{path}"
    try:
        answer = await fetcher.get(path)
    except Down as exc:
        raise MetadataUnavailable(f"{where}: {exc.detail}") from exc
    if answer.status != 200:
        raise MetadataUnavailable(f"{where}: HTTP {answer.status}")
    if not isinstance(answer.body, dict):
        raise MetadataUnavailable(f"{where}: the reply is not a JSON object")
    return answer.body


def fetch_ollama_shape(api: OllamaAPI, model: str) -> ModelShape:
    """The shape of `model` as the Ollama behind `api` describes it (verbose `/api/show`).

    Raises:
        MetadataUnavailable: Ollama did not answer, answered with an error, or has no such model.
        UnsupportedModel: The description is not enough to size the model.
    """
    # Verbose (show_body asks for it): without it Ollama shows every GGUF array as null (it decodes
    # them with no room: server/routes.go:1600-1605, fs/ggml/gguf.go:469-482 at v0.33.0-rc2),
    # per-layer head counts and the vocabulary among them.
    try:
        body = api.show_body(model)
    except OllamaError as exc:
        raise MetadataUnavailable(str(exc)) from exc
    if body is None:
        raise MetadataUnavailable(f"{api.where}: show {model}: Ollama has no model {model!r} (HTTP 404)")
    return shape_from_ollama_show(model, body)


OpenOllama = Callable[[Node, Endpoint], AbstractContextManager[OllamaAPI]]
"""Opens the connector to one Ollama endpoint (the caller sets its client and timeouts)."""


def ask_ollama_nodes(inventory: Inventory, open_api: OpenOllama) -> NodeReports:
    """What each Ollama endpoint of a GPU node says about its models without `deploy:`.

    An endpoint that does not answer `/api/version` is not asked about each model: every one of
    them gets that failure as its reason (one wait for a node that is down, not one per model).

    Returns:
        By (node, endpoint, tag): the shape, or why the node gave none.
    """
    reports: dict[tuple[str, str, str], ModelShape | str] = {}
    for node in inventory.nodes:
        for endpoint in node.endpoints if node.gpus else []:
            tags = [m.name for m in endpoint.models if m.deploy is None]
            if endpoint.kind != EndpointKind.OLLAMA or not tags:
                continue
            with open_api(node, endpoint) as api:
                try:
                    api.version()
                except OllamaError as exc:
                    reports |= {(node.name, endpoint.name, tag): f"not reachable: {exc}" for tag in tags}
                    continue
                for tag in tags:
                    reports[(node.name, endpoint.name, tag)] = _asked(api, tag)
    return reports


def _asked(api: OllamaAPI, tag: str) -> ModelShape | str:
    try:
        return fetch_ollama_shape(api, tag)
    except (MetadataUnavailable, UnsupportedModel) as exc:
        return str(exc)


async def fetch_llama_server_model(
    client: httpx.AsyncClient, base_url: str, settings: ProbeSettings | None = None
) -> ServerModel:
    """What the llama-server at `base_url` serves: its model's shape, context and slots.

    Args:
        client: a probe client (`homelab.health.http.open_probe_client`).
        base_url: the server's URL, without an API path.
        settings: timeouts of each GET (the cluster file's probe settings); default the probes' own.

    Raises:
        MetadataUnavailable: The server did not answer either endpoint with a JSON object.
        UnsupportedModel: Neither the file nor the replies are enough to size the model.
    """
    try:
        base = target_url(base_url.rstrip("/"))
    except Down as exc:
        raise MetadataUnavailable(f"{base_url}: {exc.detail}") from exc
    fetcher = Fetcher(client, base, settings or ProbeSettings(), DEFAULT_PROBE_LIMITS)
    props = await _get_json(fetcher, "/props")
    models = await _get_json(fetcher, "/v1/models")
    return server_model_from_llama(props, models)
