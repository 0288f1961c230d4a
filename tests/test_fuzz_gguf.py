"""Fuzzing the GGUF reader: random bytes and mutations of a valid tiny model only ever give
metadata, a ModelFileError (the header) or an UnsupportedModel (the hyperparameters), never
another exception, a hang, or memory out of proportion to the file.

Mutations aim at what a header is made of: counts and lengths overwritten with 8- or 4-byte
values (2^40, 2^63, 2^64-1...), bytes overwritten, inserted or dropped, the file cut anywhere.
Bounded: a fixed number of examples, a per-example deadline, and each read under a 2 s and
256 MiB address-space cap (`tests.bounded.capped`), so a runaway read fails the test.
"""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from homelab.errors import ModelFileError, UnsupportedModel
from homelab.tiny_gguf import write_tiny_llama
from homelab.vram.gguf_header import GGUFHeader, read_header
from homelab.vram.metadata import read_gguf, shape_from_fields
from homelab.vram.shape import ModelShape
from tests.bounded import capped

HEADER_SPAN = 12_000  # the tiny model's metadata and tensor table lie in its first ~10 KB
INTERESTING = st.sampled_from([0, 1, 2, 255, 2**31, 2**32 - 1, 2**32, 2**40, 2**60, 2**63, 2**64 - 1])
EDITS = st.lists(
    st.tuples(
        st.integers(0, HEADER_SPAN) | st.integers(0, 200_000),
        st.sampled_from(["u64", "u32", "bytes", "cut", "drop", "insert"]),
        st.binary(min_size=1, max_size=16),
        INTERESTING | st.integers(0, 2**64 - 1),
    ),
    min_size=1,
    max_size=4,
)
Edit = tuple[int, str, bytes, int]  # offset, kind, bytes, number
CAP = {"seconds": 2, "extra_bytes": 256 * 1024**2}
FUZZ = settings(max_examples=250, deadline=3000, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz-gguf")


@pytest.fixture(scope="module")
def base(scratch: Path) -> bytes:
    path = write_tiny_llama(scratch / "base.gguf", n_layer=1, n_embd=32, n_head=2, n_head_kv=1, n_ff=32, n_vocab=320)
    assert read_gguf(path).n_vocab == 320
    return path.read_bytes()


def _mutate(data: bytes, edits: list[Edit]) -> bytes:
    out = bytearray(data)
    for offset, kind, blob, number in edits:
        at = min(offset, len(out))
        if kind == "u64":
            out[at : at + 8] = struct.pack("<Q", number)
        elif kind == "u32":
            out[at : at + 4] = struct.pack("<I", number % 2**32)
        elif kind == "bytes":
            out[at : at + len(blob)] = blob
        elif kind == "cut":
            del out[at:]
        elif kind == "drop":
            del out[at : at + len(blob)]
        else:
            out[at:at] = blob
    return bytes(out)


def _read_both(path: Path) -> None:
    """read_header gives a header or a ModelFileError; read_gguf adds UnsupportedModel."""
    try:
        with capped(**CAP):
            header = read_header(path)
    except ModelFileError as exc:
        assert str(exc).startswith(f"{path}: ")
        event("ModelFileError")
        return
    assert isinstance(header, GGUFHeader)
    try:
        with capped(**CAP):
            shape = read_gguf(path)
    except UnsupportedModel as exc:
        assert str(exc).startswith(f"{path}: ")
        event("UnsupportedModel")
        return
    assert isinstance(shape, ModelShape)
    event("read")


@FUZZ
@given(edits=EDITS)
def test_mutated_model_reads_or_is_refused(scratch: Path, base: bytes, edits: list[Edit]) -> None:
    path = scratch / "mutated.gguf"
    path.write_bytes(_mutate(base, edits))
    _read_both(path)


@FUZZ
@given(
    prefix=st.sampled_from([b"", b"GGUF", b"GGUF\x03\x00\x00\x00", b"GGUF\x02\x00\x00\x00"]),
    rest=st.binary(max_size=4096),
)
def test_random_bytes_read_or_are_refused(scratch: Path, prefix: bytes, rest: bytes) -> None:
    path = scratch / "random.gguf"
    path.write_bytes(prefix + rest)
    _read_both(path)


REQUIRED = ["block_count", "embedding_length", "attention.head_count", "vocab_size"]
OPTIONAL = ["attention.head_count_kv", "attention.key_length", "attention.value_length", "feed_forward_length",
            "context_length", "expert_count", "attention.sliding_window",
            "attention.sliding_window_pattern"]  # fmt: skip
ANY_VALUE = st.recursive(
    st.none() | st.booleans() | INTERESTING | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=6),
    max_leaves=8,
)
# Half plausible, half anything: so that some shapes come out and the checks are reached one by one.
VALUES = st.integers(1, 64) | ANY_VALUE


@FUZZ
@given(
    arch=st.sampled_from(["llama", "qwen2", "gemma2"]),
    values=st.fixed_dictionaries({k: VALUES for k in REQUIRED}, optional={k: VALUES for k in OPTIONAL}),
    general=st.fixed_dictionaries(
        {}, optional={k: ANY_VALUE for k in ("general.file_type", "general.parameter_count", "tokenizer.ggml.tokens")}
    ),
)
def test_any_hyperparameter_values_give_a_shape_or_name_the_key(arch: str, values: dict, general: dict) -> None:
    """The same keys arrive as JSON from Ollama's /api/show: any value, any type."""
    fields = {"general.architecture": arch, **{f"{arch}.{k}": v for k, v in values.items()}, **general}
    try:
        with capped(**CAP):
            shape = shape_from_fields(fields, [], name="fuzzed", source="ollama")
    except UnsupportedModel as exc:
        assert "metadata key" in str(exc) or "vocabulary size unknown" in str(exc)
        event("UnsupportedModel")
        return
    assert isinstance(shape, ModelShape)
    event("shape")
