"""Tiny random-weight GGUF models that llama.cpp loads and serves.

Nothing can be downloaded here, yet tests, the demo and the VRAM benchmark need real GGUF files
that a real `llama-server` loads, tokenizes with and answers from. These are such files: a
llama-architecture (or qwen2) transformer of a few hundred KB with random weights, a
SentencePiece-style vocabulary that covers every byte (so any text tokenizes) and a ChatML chat
template (so `/v1/chat/completions` works). The answers are gibberish; the plumbing is real.

Shapes follow gguf-py's convention, which is ggml's `ne` reversed: ggml's `token_embd` is
`{n_embd, n_vocab}`, so its numpy array is `(n_vocab, n_embd)`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

import numpy as np
from gguf import GGMLQuantizationType, GGUFWriter, LlamaFileType, PoolingType, TokenType, quants

__all__ = [
    "CHATML_TEMPLATE",
    "FILE_TYPES",
    "Arch",
    "add_metadata",
    "add_tokenizer",
    "gguf_file",
    "tiny_vocab",
    "write_tiny_llama",
]

Arch = Literal["llama", "qwen2", "gemma2"]

# Weight types the writer can produce, with the file type llama.cpp reports for each.
FILE_TYPES = {
    GGMLQuantizationType.F32: LlamaFileType.ALL_F32,
    GGMLQuantizationType.F16: LlamaFileType.MOSTLY_F16,
    GGMLQuantizationType.Q8_0: LlamaFileType.MOSTLY_Q8_0,
    GGMLQuantizationType.Q4_0: LlamaFileType.MOSTLY_Q4_0,
}

# ChatML, the simplest widely understood template; llama-server renders it with its jinja engine.
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

_SPECIALS: tuple[tuple[str, TokenType], ...] = (
    ("<unk>", TokenType.UNKNOWN),
    ("<s>", TokenType.CONTROL),
    ("</s>", TokenType.CONTROL),
    ("<|im_start|>", TokenType.CONTROL),
    ("<|im_end|>", TokenType.CONTROL),
)
_UNK_ID, _BOS_ID, _EOS_ID = 0, 1, 2
_WORDS = [
    "the", "of", "and", "to", "in", "is", "you", "that", "it", "he", "was", "for", "on", "are", "as", "with", "his",
    "they", "at", "be", "this", "have", "from", "or", "one", "had", "by", "word", "but", "not", "what", "all",
    "were", "we", "when", "your", "can", "said", "there", "use", "an", "each", "which", "she", "do", "how", "their",
    "if", "will", "up", "other", "about", "out", "many", "then", "them", "these", "so", "some", "her", "would",
    "make", "like", "him", "into", "time", "has", "look", "two", "more", "write", "go", "see", "number", "no", "way",
    "could", "people", "my", "than", "first", "water", "been", "call", "who", "oil", "its", "now", "find", "long",
    "down", "day", "did", "get", "come", "made", "may", "part", "hello", "world", "model", "cluster", "health",
    "server", "user", "assistant", "system", "yes", "ok",
]  # fmt: skip
_SPACE = "\u2581"  # SentencePiece's visible space


def tiny_vocab(n_vocab: int) -> tuple[list[str], list[float], list[int]]:
    """Tokens, scores and token types of a SentencePiece ("llama") vocabulary of `n_vocab` entries.

    Layout as in Llama 2: `<unk>`, `<s>`, `</s>` at 0-2, then the ChatML markers, then the 256
    byte tokens `<0x00>`..`<0xFF>` (the byte fallback that lets any UTF-8 text tokenize, and
    where llama.cpp looks up the newline token), then word pieces, padded with letter pairs and,
    for large vocabularies, numbered pieces.

    Raises:
        ValueError: `n_vocab` is too small to hold the specials, the bytes and one letter each.
    """
    tokens = [text for text, _ in _SPECIALS] + [f"<0x{b:02X}>" for b in range(256)]
    types = [int(kind) for _, kind in _SPECIALS] + [int(TokenType.BYTE)] * 256
    letters = "abcdefghijklmnopqrstuvwxyz"
    pieces = [*letters, *(_SPACE + c for c in letters), _SPACE, *(_SPACE + w for w in _WORDS), *_WORDS]
    pieces += [a + b for a in letters for b in letters]
    pieces = list(dict.fromkeys(p for p in pieces if p not in tokens))
    minimum = len(tokens) + 2 * len(letters) + 1
    if n_vocab < minimum:
        raise ValueError(f"n_vocab must be at least {minimum}, got {n_vocab}")
    # Real vocabularies are 32k-256k entries; numbered pieces give the output layer its real size.
    pieces += [f"{_SPACE}w{i}" for i in range(max(0, n_vocab - len(tokens) - len(pieces)))]
    pieces = pieces[: n_vocab - len(tokens)]
    tokens += pieces
    types += [int(TokenType.NORMAL)] * len(pieces)
    # SentencePiece merges the highest score first; longer pieces win so words stay whole.
    scores = [0.0] * (n_vocab - len(pieces)) + [float(len(p)) - i / n_vocab for i, p in enumerate(pieces)]
    return tokens, scores, types


def write_tiny_llama(
    path: str | os.PathLike[str],
    *,
    n_layer: int = 2,
    n_embd: int = 64,
    n_head: int = 4,
    n_head_kv: int = 2,
    n_ff: int = 128,
    n_vocab: int = 512,
    context_length: int = 2048,
    arch: Arch = "llama",
    dtype: GGMLQuantizationType = GGMLQuantizationType.F32,
    seed: int = 0,
    name: str = "homelab-tiny",
    sliding_window: int = 4096,
    pooling_type: int | None = None,
) -> Path:
    """Write a random-weight GGUF that llama.cpp can load; same arguments, same bytes.

    Args:
        path: Where to write the file (parent directories must exist).
        n_layer: Transformer blocks.
        n_embd: Embedding width; must be a multiple of `n_head`.
        n_head: Attention heads; a multiple of `n_head_kv` (grouped-query attention).
        n_head_kv: Key/value heads.
        n_ff: Feed-forward width.
        n_vocab: Vocabulary size (see `tiny_vocab` for the allowed range).
        context_length: Training context recorded in the metadata; the server may use less.
        arch: "llama"; "qwen2", which adds q/k/v biases; or "gemma2", with sliding-window
            attention on every other layer, post-norms and a tied output layer.
        dtype: Type of the 2-D weights: F32, F16, Q8_0 or Q4_0 (quantized rows need widths that
            divide by 32). Norms and biases stay F32, as converters do.
        seed: Seed of the weights.
        name: `general.name` in the metadata.
        sliding_window: gemma2's attention window in tokens.
        pooling_type: `{arch}.pooling_type` (gguf's PoolingType); set, Ollama takes the model for
            an embedding model.

    Returns:
        The path written.

    Raises:
        ValueError: An unsupported dtype or architecture, or inconsistent head counts.
    """
    if dtype not in FILE_TYPES:
        raise ValueError(f"dtype must be one of {', '.join(t.name for t in FILE_TYPES)}, got {dtype!r}")
    if arch not in ("llama", "qwen2", "gemma2"):
        raise ValueError(f"arch must be 'llama', 'qwen2' or 'gemma2', got {arch!r}")
    if n_embd % n_head or n_head % n_head_kv:
        raise ValueError(f"n_embd ({n_embd}) must divide by n_head ({n_head}), n_head by n_head_kv ({n_head_kv})")
    tokens, scores, types = tiny_vocab(n_vocab)
    out = Path(path)
    with gguf_file(out, arch) as writer:
        add_metadata(writer, name, n_layer, n_embd, n_head, n_head_kv, n_ff, context_length, dtype)
        if arch == "gemma2":
            writer.add_sliding_window(sliding_window)
            writer.add_attn_logit_softcapping(50.0)
            writer.add_final_logit_softcapping(30.0)
        if pooling_type is not None:
            writer.add_pooling_type(PoolingType(pooling_type))
        add_tokenizer(writer, tokens, scores, types)
        n_embd_kv = n_embd // n_head * n_head_kv
        for tensor_name, array in _tensors(arch, n_layer, n_embd, n_embd_kv, n_ff, n_vocab, dtype, seed):
            if array.ndim == 2 and dtype in (GGMLQuantizationType.Q8_0, GGMLQuantizationType.Q4_0):
                writer.add_tensor(tensor_name, quants.quantize(array, dtype), raw_dtype=dtype)
            else:
                writer.add_tensor(tensor_name, array)
    return out


@contextmanager
def gguf_file(path: Path, arch: str, *, sparse: bool = False) -> Iterator[GGUFWriter]:
    """A GGUF writer for `path`: fill it in the block; header, metadata and tensors are written
    when the block ends without an error, and the file is closed either way.

    `sparse`: the tensors were added as table entries only (`add_tensor_info`); the data section
    is left a hole of its full size, so a file of a released model's size costs no disk.
    """
    writer = GGUFWriter(path, arch)
    try:
        yield writer
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        if not sparse:
            writer.write_tensors_to_file()
            return
        writer.write_ti_data_to_file()
        align = writer.data_alignment
        data = GGUFWriter.ggml_pad(writer.fout[0].tell(), align) if writer.fout else 0
        size = data + sum(GGUFWriter.ggml_pad(ti.nbytes, align) for ti in writer.tensors[0].values())
    finally:
        writer.close()
    os.truncate(path, size)


def add_metadata(
    writer: GGUFWriter,
    name: str,
    n_layer: int,
    n_embd: int,
    n_head: int,
    n_head_kv: int,
    n_ff: int,
    context_length: int,
    dtype: GGMLQuantizationType,
) -> None:
    writer.add_name(name)
    writer.add_file_type(FILE_TYPES[dtype])
    writer.add_block_count(n_layer)
    writer.add_context_length(context_length)
    writer.add_embedding_length(n_embd)
    writer.add_feed_forward_length(n_ff)
    writer.add_head_count(n_head)
    writer.add_head_count_kv(n_head_kv)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_rope_freq_base(10000.0)


def add_tokenizer(writer: GGUFWriter, tokens: list[str], scores: list[float], types: list[int]) -> None:
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_unk_token_id(_UNK_ID)
    writer.add_bos_token_id(_BOS_ID)
    writer.add_eos_token_id(_EOS_ID)
    writer.add_add_bos_token(True)
    writer.add_add_eos_token(False)
    writer.add_chat_template(CHATML_TEMPLATE)


def _tensors(
    arch: Arch,
    n_layer: int,
    n_embd: int,
    n_embd_kv: int,
    n_ff: int,
    n_vocab: int,
    dtype: GGMLQuantizationType,
    seed: int,
) -> list[tuple[str, np.ndarray]]:
    """The tensors in llama.cpp's names and gguf-py's (reversed) shapes, in file order."""
    rng = np.random.default_rng(seed)
    # Quantized types are written from F32 by gguf's own quantizer.
    weight_dtype = np.float16 if dtype == GGMLQuantizationType.F16 else np.float32

    def weight(*shape: int) -> np.ndarray:
        # Small weights keep activations finite through the random network.
        return (rng.standard_normal(shape, dtype=np.float32) * 0.02).astype(weight_dtype)

    def ones() -> np.ndarray:
        return np.ones(n_embd, dtype=np.float32)

    def bias(n: int) -> np.ndarray:
        return rng.standard_normal(n, dtype=np.float32) * 0.02

    out: list[tuple[str, np.ndarray]] = [("token_embd.weight", weight(n_vocab, n_embd))]
    for i in range(n_layer):
        blk = f"blk.{i}"
        out += [
            (f"{blk}.attn_norm.weight", ones()),
            (f"{blk}.attn_q.weight", weight(n_embd, n_embd)),
            (f"{blk}.attn_k.weight", weight(n_embd_kv, n_embd)),
            (f"{blk}.attn_v.weight", weight(n_embd_kv, n_embd)),
        ]
        if arch == "qwen2":
            out += [
                (f"{blk}.attn_q.bias", bias(n_embd)),
                (f"{blk}.attn_k.bias", bias(n_embd_kv)),
                (f"{blk}.attn_v.bias", bias(n_embd_kv)),
            ]
        out += [(f"{blk}.attn_output.weight", weight(n_embd, n_embd))]
        if arch == "gemma2":
            out += [(f"{blk}.post_attention_norm.weight", ones())]
        out += [
            (f"{blk}.ffn_norm.weight", ones()),
            (f"{blk}.ffn_gate.weight", weight(n_ff, n_embd)),
            (f"{blk}.ffn_up.weight", weight(n_ff, n_embd)),
            (f"{blk}.ffn_down.weight", weight(n_embd, n_ff)),
        ]
        if arch == "gemma2":
            out += [(f"{blk}.post_ffw_norm.weight", ones())]
    out += [("output_norm.weight", ones())]
    if arch != "gemma2":  # gemma2 ties its output layer to token_embd
        out += [("output.weight", weight(n_vocab, n_embd))]
    return out
