"""A bounded reader of a GGUF file's header: its metadata key/values and its tensor table.

Why not gguf-py's `GGUFReader`: it trusts every count in the file. A 65-byte file whose array
claims 2^40 elements sends it into a Python loop of 2^40 steps with memory growing, and a
string length past the end of the file is quietly cut short. llama.cpp's own loader
(ggml/src/gguf.cpp, `gguf_reader::read` and `gguf_init_from_reader`) checks each count and
length against the bytes left in the file before reading; this reader does the same, and
refuses what that loader refuses (version, value types, more than `GGML_MAX_DIMS` dimensions,
tensor names of `GGML_MAX_NAME` bytes or more, rows that do not fill whole blocks, tensor data
past the end of the file). Every refusal is a `ModelFileError` that names the file and the byte
where reading stopped.

Bounds beyond the file's own size (each far above any real model; a file over them is refused):
the metadata and tensor table fit in `MAX_HEADER_BYTES`, there are at most `MAX_KEYS` keys and
`MAX_TENSORS` tensors. Arrays are kept item by item only up to `KEEP_ARRAY_ITEMS` (the most
per-layer values a model can have) and `KEEP_TOTAL_ITEMS` in all; a longer array (a token list,
of which the estimator needs only the length) is a `SkippedArray`. So the memory the reader holds
is a small multiple of the header's bytes whatever the file claims, and its time is linear in them.

`parse_header_prefix` reads the same header from the first bytes of a file known only by its size
(a remote file fetched with ranged requests): every bound is checked against the whole file, and
when the header runs past the bytes at hand it asks for more (`NeedMoreBytes`) instead of failing.
"""

from __future__ import annotations

import math
import mmap
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

from homelab.errors import FileAccessError, ModelFileError
from homelab.files import open_regular
from homelab.vram.shape import TensorInfo

__all__ = [
    "KEEP_ARRAY_ITEMS",
    "KEEP_TOTAL_ITEMS",
    "MAX_HEADER_BYTES",
    "MAX_KEYS",
    "MAX_TENSORS",
    "GGUFHeader",
    "NeedMoreBytes",
    "SkippedArray",
    "parse_header_prefix",
    "read_header",
]

MAX_HEADER_BYTES = 64 * 1024**2  # real headers: a few MB (a 256k-token vocabulary is ~5 MB)
MAX_KEYS = 65_536  # real files: about 50
MAX_TENSORS = 65_536  # real files: a few thousand at most
KEEP_ARRAY_ITEMS = 512  # llama.cpp's LLAMA_MAX_LAYERS (src/llama-hparams.h): per-layer arrays
KEEP_TOTAL_ITEMS = 65_536

_MAGIC = b"GGUF"
_VERSIONS = (2, 3)  # gguf-py's READER_SUPPORTED_VERSIONS; llama.cpp no longer reads version 1
_DEFAULT_ALIGNMENT = 32  # GGUF_DEFAULT_ALIGNMENT
_MAX_DIMS = 4  # GGML_MAX_DIMS (ggml/include/ggml.h)
_MAX_NAME = 64  # GGML_MAX_NAME: a tensor name must be shorter
_STRING, _ARRAY = 8, 9
# GGUF value type -> struct format of one item (gguf-py's GGUFValueType numbering).
_CODES = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
_SCALARS = {kind: struct.Struct("<" + code) for kind, code in _CODES.items()}
_U32, _U64 = _SCALARS[4], _SCALARS[10]
_MIN_KEY_BYTES = 8 + 4 + 1  # the key's length (the key may be empty: refused once read), type, a uint8
_MIN_TENSOR_BYTES = 8 + 4 + 4 + 8  # the name's length, no dims, type, offset


@dataclass(frozen=True)
class SkippedArray:
    """An array longer than a hyperparameter can be (a token list): its length, not its items."""

    item_type: int
    length: int

    def __len__(self) -> int:
        return self.length


class NeedMoreBytes(Exception):
    """The header goes on past the prefix given: `end` is the byte it needs up to (at least)."""

    def __init__(self, end: int) -> None:
        super().__init__(f"the header needs bytes up to {end:,}")
        self.end = end


@dataclass(frozen=True)
class GGUFHeader:
    """What a GGUF file says about itself; tensor offsets count from its data section."""

    version: int
    fields: dict[str, Any]
    tensors: list[TensorInfo]


class _Cursor:
    """Reads little-endian values from `data[pos:end]`, never past `end`."""

    def __init__(self, data: mmap.mmap | bytes, file: Path, size: int | None = None) -> None:
        self.data, self.file, self.pos = data, file, 0
        self.size = len(data) if size is None else size  # the whole file's, of which `data` may be the start
        self.end = min(self.size, MAX_HEADER_BYTES)
        self.kept = 0  # array items kept so far, against KEEP_TOTAL_ITEMS

    def fail(self, message: str) -> ModelFileError:
        where = f"corrupt or truncated GGUF (an interrupted download?): byte {self.pos:,}"
        return ModelFileError(f"{self.file}: {where}: {message}")

    def left(self) -> int:
        return self.end - self.pos

    def before_end(self) -> str:
        """What stops reading: the file's end, or the cap on a header's size."""
        cap = f"the {MAX_HEADER_BYTES:,}-byte limit on a GGUF header"
        return f"{self.left():,} left before {'the end of the file' if self.end == self.size else cap}"

    def take(self, n: int, what: str) -> int:
        """Step over `n` bytes and return where they start."""
        if n > self.left():
            raise self.fail(f"{what} needs {n:,} bytes, {self.before_end()}")
        if self.pos + n > len(self.data):
            raise NeedMoreBytes(self.pos + n)
        start, self.pos = self.pos, self.pos + n
        return start

    def unpack(self, fmt: struct.Struct, what: str) -> Any:
        return fmt.unpack_from(self.data, self.take(fmt.size, what))[0]

    def count(self, what: str, each: int, limit: int) -> int:
        """A count of items of at least `each` bytes: never more than the bytes left can hold."""
        n = self.unpack(_U64, what)
        if n > limit or n * each > self.left():
            raise self.fail(f"{what} is {n:,}; at most {min(limit, self.left() // each):,} fit, {self.before_end()}")
        return int(n)

    def skip_string(self, what: str) -> int:
        """Step over a string; return where its bytes start."""
        return self.take(self.count(f"{what} length", 1, MAX_HEADER_BYTES), what)

    def string(self, what: str) -> str:
        start = self.skip_string(what)
        raw, n = self.data[start : self.pos], self.pos - start
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise self.fail(f"{what} is not UTF-8 (byte {exc.start} of {n})") from None


def read_header(path: str | Path) -> GGUFHeader:
    """The metadata and tensor table of the GGUF file at `path` (a regular file only).

    Raises:
        ModelFileError: Not a readable regular file, not GGUF, or a header that is truncated,
            corrupt, or over the bounds above; the message names the file and the byte.
    """
    file = Path(path)
    try:
        handle = open_regular(file, what="model file")
    except FileAccessError as exc:
        raise ModelFileError(f"{exc.path}: cannot read: {exc.message}") from None
    try:
        with handle:
            magic = handle.read(4)
            if magic != _MAGIC:
                raise ModelFileError(f"{file}: not a GGUF file (starts with {magic!r}, expected b'GGUF')")
            with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
                return _parse(_Cursor(data, file))
    except OSError as exc:
        raise ModelFileError(f"{file}: cannot read: {exc.strerror or exc}") from None


def parse_header_prefix(data: bytes, size: int, name: str) -> GGUFHeader:
    """The header of a GGUF file of `size` bytes from its first bytes `data` (as `read_header` reads a file).

    Raises:
        NeedMoreBytes: the header goes on past `data`; fetch at least up to `end` and call again.
        ModelFileError: not GGUF, or a header that is corrupt or over the bounds (named `name`).
    """
    if len(data) < 4:
        raise NeedMoreBytes(4)
    if data[:4] != _MAGIC:
        raise ModelFileError(f"{name}: not a GGUF file (starts with {data[:4]!r}, expected b'GGUF')")
    return _parse(_Cursor(data, Path(name), size))


def _parse(cur: _Cursor) -> GGUFHeader:
    cur.take(4, "magic")
    version = cur.unpack(_U32, "version")
    if version & 0xFFFF == 0:
        raise ModelFileError(f"{cur.file}: GGUF version {version:#x}: a big-endian file, which llama.cpp refuses too")
    if version not in _VERSIONS:
        raise ModelFileError(f"{cur.file}: GGUF version {version} is not supported (only 2 and 3)")
    n_tensors = cur.count("tensor count", _MIN_TENSOR_BYTES, MAX_TENSORS)
    n_keys = cur.count("key count", _MIN_KEY_BYTES, MAX_KEYS)
    fields: dict[str, Any] = {}
    for i in range(n_keys):
        key = cur.string(f"key {i}")
        if not key or key in fields:
            raise cur.fail(f"key {i} {key!r} is {'empty' if not key else 'a duplicate'}")
        fields[key] = _value(cur, key)
    alignment = fields.get("general.alignment", _DEFAULT_ALIGNMENT)
    if isinstance(alignment, bool) or not isinstance(alignment, int) or alignment <= 0 or alignment & (alignment - 1):
        raise cur.fail(f"general.alignment {alignment!r} is not a power of two")
    tensors = [_tensor_info(cur, i) for i in range(n_tensors)]
    if len({t.name for t in tensors}) != len(tensors):
        raise cur.fail("two tensors have the same name")
    data_start = -(-cur.pos // alignment) * alignment
    for t in tensors:
        if (end := data_start + t.offset + t.n_bytes) > cur.size:
            raise cur.fail(f"tensor {t.name!r} ends at byte {end:,}, past the end of the file ({cur.size:,})")
    return GGUFHeader(version=version, fields=fields, tensors=tensors)


def _value(cur: _Cursor, key: str) -> Any:
    kind = cur.unpack(_U32, f"{key}: type")
    if kind == _STRING:
        return cur.string(key)
    if kind in _SCALARS:
        return cur.unpack(_SCALARS[kind], key)
    if kind != _ARRAY:
        raise cur.fail(f"{key}: unknown value type {kind}")
    item = cur.unpack(_U32, f"{key}: array item type")
    if item not in _SCALARS and item != _STRING:
        raise cur.fail(f"{key}: array of type {item}, which GGUF does not allow (llama.cpp refuses nested arrays)")
    size = 8 if item == _STRING else _SCALARS[item].size
    n = cur.count(f"{key}: array length", size, MAX_HEADER_BYTES)
    keep = n <= KEEP_ARRAY_ITEMS and cur.kept + n <= KEEP_TOTAL_ITEMS
    cur.kept += n if keep else 0
    if item == _STRING and keep:
        return [cur.string(f"{key}[{i}]") for i in range(n)]
    if item == _STRING:
        for i in range(n):  # strings vary in length: each is walked, none is decoded
            cur.skip_string(f"{key}[{i}]")
        return SkippedArray(item, n)
    start = cur.take(n * size, key)
    return list(struct.unpack_from(f"<{n}{_CODES[item]}", cur.data, start)) if keep else SkippedArray(item, n)


def _tensor_info(cur: _Cursor, i: int) -> TensorInfo:
    name = cur.string(f"tensor {i} name")
    if len(name.encode()) >= _MAX_NAME:
        raise cur.fail(f"tensor {i} name is {len(name.encode())} bytes; llama.cpp allows {_MAX_NAME - 1}")
    n_dims = cur.unpack(_U32, f"tensor {name!r}: dimension count")
    if n_dims > _MAX_DIMS:
        raise cur.fail(f"tensor {name!r} has {n_dims:,} dimensions; ggml allows {_MAX_DIMS}")
    dims = [cur.unpack(_U64, f"tensor {name!r}: dimension {d}") for d in range(n_dims)]
    elements = math.prod(dims)
    if elements >= 2**63:
        raise cur.fail(f"tensor {name!r}: shape {dims} has 2^63 elements or more")
    raw_type = cur.unpack(_U32, f"tensor {name!r}: type")
    try:
        kind = GGMLQuantizationType(raw_type)
        block, size = GGML_QUANT_SIZES[kind]
    except (ValueError, KeyError):
        raise cur.fail(f"tensor {name!r}: unknown ggml type {raw_type}") from None
    if dims and dims[0] % block:
        raise cur.fail(f"tensor {name!r}: rows of {dims[0]:,} elements do not fill whole {kind.name} blocks of {block}")
    offset = cur.unpack(_U64, f"tensor {name!r}: data offset")
    return TensorInfo(name=name, type=kind.name, shape=dims, n_bytes=elements // block * size, offset=offset)
