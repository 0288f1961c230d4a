"""A stand-in for Ollama's HTTP API, for tests and the demo: this is NOT Ollama and runs no model.

No Ollama binary can be had on a machine without internet, yet the probes, the gateway, the
rollout and the demo need something that answers Ollama's documented API faithfully: the same
paths, field names, status codes and NDJSON streaming, so a real client (LiteLLM's
`ollama_chat/` provider, httpx, the probes, the rollout) cannot tell the difference.

It plays one Ollama release (`--ollama-version`, default the newest modelled; `versions.py`
says what differs between 0.12.x and 0.30+, each behaviour with the Ollama source line it
follows). Implemented: GET `/`, `/api/version`, `/api/tags`, `/api/ps`; POST `/api/show`,
`/api/chat`, `/api/generate`, `/api/embed` (`server.py`); HEAD/POST `/api/blobs/:digest`, POST
`/api/create`, `/api/pull`, DELETE `/api/delete` (`manage.py`). Where the stand-in cannot be
Ollama it says so: a GPU's `size_vram` follows a documented rule (`ModelSpec.vram`), a pull
succeeds only for the models of its `registry` option, and `create_error` is a fault for tests.

Run it: `python -m homelab_app.ollama_standin --port 11434 [--ollama-version 0.12.11] [--models-dir DIR]
[--models models.json] [--fail-create MSG]`; a second start on the same `--models-dir` is a restart.
"""

from homelab_app.ollama_standin.models import DEFAULT_MODELS, ModelSpec, parse_keep_alive
from homelab_app.ollama_standin.server import OllamaStandIn, build_app, main, make_server, serve
from homelab_app.ollama_standin.state import LoadRecord, StandInOptions, UploadRecord
from homelab_app.ollama_standin.versions import NEWEST_VERSION, OllamaBehaviour, behaviour

__all__ = [
    "DEFAULT_MODELS",
    "NEWEST_VERSION",
    "LoadRecord",
    "ModelSpec",
    "OllamaBehaviour",
    "OllamaStandIn",
    "StandInOptions",
    "UploadRecord",
    "behaviour",
    "build_app",
    "main",
    "make_server",
    "parse_keep_alive",
    "serve",
]
