"""The cluster file's schema root: pydantic models of nodes, endpoints, models and experts.

Nodes sit in tiers and serve endpoints; endpoints serve models under cluster-wide aliases;
experts map request categories to ordered aliases; secrets are referenced by name, never
stored here (`settings` holds the cluster-wide sections, `container` the container one).
Single fields validate here; `load.py` adds the cross-references.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    ValidationInfo,
    field_validator,
    model_validator,
)

from homelab.alerts.settings import Notify
from homelab.go_syntax import go_duration_s, go_template_problem, jinja_problem
from homelab.inventory.container import Container
from homelab.inventory.fields import (
    Alias,
    ContextTokens,
    GiB,
    Layers,
    Name,
    Port,
    Seconds,
    StrictNonNegativeInt,
    StrictPositiveInt,
    file_name_in,
    name_from_source,
)
from homelab.inventory.gateway import ModelGateway
from homelab.inventory.settings import (
    Defaults,
    FitSettings,
    Gateway,
    History,
    Metrics,
    ProbeOverride,
    ProbeSettings,
    SecretRef,
)
from homelab.inventory.values import (
    check_command,
    check_docker_url,
    check_host,
    check_http_url,
    split_api_path,
    url_port,
)
from homelab.sources.spec import SourceSpec

__all__ = [
    "GPU",
    "Capability",
    "Category",
    "DockerSettings",
    "Endpoint",
    "EndpointKind",
    "Inventory",
    "Node",
    "OllamaDeploy",
    "SSHSettings",
    "ServedModel",
    "Wake",
]


# A local pydantic base, not `homelab.frozen.Frozen`: ruff (RUF012) sees a literal `[]`/`{}` default
# as pydantic's copied default only through a base in the same module, and `default_factory` would
# drop those defaults from the schema `homelab schema` prints.
class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


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

    gguf: Annotated[str, Field(min_length=1), AfterValidator(file_name_in("in the models folder"))] | None = Field(
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
        return name_from_source(data, "gguf") if isinstance(data, dict) and data.get("pull") is None else data

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
