"""The stand-in's model management: blobs, create, pull and delete, as Ollama's API documents them.

- `HEAD /api/blobs/sha256:<hex>`: 200 when the blob is there, else 404.
- `POST /api/blobs/sha256:<hex>`: the streamed body becomes the blob; 201, or 200 when it was
  already there (Ollama does not read the body then), 400 when the body has another digest.
- `POST /api/create` `{model, files: {name: digest} | from, parameters, template, license,
  stream}`: a model from one uploaded GGUF (or from another model), NDJSON progress ending in
  `{"status": "success"}`; 400 for a missing blob or a bad request before anything is streamed,
  a 400 `template error: ...` line for a template Go cannot parse. As 0.30+ (`versions.py`) the
  GGUF is rewritten into a new blob. Re-creating a loaded model unloads it: Ollama would
  reload it with the new parameters on its next use.
- `POST /api/pull` `{model, stream}`: from `StandInOptions.registry`; without one, the stream
  says `pulling manifest` and ends in the error Ollama gives when it reaches no registry.
- `DELETE /api/delete` `{model}`: 200, or 404 for an unknown model.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gguf import GGUFReader, LlamaFileType
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from homelab.go_syntax import go_template_problem
from homelab_app.ollama_standin.blobs import valid_digest
from homelab_app.ollama_standin.models import ModelSpec, full_name
from homelab_app.ollama_standin.replies import Line, error, model_request, progress
from homelab_app.ollama_standin.state import StandInState, UploadRecord

__all__ = ["ModelAdmin", "gguf_model_data", "human_number", "shown_model_info"]

log = logging.getLogger(__name__)

_PULL_CHUNKS = 4  # progress lines per pulled blob


def _strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def human_number(n: int) -> str:
    """A parameter count as Ollama prints it: '7.6B', '494.03M', '98K'."""
    for scale, suffix, digits in ((10**9, "B", 1), (10**6, "M", 2), (10**3, "K", 0)):
        if n >= scale:
            return f"{n / scale:.{digits}f}{suffix}"
    return str(n)


def _gguf_capabilities(arch: str, field: Callable[[str], Any]) -> tuple[str, ...]:
    """What Ollama says a model made from one GGUF can do, in its order (server/images.go
    `ggufCapabilities`, :147-185 at v0.33.0-rc2): the chat template's (`tools` when it mentions
    tools or tool_call, :202-204; `thinking` when it has both <think> and </think>, :223-225),
    then `embedding` when the GGUF sets a pooling type, else `completion` (:171-176), then
    `vision` when it has a vision encoder (`{arch}.vision.block_count`, :177-179; keys are read
    under the architecture, fs/gguf/gguf.go:332-335)."""
    found: list[str] = []
    template = field("tokenizer.chat_template")
    if isinstance(template, str) and template:
        if "tools" in template or "tool_call" in template:
            found.append("tools")
        if "<think>" in template and "</think>" in template:
            found.append("thinking")
    found.append("embedding" if field(f"{arch}.pooling_type") is not None else "completion")
    if field(f"{arch}.vision.block_count") is not None:
        found.append("vision")
    return tuple(found)


def _gguf_facts(path: Path) -> dict[str, Any]:
    """Architecture, blocks, context, file type and parameter count from a GGUF's header."""
    reader = GGUFReader(path)

    def field(key: str) -> Any:
        found = reader.fields.get(key)
        return None if found is None else found.contents()

    arch = str(field("general.architecture") or "llama")
    file_type = field("general.file_type")
    quant = (
        LlamaFileType(file_type).name.removeprefix("MOSTLY_").removeprefix("ALL_") if file_type is not None else "F32"
    )
    return {
        "capabilities": _gguf_capabilities(arch, field),
        "family": arch,
        "block_count": int(field(f"{arch}.block_count") or 0),
        "context_length": int(field(f"{arch}.context_length") or 4096),
        "quantization_level": quant,
        "parameter_size": human_number(sum(int(t.n_elements) for t in reader.tensors)),
    }


def shown_model_info(info: dict[str, Any], verbose: bool) -> dict[str, Any]:
    """`model_info` as `/api/show` answers it: without `verbose`, every non-empty array is null.

    Ollama decodes the GGUF with `maxArraySize` 0 unless verbose (server/routes.go:1600-1605 at
    v0.33.0-rc2, the same at v0.12.11 :1185-1190); `newArray` then keeps no values for an array
    of one entry or more (fs/ggml/gguf.go:469-482), and an array without values marshals as
    `null` (:465-467). The loop that would empty arrays of more than 5 entries (server/
    routes.go:1612-1618) never matches: the values are `*array[T]`, not `[]any`. So per-layer
    arrays (KV heads) and the vocabulary need `verbose: true`.
    """
    if verbose:
        return info
    return {key: None if isinstance(value, list) and value else value for key, value in info.items()}


def gguf_model_data(path: Path, verbose: bool) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """`/api/show`'s `model_info` and `tensors` from a GGUF, as Ollama's `getModelData` gives them.

    Arrays as `shown_model_info` says; the name and the chat template are left out (server/
    routes.go:1579-1580 at v0.33.0-rc2); the tensor table is there with or without verbose
    (:1583-1587).
    """
    reader = GGUFReader(path)
    info: dict[str, Any] = {}
    for key, found in reader.fields.items():
        if key.startswith("GGUF.") or key in {"general.name", "tokenizer.chat_template"}:
            continue
        info[key] = found.contents()
    tensors = [{"name": t.name, "type": t.tensor_type.name, "shape": [int(n) for n in t.shape]} for t in reader.tensors]
    return shown_model_info(info, verbose), tensors


class ModelAdmin:
    """Handlers that change which models the stand-in has."""

    def __init__(self, state: StandInState) -> None:
        self.state = state

    def routes(self) -> list[Route]:
        return [
            Route("/api/blobs/{digest}", self.blob, methods=["HEAD", "POST"]),
            Route("/api/create", self.create, methods=["POST"]),
            Route("/api/pull", self.pull, methods=["POST"]),
            Route("/api/delete", self.delete, methods=["DELETE"]),
        ]

    async def blob(self, request: Request) -> Response:
        digest = request.path_params["digest"]
        if valid_digest(digest) is None:
            return error(400, "invalid digest format")
        there = self.state.blobs.has(digest)
        if request.method == "HEAD":
            return Response(status_code=200 if there else 404)
        if there:
            return Response(status_code=200)
        try:
            actual, size = await self.state.blobs.receive(digest, request.stream())
        except ClientDisconnect:
            log.info("upload of %s cut short by the client; nothing kept", digest)
            self.state.uploads.append(UploadRecord(digest=digest, received_bytes=0, status=0))
            return Response(status_code=400)
        if actual != f"sha256:{valid_digest(digest)}":
            self.state.uploads.append(UploadRecord(digest=digest, received_bytes=size, status=400))
            return error(400, f'digest mismatch, expected "{digest}", got "{actual}"')
        self.state.uploads.append(UploadRecord(digest=digest, received_bytes=size, status=201))
        return Response(status_code=201)

    async def create(self, request: Request) -> Response:
        asked = await model_request(request)
        if isinstance(asked, Response):
            return asked
        body, name = asked
        if self.state.options.create_error is not None:
            return error(500, self.state.options.create_error)
        parameters, template, licenses = body.get("parameters") or {}, body.get("template"), body.get("license")
        if not isinstance(parameters, dict) or not (template is None or isinstance(template, str)):
            return error(400, "parameters must be an object and template a string")
        if not (licenses is None or isinstance(licenses, str) or _strings(licenses)):
            return error(400, f"unknown license type: {type(licenses).__name__}")  # server/create.go:864
        files, base = body.get("files"), body.get("from")
        if files:
            made = self._from_files(files)
        elif isinstance(base, str) and base:
            made = self._from_model(base)
        else:
            return error(400, "neither 'from' or 'files' was specified")
        if isinstance(made, Response):
            return made
        lines, spec = made
        # `if r.Template != ""` (server/create.go:828 at v0.33.0-rc2): an empty one keeps the old.
        problem = go_template_problem(template, self.state.behaviour.template_functions) if template else None
        if spec is None or problem is not None:
            # errBadTemplate is a 400 (server/create.go:331), after the layers were streamed.
            bad = [{"error": f"template error: {problem}", "status": 400}] if problem else []
            return progress([*lines, *bad], body.get("stream", True))
        update: dict[str, Any] = {"name": full_name(name), "parameters": spec.parameters | parameters}
        if template:
            update["template"] = template
        if licenses is not None:
            update["license"] = (licenses,) if isinstance(licenses, str) else tuple(licenses)
        spec = spec.model_copy(update=update)
        if parameters:
            lines.append({"status": f"creating new layer sha256:{spec.digest}"})
        return progress([*lines, {"status": "writing manifest"}, lambda: self._commit(spec)], body.get("stream", True))

    def _from_files(self, files: Any) -> tuple[list[Line], ModelSpec | None] | Response:
        if not isinstance(files, dict) or not all(isinstance(d, str) for d in files.values()):
            return error(400, "files must map file names to digests")
        if len(files) != 1:
            return error(400, "the stand-in creates models from exactly one GGUF file")
        [(file_name, digest)] = files.items()
        if valid_digest(digest) is None:
            return error(400, f"invalid digest for {file_name}: invalid digest format")
        if not self.state.blobs.has(digest):
            return error(400, f"blob not found for {file_name} (digest {digest})")
        path = self.state.blobs.path(digest)
        lines: list[Line] = [{"status": "parsing GGUF"}]
        try:
            facts = _gguf_facts(path)
        except (ValueError, KeyError, IndexError, OSError) as exc:
            # Ollama has already streamed "parsing GGUF", so the error is a line of the stream.
            return [*lines, {"error": f"{file_name}: not a readable GGUF file: {exc}"}], None
        lines.append({"status": f"using existing layer {digest}"})
        if self.state.behaviour.rewrites_gguf:
            # 0.30+: llama-quantize COPY writes a new layer (server/create.go:765-767, :1013-1016).
            size = path.stat().st_size
            lines.append({"status": "validating GGUF model", "digest": "0000000000000000000", "total": size})
            digest = self.state.blobs.rewrite(digest)
            lines += [{"status": "verifying conversion"}, {"status": f"creating new layer {digest}"}]
        size = self.state.blobs.path(digest).stat().st_size
        return lines, ModelSpec(name=file_name, size=size, blob=digest, **facts)

    def _from_model(self, base: str) -> tuple[list[Line], ModelSpec | None] | Response:
        found = self.state.find(base)
        if found is None:
            return error(404, f"model '{base}' not found")
        return [{"status": f"using existing layer sha256:{found.digest}"}], found

    def _commit(self, spec: ModelSpec, created: bool = True) -> dict[str, Any]:
        """The manifest is written: the model is there (a loaded one reloads with what it is made of now)."""
        self.state.save(spec)
        self.state.loaded.pop(spec.full_name, None)
        if created:
            self.state.created.append(spec.full_name)
        return {"status": "success"}

    async def pull(self, request: Request) -> Response:
        asked = await model_request(request)
        if isinstance(asked, Response):
            return asked
        body, name = asked
        lines: list[Line] = [{"status": "pulling manifest"}]
        spec = self.state.registry.get(full_name(name))
        if spec is None:
            why = "file does not exist" if self.state.registry else "the stand-in (not Ollama) reaches no registry"
            return progress([*lines, {"error": f"pull model manifest: {why}"}], body.get("stream", True))
        digest = f"sha256:{spec.digest}"
        step = max(spec.size // _PULL_CHUNKS, 1)
        lines += [
            {"status": f"pulling {spec.digest[:12]}", "digest": digest, "total": spec.size, "completed": done}
            for done in [*range(0, spec.size, step), spec.size]
        ]
        lines += [
            {"status": "verifying sha256 digest"},
            {"status": "writing manifest"},
            lambda: self._commit(spec, created=False),
        ]
        return progress(lines, body.get("stream", True))

    async def delete(self, request: Request) -> Response:
        asked = await model_request(request)
        if isinstance(asked, Response):
            return asked
        _body, name = asked
        if self.state.remove(full_name(name)) is None:
            return error(404, f"model '{name}' not found")
        return Response(status_code=200)
