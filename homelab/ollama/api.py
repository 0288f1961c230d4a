"""The connector to one Ollama server: the deployment calls of its HTTP API, over an httpx client.

This is the one place httpx's errors, HTTP error statuses and the `{"error": ...}` lines of
Ollama's NDJSON streams become `OllamaError`s, each naming the node's endpoint and what was
being done. Results are small typed models; parsing stays apart from I/O (`parse_parameters`,
`from_blob`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from pydantic import ConfigDict

from homelab.docker_ops.sources import READ_CHUNK_BYTES, CopyProgress, ProgressCallback
from homelab.errors import OllamaError
from homelab.frozen import Frozen
from homelab.ollama.settings import DEFAULT_OLLAMA_DEPLOY_SETTINGS, OllamaTimeouts

__all__ = ["OllamaAPI", "RunningModel", "ShownModel", "open_ollama_client", "parse_parameters"]

# Go prints a float64 parameter with %#v: 1048576 becomes `1.048576e+06` (server/routes.go:1503-1506
# at v0.33.0-rc2, `ShowHandler`).
_GO_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")
_MAX_PARAMETER_LINES = 1000  # a model has a few dozen parameters; bound what is read


class ShownModel(Frozen):
    """What `/api/show` says a model was made with (its template is not read: 0.30+ may show the GGUF's Jinja one)."""

    parameters: dict[str, str]
    license: str = ""
    capabilities: tuple[str, ...] = ()


class RunningModel(Frozen):
    """A loaded model as `/api/ps` lists it."""

    # Read from Ollama's answer, whose other fields (digest, details, ...) are not read here.
    model_config = ConfigDict(extra="ignore")

    name: str
    size: int
    size_vram: int
    context_length: int | None = None
    expires_at: str | None = None


def _go_value(value: str) -> str:
    """A printed parameter value: strings unquoted, whole Go floats (`1.048576e+06`) as integers."""
    if value.startswith('"'):
        try:
            return str(json.loads(value))
        except ValueError:
            return value
    if _GO_NUMBER.fullmatch(value) and (number := float(value)).is_integer() and abs(number) < 2**63:
        return str(int(number))
    return value


def parse_parameters(text: str) -> dict[str, str]:
    """`/api/show`'s `parameters` text (`num_ctx    8192` per line) as a mapping; strings unquoted."""
    found: dict[str, str] = {}
    for line in text.splitlines()[:_MAX_PARAMETER_LINES]:
        key, _, value = line.strip().partition(" ")
        if key:
            found[key] = _go_value(value.strip())
    return found


def open_ollama_client(url: str, timeouts: OllamaTimeouts) -> httpx.Client:
    """An httpx client for one Ollama server; quick calls get `read_s`, streams set their own."""
    return httpx.Client(base_url=url, timeout=httpx.Timeout(timeouts.read_s, connect=timeouts.connect_s))


def _error_text(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:300] or response.reason_phrase
    return str(body.get("error", body)) if isinstance(body, dict) else str(body)


class OllamaAPI:
    """Deployment calls to one Ollama server; `where` (node/endpoint) starts every error message."""

    def __init__(
        self, client: httpx.Client, where: str, timeouts: OllamaTimeouts = DEFAULT_OLLAMA_DEPLOY_SETTINGS.timeouts
    ) -> None:
        self.client = client
        self.where = where
        self.timeouts = timeouts

    @contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        """Translate transport failures into an `OllamaError` naming the server and the call."""
        try:
            yield
        except httpx.TimeoutException as exc:
            raise OllamaError(f"{self.where}: {what}: no answer in time from {self.client.base_url} ({exc})") from exc
        except httpx.TransportError as exc:
            raise OllamaError(f"{self.where}: {what}: cannot talk to {self.client.base_url}: {exc}") from exc

    def _checked(self, response: httpx.Response, what: str, ok: tuple[int, ...] = (200,)) -> httpx.Response:
        if response.status_code not in ok:
            raise OllamaError(f"{self.where}: {what}: HTTP {response.status_code}: {_error_text(response)}")
        return response

    def _stream(
        self, what: str, body: dict[str, Any], path: str, on_line: Callable[[dict[str, Any]], None]
    ) -> list[str]:
        """POST a call that answers with NDJSON progress; its statuses, or the error a line gives."""
        timeout = httpx.Timeout(self.timeouts.stream_gap_s, connect=self.timeouts.connect_s)
        statuses: list[str] = []
        with self._errors(what), self.client.stream("POST", path, json=body, timeout=timeout) as response:
            if response.status_code != 200:
                response.read()
                self._checked(response, what)
            for raw in response.iter_lines():
                if not raw.strip():
                    continue
                try:
                    line = json.loads(raw)
                except ValueError:
                    raise OllamaError(f"{self.where}: {what}: not a JSON progress line: {raw[:200]!r}") from None
                if "error" in line:
                    raise OllamaError(f"{self.where}: {what}: {line['error']}")
                statuses.append(str(line.get("status", "")))
                on_line(line)
        if not statuses or statuses[-1] != "success":
            raise OllamaError(f"{self.where}: {what}: the stream ended without success (last: {statuses[-1:]})")
        return statuses

    def blob_exists(self, digest: str) -> bool:
        what = f"check blob {digest[:19]}"
        with self._errors(what):
            response = self.client.head(f"/api/blobs/{digest}")
        return self._checked(response, what, (200, 404)).status_code == 200

    def upload_blob(self, path: Path, digest: str, progress: ProgressCallback | None = None) -> int:
        """Stream a local file as the blob `digest` (never whole in memory); the bytes sent.

        Raises:
            OllamaError: the file cannot be read, the server is unreachable, or it refused the
                upload (a digest mismatch: the file changed since it was hashed).
        """
        what = f"upload {path.name}"
        try:
            total = path.stat().st_size
        except OSError as exc:
            raise OllamaError(f"{self.where}: {what}: cannot read {path}: {exc.strerror or exc}") from exc
        sent = 0

        def chunks() -> Iterator[bytes]:
            nonlocal sent
            with path.open("rb", buffering=0) as file:
                while chunk := file.read(READ_CHUNK_BYTES):
                    sent += len(chunk)
                    if progress is not None:
                        progress(CopyProgress(file=path.name, phase="upload", done_bytes=sent, total_bytes=total))
                    yield chunk

        # An explicit length: httpx then sends the body as it is, not chunked.
        timeout = httpx.Timeout(self.timeouts.stream_gap_s, connect=self.timeouts.connect_s)
        with self._errors(what):
            response = self.client.post(
                f"/api/blobs/{digest}", content=chunks(), headers={"Content-Length": str(total)}, timeout=timeout
            )
        self._checked(response, what, (200, 201))
        return sent

    def show_body(self, model: str) -> dict[str, Any] | None:
        """`/api/show` verbose, as Ollama answers it (None: no such model); 0.30+ leaves the GGUF's
        arrays null without verbose (server/routes.go:1567). `homelab.vram.served` sizes models from it.
        """
        what = f"show {model}"
        with self._errors(what):
            response = self.client.post("/api/show", json={"model": model, "verbose": True})
        if response.status_code == 404:
            return None
        try:
            body = self._checked(response, what).json()
        except ValueError:
            raise OllamaError(f"{self.where}: {what}: the answer is not JSON") from None
        if not isinstance(body, dict):
            raise OllamaError(f"{self.where}: {what}: the answer is not a JSON object")
        return body

    def show(self, model: str) -> ShownModel | None:
        """What `model` was made with (`show_body`); None when the server has no such model."""
        body = self.show_body(model)
        if body is None:
            return None
        capabilities = body.get("capabilities") or []
        return ShownModel(
            parameters=parse_parameters(str(body.get("parameters") or "")),
            license=str(body.get("license") or ""),
            capabilities=tuple(str(c) for c in capabilities[:32]) if isinstance(capabilities, list) else (),
        )

    def version(self) -> str:
        """The server's Ollama version (`/api/version`)."""
        with self._errors("ask its version"):
            response = self.client.get("/api/version")
        return str(self._checked(response, "ask its version").json().get("version", ""))[:64]

    def running(self) -> dict[str, RunningModel]:
        """Loaded models by name (`/api/ps`)."""
        with self._errors("list loaded models"):
            response = self.client.get("/api/ps")
        entries = self._checked(response, "list loaded models").json().get("models") or []
        return {e["name"]: RunningModel.model_validate(e, strict=False) for e in entries}

    def models(self) -> list[str]:
        """Every model the server has (`/api/tags`)."""
        with self._errors("list models"):
            response = self.client.get("/api/tags")
        return [e["name"] for e in self._checked(response, "list models").json().get("models") or []]

    def create(self, body: dict[str, Any]) -> list[str]:
        """`/api/create` with NDJSON progress; the statuses it streamed."""
        return self._stream(f"create {body['model']}", body, "/api/create", lambda line: None)

    def pull(self, tag: str, progress: ProgressCallback | None = None) -> list[str]:
        """`/api/pull` with download progress; the statuses it streamed."""

        def report(line: dict[str, Any]) -> None:
            if progress is not None and "total" in line:
                done, total = int(line.get("completed", 0)), int(line["total"])
                progress(CopyProgress(file=tag, phase="pull", done_bytes=done, total_bytes=total))

        return self._stream(f"pull {tag}", {"model": tag}, "/api/pull", report)

    def load(self, model: str, keep_alive: int | str) -> None:
        """An empty request: Ollama loads the model and answers once it is in memory.

        An embedding model cannot generate (a 400, server/routes.go:466-468 at v0.33.0-rc2), so
        one whose capabilities lack `completion` is loaded by an empty `/api/embed`, which
        loads with the request's keep_alive and embeds nothing (:854-865).
        """
        what = f"load {model}"
        shown = self.show(model)
        embedding = shown is not None and "completion" not in shown.capabilities and "embedding" in shown.capabilities
        path, body = ("/api/embed", {}) if embedding else ("/api/generate", {"stream": False})
        timeout = httpx.Timeout(self.timeouts.load_s, connect=self.timeouts.connect_s)
        with self._errors(what):
            response = self.client.post(path, json={"model": model, "keep_alive": keep_alive, **body}, timeout=timeout)
        self._checked(response, what)

    def unload(self, model: str) -> None:
        what = f"unload {model}"
        with self._errors(what):
            response = self.client.post("/api/generate", json={"model": model, "keep_alive": 0, "stream": False})
        self._checked(response, what, (200, 404))  # a model deleted meanwhile is unloaded too

    def delete(self, model: str) -> None:
        what = f"delete {model}"
        with self._errors(what):
            response = self.client.request("DELETE", "/api/delete", json={"model": model})
        self._checked(response, what)
