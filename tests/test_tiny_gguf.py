"""The tiny GGUF writer: files read back with gguf-py's own reader, byte for byte reproducible."""

from __future__ import annotations

from pathlib import Path

import pytest
from gguf import GGMLQuantizationType, GGUFReader

from homelab.tiny_gguf import write_tiny_llama


def _field(reader: GGUFReader, key: str) -> object:
    return reader.fields[key].contents()


@pytest.mark.parametrize(
    ("arch", "per_layer"),
    [("llama", 9), ("qwen2", 12)],  # qwen2 adds q/k/v biases
)
def test_reads_back_with_expected_metadata(tmp_path: Path, arch: str, per_layer: int) -> None:
    path = write_tiny_llama(tmp_path / "m.gguf", arch=arch, n_layer=3, n_vocab=400, context_length=1024)  # type: ignore[arg-type]
    reader = GGUFReader(path)

    assert _field(reader, "general.architecture") == arch
    assert _field(reader, f"{arch}.block_count") == 3
    assert _field(reader, f"{arch}.context_length") == 1024
    assert _field(reader, f"{arch}.embedding_length") == 64
    assert _field(reader, f"{arch}.attention.head_count_kv") == 2
    assert _field(reader, "tokenizer.ggml.model") == "llama"
    tokens = _field(reader, "tokenizer.ggml.tokens")
    assert isinstance(tokens, list) and len(tokens) == 400
    assert tokens[:3] == ["<unk>", "<s>", "</s>"] and "<0x0A>" in tokens
    assert "im_start" in str(_field(reader, "tokenizer.chat_template"))
    assert len(reader.tensors) == 3 * per_layer + 3
    embd = next(t for t in reader.tensors if t.name == "token_embd.weight")
    assert list(embd.shape) == [64, 400]  # ggml order: n_embd, n_vocab
    assert path.stat().st_size < 1_000_000


def test_f16_halves_the_matrices_and_keeps_norms_f32(tmp_path: Path) -> None:
    path = write_tiny_llama(tmp_path / "m.gguf", dtype=GGMLQuantizationType.F16)
    types = {t.name: t.tensor_type for t in GGUFReader(path).tensors}

    assert types["blk.0.ffn_up.weight"] == GGMLQuantizationType.F16
    assert types["blk.0.attn_norm.weight"] == GGMLQuantizationType.F32


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path) -> None:
    a = write_tiny_llama(tmp_path / "a.gguf", seed=7).read_bytes()
    b = write_tiny_llama(tmp_path / "b.gguf", seed=7).read_bytes()
    c = write_tiny_llama(tmp_path / "c.gguf", seed=8).read_bytes()

    assert a == b
    assert a != c


def test_rejects_inconsistent_heads(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="n_head_kv"):
        write_tiny_llama(tmp_path / "m.gguf", n_head=4, n_head_kv=3)
