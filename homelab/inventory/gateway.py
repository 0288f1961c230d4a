"""What the LiteLLM proxy keeps that homelab does not manage: the cluster file's gateway extras.

A LiteLLM config carries more than homelab derives from its nodes: models of cloud APIs
(`gpt-4o`, `anthropic/...`), wildcards, servers behind an environment reference, the owner's
fallbacks, timeouts and routing strategy, per-model parameters (`rpm`, `weight`). The cluster
file keeps them so `homelab gateway config` passes them into the generated config unchanged:
`ExternalModel` for a whole `model_list` entry, `GatewaySettings` for the three settings
sections, `ModelGateway` for what a served model adds to its own entry.

Secrets are never values here: a key that names one (LiteLLM's own test, below) holds an
`os.environ/NAME` reference, which the proxy resolves from its environment when it loads.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, JsonValue, StringConstraints, field_validator

from homelab.frozen import Frozen
from homelab.redact import redact_url

__all__ = [
    "ENV_PREFIX",
    "HOMELAB_PARAMS",
    "ExternalModel",
    "GatewaySettings",
    "ModelGateway",
    "env_name",
    "is_secret_key",
    "literal_secrets",
    "split_secrets",
]

ENV_PREFIX = "os.environ/"
# What homelab writes into a served model's litellm_params from the endpoint; `params` may not.
HOMELAB_PARAMS = frozenset({"model", "api_base"})
# LiteLLM's own test of a sensitive key (litellm/litellm_core_utils/sensitive_data_masker.py:11-29
# and `is_sensitive_key`, :81-94 in 1.108.7): a `_`/`-` segment of the key is one of these words
# and none is `cost` (`input_cost_per_token` is a price). `database_url` is added: its URL holds
# the database password.
_SECRET_WORDS = frozenset(
    {"password", "secret", "key", "token", "auth", "authorization", "cookie", "credential", "credentials"}
    | {"access", "private", "certificate", "fingerprint", "tenancy"}
)
_NOT_SECRET_WORDS = frozenset({"cost"})
_SECRET_KEYS = frozenset({"database_url"})
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
ModelName = Annotated[
    str,
    StringConstraints(min_length=1, max_length=256, pattern=r"^[^\x00-\x1f\x7f]+$"),
    Field(description="a gateway model name"),
]


def is_secret_key(key: str) -> bool:
    """Whether LiteLLM would treat `key` as holding a secret (see `_SECRET_WORDS`)."""
    segments = set(key.lower().replace("-", "_").split("_"))
    return key.lower() in _SECRET_KEYS or (bool(segments & _SECRET_WORDS) and not segments & _NOT_SECRET_WORDS)


def env_name(value: Any) -> str | None:
    """NAME of an `os.environ/NAME` reference; None for anything else."""
    if isinstance(value, str) and value.startswith(ENV_PREFIX):
        name = value.removeprefix(ENV_PREFIX)
        return name if _ENV_NAME.fullmatch(name) else None
    return None


def split_secrets(data: Any, at: str = "") -> tuple[Any, list[str]]:
    """`data` without the values of secret keys that are not `os.environ/` references, and the
    dotted paths of those left out.

    A flag or a number under such a key (`enable_jwt_auth: true`) is no secret; anything else
    (a string, a service-account mapping) is. So is a URL with user-info under any key
    (`api_base: http://user:password@host`, a cache's `redis://:password@host`).
    """
    if isinstance(data, str) and redact_url(data) != data:
        return None, [at]
    if isinstance(data, list):
        pairs = [split_secrets(item, f"{at}[{i}]") for i, item in enumerate(data)]
        return [kept for kept, _ in pairs], [path for _, paths in pairs for path in paths]
    if not isinstance(data, dict):
        return data, []
    kept: dict[Any, Any] = {}
    dropped: list[str] = []
    for key, value in data.items():
        path = f"{at}.{key}" if at else str(key)
        if isinstance(key, str) and is_secret_key(key):
            if value is None or isinstance(value, bool | int | float) or env_name(value) is not None:
                kept[key] = value
            else:
                dropped.append(path)
        else:
            value, inner = split_secrets(value, path)
            dropped += inner
            if not inner or value is not None:  # a URL left out is left out whole, key and all
                kept[key] = value
    return kept, dropped


def literal_secrets(data: Any) -> list[str]:
    """Dotted paths under `data` where a secret key holds a value, not an `os.environ/` reference."""
    return split_secrets(data)[1]


def _no_literal_secrets(value: dict[str, JsonValue]) -> dict[str, JsonValue]:
    bad = literal_secrets(value)
    if bad:
        raise ValueError(
            f"{', '.join(bad)}: a secret is never written here; give an environment reference "
            f"({ENV_PREFIX}NAME), which the proxy reads when it starts"
        )
    return value


Params = Annotated[dict[str, JsonValue], AfterValidator(_no_literal_secrets)]


class ModelGateway(Frozen):
    """What a served model's entry at the gateway adds to what homelab derives from its endpoint.

    Replicas of one alias (the same alias on several endpoints) are one LiteLLM model group:
    they share `model_name`, and each keeps its own `params` (a `weight`, an `rpm`).
    """

    model_name: ModelName | None = Field(
        None,
        description="the name clients ask the gateway for; unset: TIER/ALIAS (ALIAS for replicas in several tiers)",
    )
    provider: Literal["ollama", "ollama_chat", "openai"] | None = Field(
        None, description="LiteLLM's provider for it; unset: ollama_chat (ollama to embed) or openai, by kind"
    )
    params: Params = Field(
        default_factory=dict, description="more litellm_params (rpm, weight, timeout, api_key: os.environ/NAME)"
    )
    info: Params = Field(default_factory=dict, description="more model_info (base_model, mode, ...)")

    @field_validator("params")
    @classmethod
    def _not_homelabs(cls, value: dict[str, JsonValue]) -> dict[str, JsonValue]:
        owned = sorted(HOMELAB_PARAMS & value.keys())
        if owned:
            raise ValueError(f"{', '.join(owned)} come from the endpoint (its kind and url); remove them here")
        return value


class ExternalModel(Frozen):
    """A `model_list` entry homelab does not manage, passed into the generated config unchanged:
    a cloud API, a wildcard route, a server whose address is an environment reference."""

    model_name: ModelName
    litellm_params: Params
    model_info: Params | None = None

    @field_validator("litellm_params")
    @classmethod
    def _has_model(cls, value: dict[str, JsonValue]) -> dict[str, JsonValue]:
        if not isinstance(value.get("model"), str) or not value["model"]:
            raise ValueError("litellm_params.model is missing")
        return value

    @property
    def provider(self) -> str:
        """The provider prefix of `litellm_params.model` (`openai` for a bare `gpt-4o`)."""
        provider, slash, _ = str(self.litellm_params["model"]).partition("/")
        return provider if slash else "openai"

    @property
    def api_base(self) -> str | None:
        """The entry's api_base as written (a URL or an `os.environ/` reference), if it has one."""
        value = self.litellm_params.get("api_base")
        return value if isinstance(value, str) else None


class GatewaySettings(Frozen):
    """The owner's `router_settings`, `litellm_settings` and `general_settings`, secrets as references.

    `homelab gateway config` starts from its own settings (fallbacks from the experts, hidden
    aliases, `drop_params`, the master key's reference) and lays these over them: the owner's
    value wins, a list of fallbacks is merged by model.
    """

    router_settings: Params = Field(default_factory=dict)
    litellm_settings: Params = Field(default_factory=dict)
    general_settings: Params = Field(default_factory=dict)
