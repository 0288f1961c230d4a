"""Reading a local GGUF: hyperparameters and the tensor table, and a clear error for every bad file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from gguf import GGMLQuantizationType

from homelab.errors import ModelFileError, UnsupportedModel
from homelab.tiny_gguf import write_tiny_llama
from homelab.vram import gguf_header
from homelab.vram.gguf_header import SkippedArray, read_header
from homelab.vram.metadata import read_gguf
from homelab.vram.shape import tensor_bytes
from tests.bounded import capped
from tests.hostile_gguf import build_gguf, load_cases
from tests.vram_shapes import write_bare_gguf

HOSTILE = load_cases()
ERRORS = {"ModelFileError": ModelFileError, "UnsupportedModel": UnsupportedModel}


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("vram-gguf")


def test_llama_shape_and_tensor_table(tiny_dir: Path) -> None:
    path = write_tiny_llama(tiny_dir / "llama.gguf", n_layer=3, n_embd=128, n_head=4, n_head_kv=2, n_ff=256,
                            n_vocab=600, context_length=1024, dtype=GGMLQuantizationType.F16)  # fmt: skip
    shape = read_gguf(path)

    assert (shape.arch, shape.source, shape.estimated) == ("llama", "gguf", False)
    assert (shape.n_layer, shape.n_embd, shape.n_head, shape.n_head_kv) == (3, 128, 4, [2, 2, 2])
    assert (shape.head_dim_k, shape.head_dim_v, shape.n_ff, shape.n_vocab) == (32, 32, 256, 600)
    assert (shape.context_length, shape.sliding_window, shape.swa_layers) == (1024, None, [False] * 3)
    assert shape.file_type == "F16"
    assert not shape.tied_output
    assert len(shape.tensors) == 2 + 3 * 9 + 1
    by_name = {t.name: t for t in shape.tensors}
    q = by_name["blk.1.attn_q.weight"]
    assert (q.type, q.shape, q.n_bytes) == ("F16", [128, 128], 128 * 128 * 2)
    assert by_name["blk.1.attn_norm.weight"].type == "F32"
    # offsets are from the data section, in file order, each tensor aligned
    offsets = [t.offset for t in shape.tensors]
    assert offsets[0] == 0 and offsets == sorted(offsets)
    assert path.stat().st_size >= shape.tensors[-1].offset + shape.tensors[-1].n_bytes


def test_quantized_tensor_bytes_follow_the_block_size(tiny_dir: Path) -> None:
    path = write_tiny_llama(tiny_dir / "q4.gguf", n_embd=64, n_ff=128, dtype=GGMLQuantizationType.Q4_0)
    shape = read_gguf(path)

    ffn = next(t for t in shape.tensors if t.name == "blk.0.ffn_up.weight")
    assert (ffn.type, ffn.n_bytes) == ("Q4_0", 64 // 32 * 18 * 128)
    assert ffn.n_bytes == tensor_bytes("Q4_0", ffn.shape)
    assert shape.file_type == "Q4_0"


def test_gemma2_sliding_window_on_every_other_layer_and_tied_output(tiny_dir: Path) -> None:
    path = write_tiny_llama(tiny_dir / "gemma2.gguf", arch="gemma2", n_layer=4, sliding_window=256)
    shape = read_gguf(path)

    assert shape.sliding_window == 256
    assert shape.swa_layers == [True, False, True, False]  # llama.cpp: the last of each pair is dense
    assert shape.tied_output


def test_qwen2_biases_are_in_the_layer(tiny_dir: Path) -> None:
    shape = read_gguf(write_tiny_llama(tiny_dir / "qwen2.gguf", arch="qwen2"))

    assert shape.arch == "qwen2"
    assert any(t.name == "blk.0.attn_q.bias" for t in shape.tensors)


def _bytes(tiny_dir: Path) -> bytes:
    return write_tiny_llama(tiny_dir / "whole.gguf").read_bytes()


@pytest.mark.parametrize(
    ("case", "content", "message"),
    [
        ("empty", lambda whole: b"", "not a GGUF file"),
        ("text", lambda whole: b"# not a model\n", "not a GGUF file (starts with b'# no'"),
        ("safetensors", lambda whole: b"\x08\x00\x00\x00\x00\x00\x00\x00{}", "not a GGUF file"),
        ("cut-in-header", lambda whole: whole[:200], "corrupt or truncated GGUF"),
        ("cut-in-tensor-data", lambda whole: whole[: len(whole) // 2], "corrupt or truncated GGUF"),
        ("bad-version", lambda whole: whole[:4] + b"\x63\x00\x00\x00" + whole[8:], "version 99"),
        (
            "garbage-after-magic",
            lambda whole: b"GGUF" + bytes(range(256)) * 8,
            "GGUF version 50462976 is not supported",
        ),
    ],
)
def test_bad_files_are_model_file_errors(tiny_dir: Path, case: str, content, message: str) -> None:
    path = tiny_dir / f"{case}.gguf"
    path.write_bytes(content(_bytes(tiny_dir)))

    with pytest.raises(ModelFileError) as info:
        read_gguf(path)
    assert str(info.value).startswith(f"{path}: ")
    assert message in str(info.value)


def test_missing_file(tiny_dir: Path) -> None:
    with pytest.raises(ModelFileError, match="cannot read"):
        read_gguf(tiny_dir / "nowhere.gguf")


def test_a_directory_is_not_a_model(tiny_dir: Path) -> None:
    with pytest.raises(ModelFileError, match="cannot read"):
        read_gguf(tiny_dir)


def test_unknown_architecture_is_unsupported(tiny_dir: Path) -> None:
    path = write_bare_gguf(tiny_dir / "mamba.gguf", "mamba", {"mamba.block_count": 2, "mamba.embedding_length": 8})

    with pytest.raises(UnsupportedModel, match=r"architecture 'mamba' is not modelled .*known: .*llama"):
        read_gguf(path)


def test_missing_hyperparameter_is_unsupported(tiny_dir: Path) -> None:
    path = write_bare_gguf(tiny_dir / "headless.gguf", "llama", {"llama.block_count": 2, "llama.embedding_length": 8})

    with pytest.raises(UnsupportedModel, match=r"headless.gguf: metadata key 'llama.attention.head_count' is missing"):
        read_gguf(path)


@pytest.mark.parametrize("case", HOSTILE, ids=[c["id"] for c in HOSTILE])
def test_hostile_file_is_refused_at_once(tmp_path: Path, case: dict) -> None:
    """tests/cases/hostile/gguf/: counts and lengths that lie, values no model has."""
    path = tmp_path / f"{case['id']}.gguf"
    path.write_bytes(build_gguf(case))
    assert path.stat().st_size == case.get("size", path.stat().st_size)

    with pytest.raises(ERRORS[case["error"]]) as info, capped(seconds=2, extra_bytes=256 * 1024**2):
        read_gguf(path)
    assert str(info.value).startswith(f"{path}: ")
    assert case["message"] in str(info.value)


def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path: Path) -> None:
    fifo = tmp_path / "model.gguf"
    os.mkfifo(fifo)

    with (
        pytest.raises(ModelFileError, match=r"model.gguf: cannot read: not a regular file") as info,
        capped(seconds=2, extra_bytes=64 * 1024**2),
    ):
        read_gguf(fifo)
    assert str(info.value).startswith(f"{fifo}: ")


def test_dev_zero_is_refused() -> None:
    with (
        pytest.raises(ModelFileError, match=r"^/dev/zero: cannot read: not a regular file"),
        capped(seconds=2, extra_bytes=64 * 1024**2),
    ):
        read_gguf("/dev/zero")


def test_a_token_list_longer_than_any_layer_count_is_kept_as_its_length(tiny_dir: Path) -> None:
    path = write_tiny_llama(tiny_dir / "vocab.gguf", n_vocab=600)  # 600 tokens > KEEP_ARRAY_ITEMS
    header = read_header(path)

    assert header.fields["tokenizer.ggml.tokens"] == SkippedArray(item_type=8, length=600)
    assert header.fields["tokenizer.ggml.tokens"] != list(range(600))
    assert read_gguf(path).n_vocab == 600


def test_array_items_are_kept_only_up_to_a_total(tmp_path: Path) -> None:
    """200 arrays of 512 values: the first 128 fill KEEP_TOTAL_ITEMS, the rest keep their length only."""
    arrays = [{"key": f"x.{i}", "type": "ARRAY", "item": "UINT16", "value": [7], "repeat": 512} for i in range(200)]
    path = tmp_path / "arrays.gguf"
    path.write_bytes(build_gguf({"base": True, "kv": arrays}))

    fields = read_header(path).fields
    assert fields["x.127"] == [7] * 512
    assert fields["x.128"] == SkippedArray(item_type=2, length=512)
    assert read_gguf(path).n_layer == 2


def test_a_header_over_the_cap_is_refused_naming_the_cap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gguf_header, "MAX_HEADER_BYTES", 4096)  # instead of writing a 64 MiB file
    path = tmp_path / "template.gguf"
    path.write_bytes(
        build_gguf({"base": True, "kv": [{"key": "tokenizer.chat_template", "type": "STRING", "value": "x" * 5000}]})
    )

    with pytest.raises(
        ModelFileError,
        match=r"chat_template length is 5,000; at most 3,\d+ fit, 3,\d+ left before the 4,096-byte limit",
    ):
        read_gguf(path)


def test_a_nul_byte_in_the_path_is_refused() -> None:
    """A lineup file can name `gguf: "a\\0b"`; os.stat raises ValueError on it, not OSError."""
    with pytest.raises(ModelFileError, match=r"cannot read: a file name cannot hold a NUL byte"):
        read_gguf("/tmp/a\0b.gguf")
