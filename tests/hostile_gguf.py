"""Hostile GGUF files written from a description: the cases of `tests/cases/hostile/gguf/`.

A case describes a file as data, lies included: a key/value whose `length` claims more items or
bytes than follow, a `tensor_count` or `kv_count` other than the entries written, a `cut` that
truncates the file, `key_hex` for a key that is not UTF-8, `repeat` for a long array. With
`"base": true` the case starts from a minimal valid llama model (four keys, one tensor); its `kv`
entries replace or add keys and `drop` removes some, so a metadata case names only the key it
spoils. GGUF layout: gguf-py's `GGUFWriter` and ggml/src/gguf.cpp.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

from gguf import GGMLQuantizationType, GGUFValueType

__all__ = ["CASES_DIR", "build_gguf", "load_cases"]

CASES_DIR = Path(__file__).resolve().parent / "cases" / "hostile" / "gguf"
_FORMATS = {"UINT8": "B", "INT8": "b", "UINT16": "H", "INT16": "h", "UINT32": "I", "INT32": "i",
            "FLOAT32": "f", "BOOL": "?", "UINT64": "Q", "INT64": "q", "FLOAT64": "d"}  # fmt: skip
_BASE_KV: list[dict[str, Any]] = [
    {"key": "general.architecture", "type": "STRING", "value": "llama"},
    {"key": "llama.block_count", "type": "UINT32", "value": 2},
    {"key": "llama.embedding_length", "type": "UINT32", "value": 8},
    {"key": "llama.attention.head_count", "type": "UINT32", "value": 2},
]
_BASE_TENSORS = [{"name": "token_embd.weight", "dims": [8, 32], "type": "F32", "offset": 0}]


def load_cases() -> list[dict[str, Any]]:
    """Every case row of every `*.jsonl` file, in file order."""
    rows = []
    for path in sorted(CASES_DIR.glob("*.jsonl")):
        rows += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return rows


def _string(text: str | bytes, claimed: int | None = None) -> bytes:
    raw = text.encode() if isinstance(text, str) else text
    return struct.pack("<Q", len(raw) if claimed is None else claimed) + raw


def _type_id(name: str | int) -> int:
    return name if isinstance(name, int) else int(GGUFValueType[name])


def _scalar(kind: str, value: Any) -> bytes:
    if kind == "STRING":
        return _string(value)
    return struct.pack("<" + _FORMATS[kind], float(value) if kind.startswith("FLOAT") else value)


def _kv(entry: dict[str, Any]) -> bytes:
    key = bytes.fromhex(entry["key_hex"]) if "key_hex" in entry else entry["key"]
    out = _string(key, entry.get("key_length")) + struct.pack("<I", _type_id(entry["type"]))
    if entry["type"] == "ARRAY":
        items = entry.get("value", []) * entry.get("repeat", 1)
        out += struct.pack("<IQ", _type_id(entry["item"]), entry.get("length", len(items)))
        return out + b"".join(_scalar(entry["item"], v) for v in items)
    if entry["type"] == "STRING":
        return out + _string(entry["value"], entry.get("length"))
    return out + (_scalar(entry["type"], entry["value"]) if "value" in entry else b"")


def _tensor(t: dict[str, Any]) -> bytes:
    kind = t["type"] if isinstance(t["type"], int) else int(GGMLQuantizationType[t["type"]])
    dims = t["dims"]
    n_dims = t.get("n_dims", len(dims))
    return _string(t["name"]) + struct.pack(f"<I{len(dims)}QIQ", n_dims, *dims, kind, t["offset"])


def build_gguf(case: dict[str, Any]) -> bytes:
    """The bytes of the file `case` describes."""
    if "raw" in case:
        return bytes.fromhex(case["raw"])
    own = case.get("kv", [])
    replaced = {e.get("key") for e in own} | set(case.get("drop", []))
    kv = [e for e in _BASE_KV if e["key"] not in replaced] + own if case.get("base") else own
    tensors = case.get("tensors", _BASE_TENSORS if case.get("base") else [])
    head = case.get("magic", "GGUF").encode() + struct.pack(
        "<IQQ", case.get("version", 3), case.get("tensor_count", len(tensors)), case.get("kv_count", len(kv))
    )
    body = head + b"".join(map(_kv, kv)) + b"".join(map(_tensor, tensors))
    # The data section starts aligned, after padding, only when there are tensors (gguf.cpp).
    data = bytes(-len(body) % 32) + bytes(case.get("data_bytes", 1024)) if tensors else b""
    whole = body + data
    return whole[: case["cut"]] if "cut" in case else whole
