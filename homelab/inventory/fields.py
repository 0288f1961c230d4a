"""The cluster file's shared field types: names, aliases and bounded numbers, and file names.

The node tree (`models`), the container section (`container`) and the cluster-wide sections
(`settings`) build their fields from these, so a bound or a rule is written once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from pydantic import Field, StrictFloat, StrictInt, StringConstraints

from homelab.inventory.values import check_file_name
from homelab.sources.spec import file_name_of

__all__ = [
    "ALIAS_PATTERN",
    "ALIAS_RULE",
    "NAME_PATTERN",
    "NAME_RULE",
    "Alias",
    "ContextTokens",
    "GiB",
    "Layers",
    "Milliseconds",
    "Name",
    "Port",
    "Seconds",
    "StrictNonNegativeInt",
    "StrictPositiveInt",
    "file_name_in",
    "name_from_source",
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


def name_from_source(data: dict[str, object], field: str) -> dict[str, object]:
    """`field` (a file name) taken from the `source` when the cluster file leaves it unset."""
    source = data.get("source")
    url = source.get("url") if isinstance(source, dict) else source
    if data.get(field) is not None or not isinstance(url, str) or not (name := file_name_of(url)):
        return data  # a source without a usable name: the schema reports what is missing
    return {**data, field: name}


def file_name_in(where: str) -> Callable[[str], str]:
    """A validator of a plain file name whose errors say where the file is looked up."""
    return lambda value: check_file_name(value, where)
