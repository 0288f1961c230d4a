"""The cluster file's schema: pydantic models of nodes, endpoints, models, experts, secrets.

Nodes sit in tiers and serve endpoints; endpoints serve models under cluster-wide aliases;
experts map request categories to ordered aliases; secrets are referenced by name, never
stored here. Single fields validate here; `load.py` adds the cross-references.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterator
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictFloat,
    StrictInt,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

from homelab.alerts.settings import Notify
from homelab.go_syntax import go_duration_s, go_template_problem, jinja_problem
from homelab.inventory.gateway import ExternalModel, GatewaySettings, ModelGateway
from homelab.inventory.values import (
    check_command,
    check_database_url,
    check_docker_url,
    check_file_name,
    check_host,
    check_http_url,
    split_api_path,
    url_port,
)
from homelab.sources.spec import SourceSpec, file_name_of
from homelab.vram.run_args import parse_run_args

__all__ = [
    "ALIAS_PATTERN",
    "ALIAS_RULE",
    "GPU",
    "NAME_PATTERN",
    "NAME_RULE",
    "OWNED_FLAGS",
    "PLANNED_FLAGS",
    "Capability",
    "Category",
    "Container",
    "Defaults",
    "DockerSettings",
    "Endpoint",
    "EndpointKind",
    "FitPreference",
    "FitSettings",
    "Gateway",
    "History",
    "Inventory",
    "KvCacheType",
    "Metrics",
    "Node",
    "OllamaDeploy",
    "ProbeOverride",
    "ProbeSettings",
    "RestartPolicy",
    "SSHSettings",
    "SecretRef",
    "ServedModel",
    "VaultRef",
    "Wake",
    "flag_values",
]

NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]*$"
NAME_RULE = "lower-case letters, digits, '-' and '_'; starts with a letter or digit"
ALIAS_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]*$"
ALIAS_RULE = "letters, digits, '.', '_', ':' and '-'; starts with a letter or digit"
Name = Annotated[
    str,
    StringConstraints(pattern=NAME_PATTERN, max_length=63),
    Field(description=NAME_RULE),
]
Alias = Annotated[
    str,
    StringConstraints(pattern=ALIAS_PATTERN, max_length=128),
    Field(description="cluster-wide model handle used by experts and the gateway"),
]
# Numbers are strict: lax pydantic would read `vram_gib: true` as 1 and `port: "22"` as 22.
StrictPositiveInt = Annotated[StrictInt, Field(gt=0)]
StrictNonNegativeInt = Annotated[StrictInt, Field(ge=0)]
Port = Annotated[StrictInt, Field(ge=1, le=65535)]
# And bounded: `.inf`, `.nan` and 1.0e+44 are positive floats to YAML, and a sweep with such a
# timeout never ends. Each bound is far above any real value and says so in the schema.
Seconds = Annotated[StrictFloat, Field(gt=0, le=3600, description="seconds, at most an hour")]
Milliseconds = Annotated[StrictInt, Field(gt=0, le=3_600_000, description="milliseconds, at most an hour")]
GiB = Annotated[StrictFloat, Field(gt=0, le=4096, description="GiB, at most 4096")]
ContextTokens = Annotated[StrictInt, Field(gt=0, le=16_777_216, description="tokens, at most 2^24")]
Layers = Annotated[StrictInt, Field(ge=0, le=1000, description="model layers, at most 1000")]


class Category(StrEnum):
    """What a request is for; experts are chosen per category."""

    CODE = "code"
    REASON = "reason"
    CHAT = "chat"
    VISION = "vision"
    FAST = "fast"
    EMBED = "embed"


class Capability(StrEnum):
    """What a served model can do; a request needs one (see `homelab.inventory.capabilities`)."""

    COMPLETION = "completion"
    VISION = "vision"
    EMBEDDING = "embedding"
    TOOLS = "tools"
    REASONING = "reasoning"


class EndpointKind(StrEnum):
    """The server software behind an endpoint; it decides how the endpoint is probed."""

    OLLAMA = "ollama"
    LLAMACPP = "llamacpp"
    LITELLM = "litellm"
    OPENAI = "openai"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ProbeSettings(_Strict):
    """How an endpoint is probed: timeouts in seconds, the slow threshold in milliseconds."""

    connect_s: Seconds = 2.0
    total_s: Seconds = 5.0
    slow_ms: Milliseconds = 2000

    @model_validator(mode="after")
    def _connect_within_total(self) -> ProbeSettings:
        if self.connect_s > self.total_s:
            raise ValueError(f"connect_s ({self.connect_s}) must not exceed total_s ({self.total_s})")
        return self


class ProbeOverride(_Strict):
    """Per-endpoint changes to the cluster's probe defaults; unset fields inherit."""

    connect_s: Seconds | None = None
    total_s: Seconds | None = None
    slow_ms: Milliseconds | None = None


def _name_from_source(data: dict[str, object], field: str) -> dict[str, object]:
    """`field` (a file name) taken from the `source` when the cluster file leaves it unset."""
    source = data.get("source")
    url = source.get("url") if isinstance(source, dict) else source
    if data.get(field) is not None or not isinstance(url, str) or not (name := file_name_of(url)):
        return data  # a source without a usable name: the schema reports what is missing
    return {**data, field: name}


def _file_name_in(where: str) -> Callable[[str], str]:
    return lambda value: check_file_name(value, where)


_plain_file_name = _file_name_in("inside the volume")


def _keep_alive(value: int | str) -> int | str:
    """Ollama's keep_alive: a number of seconds (negative: forever), or a Go duration string.

    In the string every number needs a unit ("30m", "1h30m", "-1s"): Ollama answers "300" with
    a 400 (see `homelab.go_syntax`).
    """
    if isinstance(value, str):
        try:
            go_duration_s(value)
        except ValueError as exc:
            bare = "missing unit" in str(exc)
            unit = " (a number in quotes needs a unit: '300s', or write it unquoted)" if bare else ""
            raise ValueError(
                f"must be seconds or a duration like '30m' or '1h30m' (negative: forever), got {value!r}{unit}"
            ) from None
    if not re.search(r"[1-9]", str(value)):
        raise ValueError(f"{value!r} would unload the model right after preloading it; give a duration or -1")
    return value


def _go_template(value: str) -> str:
    """Ollama refuses a template Go cannot parse; Jinja pasted from a model card is the usual one."""
    problem = jinja_problem(value) or go_template_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


class OllamaDeploy(_Strict):
    """How homelab puts a model on an Ollama endpoint: created from a GGUF file, or pulled.

    The GGUF is found by name in the rollout's `--models-dir` (or fetched from `source`, whose
    file name it takes when `gguf` is unset), uploaded as a blob and made into the model `name`
    with these parameters; `pull` fetches a registry tag instead (the node must reach the
    registry) and `name` is made from it with the same parameters.
    """

    gguf: Annotated[str, Field(min_length=1), AfterValidator(_file_name_in("in the models folder"))] | None = Field(
        None, description="GGUF file name, looked up in the rollout's models folder"
    )
    pull: str | None = Field(None, min_length=1, description="registry tag to pull, e.g. 'qwen2.5:14b'")
    source: SourceSpec | None = Field(None, description="where the GGUF comes from: a path, https:// or hf://")
    num_ctx: ContextTokens = 4096
    num_gpu: Layers | None = Field(None, description="layers on the GPU; unset: from the VRAM plan")
    # Never empty: Ollama ignores `template: ""` and keeps the GGUF's (server/create.go line 828).
    template: Annotated[str, Field(min_length=1), AfterValidator(_go_template)] | None = Field(
        None, description="Go template of the prompt; unset: the one in the GGUF"
    )
    keep_alive: Annotated[StrictInt | str, AfterValidator(_keep_alive)] = Field(
        -1, description="how long a preloaded model stays: seconds or '30m'; negative (default): until unloaded"
    )

    @model_validator(mode="before")
    @classmethod
    def _gguf_from_source(cls, data: object) -> object:
        return _name_from_source(data, "gguf") if isinstance(data, dict) and data.get("pull") is None else data

    @model_validator(mode="after")
    def _one_source(self) -> OllamaDeploy:
        if (self.gguf is None) == (self.pull is None):
            raise ValueError("give exactly one of gguf (a file to upload) or pull (a registry tag)")
        if self.source is not None and self.pull is not None:
            raise ValueError("source is where a gguf comes from; a pulled tag comes from the registry")
        if self.source is not None and len(self.source.part_names()) > 1:
            raise ValueError(
                "source: Ollama creates a model from one GGUF file; merge the parts (llama-gguf-split --merge) "
                "or serve the split model from a llama.cpp container"
            )
        return self


class ServedModel(_Strict):
    """A model as one endpoint serves it."""

    name: str = Field(min_length=1, description="the backend's own name: an Ollama tag or a llama.cpp alias")
    alias: Alias
    deploy: OllamaDeploy | None = Field(None, description="ollama endpoints: how a rollout puts the model there")
    capabilities: Annotated[list[Capability], Field(min_length=1, max_length=len(Capability))] | None = Field(
        None, description="what the model can do; unset: discovered by the sweep, else hinted by its name"
    )
    gateway: ModelGateway | None = Field(
        None, description="its entry at the LiteLLM gateway: model_name, more litellm_params and model_info"
    )


RestartPolicy = Literal["no", "unless-stopped", "always", "on-failure"]
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
_MAX_WORDS = 64
_MAX_WORD_CHARS = 1024


def _no_nul(word: str) -> str:
    # The engine passes argv and entrypoint to execve, which ends a C string at the first NUL.
    at = word.find("\x00")
    if at >= 0:
        raise ValueError(f"holds a NUL character at position {at}")
    return word


Word = Annotated[str, StringConstraints(min_length=1, max_length=_MAX_WORD_CHARS), AfterValidator(_no_nul)]
Words = Annotated[list[Word], Field(max_length=_MAX_WORDS)]
# llama-server options homelab writes from the container section; `args` may not repeat them.
OWNED_FLAGS = {
    "-m": "model_file",
    "--model": "model_file",
    "--host": "the endpoint URL",
    "--port": "container_port",
    "--alias": "the endpoint's model name",
    "-a": "the endpoint's model name",
}
# Options the VRAM plan reads, by field: a value in `args` or `command` is the one the plan uses.
PLANNED_FLAGS = {
    "ctx_size": ("-c", "--ctx-size"),
    "gpu_layers": ("-ngl", "--gpu-layers", "--n-gpu-layers"),
    "parallel": ("-np", "--parallel"),
}


def _env(value: dict[str, str]) -> dict[str, str]:
    if len(value) > _MAX_WORDS:
        raise ValueError(f"has {len(value)} variables; at most {_MAX_WORDS}")
    for name, text in value.items():
        if not _ENV_NAME.fullmatch(name):
            raise ValueError(f"{name[:80]!r} is not a variable name (letters, digits, '_'; not starting with a digit)")
        if len(text) > _MAX_WORD_CHARS or "\x00" in text:
            raise ValueError(f"{name}: the value is longer than {_MAX_WORD_CHARS} characters or holds a NUL")
    return value


def flag_values(words: list[str], flags: tuple[str, ...]) -> list[str]:
    """Every value given to one of `flags` in a llama-server command line (`-c 8192`, `--ctx-size=8192`)."""
    values = []
    for index, word in enumerate(words):
        name, equals, inline = word.partition("=")
        if name in flags:
            if equals:
                values.append(inline)
            elif index + 1 < len(words):
                values.append(words[index + 1])
            else:
                values.append("")
    return values


class Container(_Strict):
    """A llama.cpp server container that backs a `llamacpp` endpoint (host port from its URL).

    By default homelab writes llama-server's command line (`-m`, `--host`, `--port`, `-c`, `-np`,
    `-ngl`, `--alias`) and `args` adds to it. An image with its own start script (say, one that
    reads `MODEL_PATH` and listens on 8000) takes `command: []` (the image's own), `env` and
    `container_port`. A `-c`, `-ngl` or `-np` in `args` or `command` is the value the VRAM plan
    uses; giving it there and in `ctx_size`/`gpu_layers`/`parallel` with another value is an error.
    """

    image: str = Field(min_length=1, max_length=_MAX_WORD_CHARS)
    model_file: Annotated[str, Field(min_length=1), AfterValidator(_plain_file_name)] = Field(
        description="the file's name in the volume; unset: the source's file name"
    )
    source: SourceSpec | None = Field(None, description="where the file comes from: a path, https:// or hf://")
    volume: Name = "models"
    ctx_size: ContextTokens = 4096
    gpu_layers: Layers | None = Field(None, description="layers on the GPU; unset: from the VRAM plan")
    parallel: StrictPositiveInt = Field(1, le=256)
    start_order: StrictInt = Field(0, ge=-1000, le=1000, description="lower starts first; ties keep file order")
    container_port: Port = Field(8080, description="where the server listens inside the container")
    env: Annotated[dict[str, str], AfterValidator(_env)] = Field(
        default_factory=dict, description="environment of the container (visible to `docker inspect`: no secrets)"
    )
    args: Words = Field(default_factory=list, description="extra llama-server options, after homelab's own")
    command: Words | None = Field(
        None, description="replaces homelab's llama-server arguments; [] keeps the image's own command"
    )
    entrypoint: Words | None = Field(None, description="replaces the image's entrypoint")
    restart_policy: RestartPolicy | None = Field(
        None,
        description="the engine's restart policy; unset: 'no' on a node with GPUs (homelab starts them one "
        "at a time after a reboot), 'unless-stopped' elsewhere",
    )
    gpus: Annotated[list[Annotated[StrictInt, Field(ge=0, le=255)]], Field(min_length=1, max_length=64)] | None = Field(
        None, description="CUDA indexes of the node's GPUs the container gets; unset: all of them"
    )

    @model_validator(mode="before")
    @classmethod
    def _file_from_source(cls, data: object) -> object:
        return _name_from_source(data, "model_file") if isinstance(data, dict) else data

    @model_validator(mode="after")
    def _split_by_name(self) -> Container:
        # llama.cpp opens a split's other parts by name beside the first (llama_split_prefix).
        if self.source is not None and len(parts := self.source.part_names()) > 1 and self.model_file != parts[0]:
            raise ValueError(f"model_file must be {parts[0]!r}: llama.cpp finds a split's parts by their names")
        return self

    @model_validator(mode="before")
    @classmethod
    def _planned_from_words(cls, data: object) -> object:
        """A `-c`/`-ngl`/`-np` in the words fills its field, or conflicts with the field's own value."""
        if not isinstance(data, dict):
            return data
        words = data.get("command") if data.get("command") is not None else data.get("args")
        if not isinstance(words, list) or len(words) > _MAX_WORDS or not all(isinstance(w, str) for w in words):
            return data  # the schema reports it, on the field's own line
        if data.get("command") is not None and data.get("args"):
            raise ValueError("give args (added to homelab's command line) or command (replacing it), not both")
        if data.get("command") is None:
            for word in words:
                if (owner := OWNED_FLAGS.get(word.partition("=")[0])) is not None:
                    raise ValueError(f"args: {word.partition('=')[0]} is set by homelab from {owner}; remove it")
        data = dict(data)
        for field, flags in PLANNED_FLAGS.items():
            values = set(flag_values(words, flags))
            if not values:
                continue
            where = "command" if data.get("command") is not None else "args"
            if len(values) > 1:
                raise ValueError(f"{where} gives {flags[0]} more than once with different values: {sorted(values)}")
            (text,) = values
            try:
                number = int(text)
            except ValueError:
                raise ValueError(f"{where}: {flags[0]} needs a whole number, got {text!r}") from None
            if field in data and data[field] != number:
                raise ValueError(f"{where} sets {flags[0]} {number} but {field} is {data[field]!r}; give it once")
            data[field] = number
        try:
            parse_run_args(words)  # the memory flags the VRAM plan reads (--n-cpu-moe, -ot, -ts...)
        except ValueError as exc:
            raise ValueError(f"{'command' if data.get('command') is not None else 'args'}: {exc}") from None
        return data


HttpURL = Annotated[str, AfterValidator(check_http_url)]


class Endpoint(_Strict):
    """One server on a node that answers over HTTP.

    `url` is the server's base: an API path copied with it (`/v1`, `/api/tags`, `/health`; see
    `values.KNOWN_API_PATHS`) is dropped, because probes and the gateway add their own.
    """

    name: Name
    kind: EndpointKind
    url: HttpURL = Field(description="the server's base URL, a path prefix included; a known API path is dropped")
    probe: ProbeOverride | None = None
    models: list[ServedModel] = []
    container: Container | None = None

    @field_validator("url")
    @classmethod
    def _base_url(cls, url: str, info: ValidationInfo) -> str:
        kind = info.data.get("kind")  # absent when the kind is invalid: the schema reports that
        return url if kind is None else split_api_path(kind.value, url)[0]

    @property
    def port(self) -> int:
        return url_port(self.url)


class SSHSettings(_Strict):
    """How to reach a node's shell. Host keys are always verified."""

    user: str = Field(min_length=1)
    port: Port = 22
    key_secret: str | None = Field(None, description="name of a secret holding the private key")
    password_secret: str | None = Field(None, description="name of a secret holding the login/sudo password")
    known_hosts: str = "~/.ssh/known_hosts"
    trust_on_first_use: bool = False


class DockerSettings(_Strict):
    """Where the node's Docker engine answers."""

    url: Annotated[str, AfterValidator(check_docker_url)] = "unix:///var/run/docker.sock"
    restart_command: Annotated[str, AfterValidator(check_command)] | None = Field(
        None, description="run over SSH to restart the engine; unset: the OS default (see homelab.recovery.plan)"
    )


class GPU(_Strict):
    """One GPU of a node."""

    name: str = Field(min_length=1)
    vram_gib: GiB
    index: StrictNonNegativeInt | None = Field(
        None, le=255, description="CUDA device index; defaults to the list position"
    )


def _mac(value: str) -> str:
    if not re.fullmatch(r"[0-9A-Fa-f]{2}([:-][0-9A-Fa-f]{2}){5}", value):
        raise ValueError(f"must be a MAC address like aa:bb:cc:dd:ee:ff, got {value!r}")
    return value.lower().replace("-", ":")


def _ipv4(value: str) -> str:
    try:
        return str(ipaddress.IPv4Address(value))
    except ValueError:
        raise ValueError(f"must be an IPv4 address, got {value!r}") from None


class Wake(_Strict):
    """How to wake a node whose SSH is dead: a Wake-on-LAN packet, or a command."""

    mac: Annotated[str, AfterValidator(_mac)] | None = None
    broadcast: Annotated[str, AfterValidator(_ipv4)] = "255.255.255.255"
    port: Port = 9
    command: Annotated[str, AfterValidator(check_command)] | None = Field(
        None, description="run locally; reads command_secret on stdin"
    )
    command_secret: str | None = None
    command_timeout_s: Seconds = Field(60.0, description="how long the command may run")
    detach: bool = Field(
        False,
        description="the command keeps running (an RDP client): start it, judge the wake by the node "
        "coming up, stop it after command_timeout_s",
    )

    @model_validator(mode="after")
    def _something_to_do(self) -> Wake:
        if self.mac is None and self.command is None:
            raise ValueError("needs a mac (Wake-on-LAN) or a command")
        if self.detach and self.command is None:  # a packet is sent, not left running
            raise ValueError("detach: true is for a command that keeps running (an RDP client); give the command")
        return self


class Node(_Strict):
    """A machine of the cluster."""

    name: Name
    tier: Name
    host: Annotated[str, Field(min_length=1), AfterValidator(check_host)]
    os: Literal["linux", "windows"] = "linux"
    ssh: SSHSettings | None = None
    docker: DockerSettings | None = None
    gpus: list[GPU] = []
    wake: Wake | None = None
    endpoints: list[Endpoint] = []
    ollama_num_parallel: StrictPositiveInt | None = Field(
        None, le=256, description="the node's OLLAMA_NUM_PARALLEL: Ollama runs each model with num_ctx x this"
    )


class VaultRef(_Strict):
    """A key of a KV v2 secret in Vault (or OpenBao)."""

    path: str = Field(min_length=1)
    key: str = Field(min_length=1)
    mount: str = "secret"


class SecretRef(_Strict):
    """Where a secret lives: a Vault path and key, or a Prefect Secret block by name."""

    vault: VaultRef | None = None
    block: str | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> SecretRef:
        if (self.vault is None) == (self.block is None):
            raise ValueError("give exactly one of vault or block")
        return self


class Gateway(_Strict):
    """The LiteLLM proxy in front of the cluster, and what its config keeps that homelab does not manage."""

    endpoint: str | None = Field(
        None, description="NODE/ENDPOINT of a litellm endpoint; unset: the proxy is not probed"
    )
    master_key_secret: str | None = None
    external: list[ExternalModel] = Field(
        default_factory=list, description="model_list entries passed through unchanged (cloud APIs, wildcards)"
    )
    settings: GatewaySettings = GatewaySettings()
    probe_external: bool = Field(False, description="the sweep probes external models that have an api_base")


class History(_Strict):
    """Where sweep results and other history are stored (any SQLAlchemy URL)."""

    url: Annotated[str, AfterValidator(check_database_url)] = "sqlite:///homelab-history.db"


def _listen_address(value: str) -> str:
    """HOST:PORT, an IPv6 host in brackets; the host as `check_host` takes it."""
    host, _, port = value.rpartition(":")
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not bare or not re.fullmatch(r"[0-9]{1,5}", port) or (":" in bare and bare == host):
        raise ValueError(f"must be HOST:PORT, e.g. 127.0.0.1:9464 or [::1]:9464, got {value[:80]!r}")
    if not 1 <= int(port) <= 65535:
        raise ValueError(f"port must be 1 to 65535, got {port}")
    check_host(bare)
    return value


class Metrics(_Strict):
    """`homelab metrics`: where its Prometheus endpoint listens, and how old a VRAM sample may be to be served."""

    listen: Annotated[str, AfterValidator(_listen_address)] = Field(
        "127.0.0.1:9464", description="HOST:PORT of /metrics; loopback unless a Prometheus elsewhere scrapes it"
    )
    vram_max_age_s: Seconds = Field(
        600.0, description="VRAM samples older than this are not served (a node no longer sampled drops out)"
    )

    @property
    def address(self) -> tuple[str, int]:
        """The host (IPv6 without its brackets) and port to bind."""
        host, _, port = self.listen.rpartition(":")
        return host.strip("[]"), int(port)


class Defaults(_Strict):
    """Cluster-wide defaults that endpoints may override."""

    probe: ProbeSettings = ProbeSettings()


FitPreference = Literal["full_gpu", "context", "fewer_cpu_experts", "kv_precision"]
KvCacheType = Literal["f32", "f16", "bf16", "q8_0", "q5_1", "q5_0", "q4_1", "q4_0", "iq4_nl"]
_FIT_ORDER: list[FitPreference] = ["full_gpu", "context", "fewer_cpu_experts", "kv_precision"]


class FitSettings(_Strict):
    """How `homelab plan fit` chooses each model's context, offload, KV cache type and GPU.

    `prefer` ranks a model's choices (criteria left out follow in this default order);
    `kv_types` are the KV cache types it may use, preferred first; `keep` names models it leaves
    as the file sets them; `max_ctx` is the context a model asked for before `plan fit --write`
    lowered its `ctx_size` (Ollama: `num_ctx`), written there so that a later fit can raise it.
    """

    prefer: Annotated[list[FitPreference], Field(min_length=1, max_length=len(_FIT_ORDER))] = _FIT_ORDER
    min_ctx: ContextTokens = Field(4096, description="the smallest context fit gives a model (per sequence)")
    kv_types: Annotated[list[KvCacheType], Field(min_length=1, max_length=9)] = ["f16", "q8_0"]
    flash_attn: bool = Field(True, description="run with -fa on (a quantized V cache needs it)")
    keep: Annotated[list[Alias], Field(max_length=1024)] = []
    max_ctx: Annotated[dict[Alias, ContextTokens], Field(max_length=1024)] = {}

    @model_validator(mode="after")
    def _consistent(self) -> FitSettings:
        for field in ("prefer", "kv_types", "keep"):
            values: list[str] = getattr(self, field)
            if twice := sorted({v for v in values if values.count(v) > 1}):
                raise ValueError(f"{field}: {', '.join(twice)} listed more than once")
        if not self.flash_attn and (quantized := [t for t in self.kv_types if t not in ("f32", "f16", "bf16")]):
            raise ValueError(
                f"kv_types: {', '.join(quantized)} quantize the V cache, which llama.cpp allows only with "
                "flash attention; set flash_attn: true or list only f16"
            )
        return self

    @property
    def order(self) -> list[FitPreference]:
        """`prefer`, then the criteria it leaves out in the default order."""
        return [*self.prefer, *(p for p in _FIT_ORDER if p not in self.prefer)]


class Inventory(_Strict):
    """The whole cluster."""

    version: Literal[1] = 1
    name: str = "homelab"
    defaults: Defaults = Defaults()
    nodes: Annotated[list[Node], Field(min_length=1)]
    experts: dict[Category, Annotated[list[Alias], Field(min_length=1)]] = {}
    gateway: Gateway | None = None
    secrets: dict[Name, SecretRef] = {}
    history: History = History()
    notify: Notify | None = None  # alerts through Prefect notification blocks (homelab.alerts)
    fit: FitSettings | None = Field(None, description="how `homelab plan fit` places the lineup; unset: defaults")
    metrics: Metrics = Metrics()

    def endpoints(self) -> Iterator[tuple[Node, Endpoint]]:
        """Every endpoint with its node, in file order."""
        for node in self.nodes:
            for endpoint in node.endpoints:
                yield node, endpoint

    def tiers(self) -> list[str]:
        """Tier names in the order they first appear."""
        return list(dict.fromkeys(node.tier for node in self.nodes))

    def probe_settings(self, endpoint: Endpoint) -> ProbeSettings:
        """The cluster defaults with the endpoint's overrides applied."""
        if endpoint.probe is None:
            return self.defaults.probe
        changes = endpoint.probe.model_dump(exclude_none=True)
        return ProbeSettings.model_validate(self.defaults.probe.model_dump() | changes)

    def serving(self, alias: str) -> tuple[Node, Endpoint, ServedModel] | None:
        """The first node, endpoint and model entry that serve `alias`, if any."""
        return next(iter(self.replicas(alias)), None)

    def replicas(self, alias: str) -> list[tuple[Node, Endpoint, ServedModel]]:
        """Every node, endpoint and model entry that serve `alias`, in file order (one per endpoint)."""
        return [
            (node, endpoint, model)
            for node, endpoint in self.endpoints()
            for model in endpoint.models
            if model.alias == alias
        ]
