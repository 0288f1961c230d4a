"""The cluster file's cluster-wide sections: probe defaults, secrets, gateway, history, metrics, fit.

Each is one top-level key of `cluster.yaml` (or, for probes, the defaults an endpoint overrides);
the node and endpoint tree that uses them is in `models`.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from homelab.inventory.fields import Alias, ContextTokens, Milliseconds, Seconds
from homelab.inventory.gateway import ExternalModel, GatewaySettings
from homelab.inventory.values import check_database_url, check_host

__all__ = [
    "Defaults",
    "FitPreference",
    "FitSettings",
    "Gateway",
    "History",
    "KvCacheType",
    "Metrics",
    "ProbeOverride",
    "ProbeSettings",
    "SecretRef",
    "VaultRef",
]


# A local pydantic base, not `homelab.frozen.Frozen`: ruff (RUF012) sees a literal `[]`/`{}` default
# as pydantic's copied default only through a base in the same module, and `default_factory` would
# drop those defaults from the schema `homelab schema` prints.
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
