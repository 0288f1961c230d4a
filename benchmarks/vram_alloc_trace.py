"""Make ggml-alloc print its allocations when GGML_ALLOC_TRACE is set (a study aid, not shipped).

ggml-alloc sizes llama.cpp's compute buffers as the high-water mark of a best-fit allocator over
the graph; its own trace (`AT_PRINTF`) is compiled out. This patches a llama.cpp source tree so
that the trace goes to stderr when the environment variable GGML_ALLOC_TRACE is set, with the
allocator's address on each allocation and free (one allocator per backend buffer). Without the
variable the build behaves as before.

    python benchmarks/vram_alloc_trace.py patch LLAMA_CPP_SOURCE_DIR
    python benchmarks/vram_alloc_trace.py trim CAPTURE_DIR   # logs/*.log: first reserve only

`homelab.vram.alloc_trace` reads the trimmed logs back.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from vram_capture import trim_log

_EDITS = (
    (
        "//#define AT_PRINTF(...) GGML_LOG_DEBUG(__VA_ARGS__)\n#define AT_PRINTF(...)\n",
        "#include <stdio.h>\n"
        "static int ggml_alloc_trace(void) { static int t = -1; "
        'if (t < 0) { t = getenv("GGML_ALLOC_TRACE") != NULL; } return t; }\n'
        "#define AT_PRINTF(...) do { if (ggml_alloc_trace()) { fprintf(stderr, __VA_ARGS__); } } while (0)\n",
    ),
    (
        'AT_PRINTF("%s: allocating %s (%zu bytes) - ", __func__, tensor->name, size);',
        'AT_PRINTF("%s: [%p] allocating %s (%zu bytes) - ", __func__, (void *) alloc, tensor->name, size);',
    ),
    (
        'AT_PRINTF("%s: freeing %s at {chunk=%d, offset=%zu} (%zu bytes) - n_free_blocks = %d\\n",\n'
        "        __func__, node->name,",
        'AT_PRINTF("%s: [%p] freeing %s at {chunk=%d, offset=%zu} (%zu bytes) - n_free_blocks = %d\\n",\n'
        "        __func__, (void *) alloc, node->name,",
    ),
)


def patch(source: Path) -> None:
    """Apply the edits to SOURCE/ggml/src/ggml-alloc.c; fails if the file is not as expected."""
    path = source / "ggml" / "src" / "ggml-alloc.c"
    text = path.read_text()
    for old, new in _EDITS:
        if old not in text:
            raise SystemExit(f"{path}: expected text not found: {old[:60]!r}")
        text = text.replace(old, new)
    path.write_text(text)


_EVENT = re.compile(r"^(ggml_dyn_tallocr_alloc|ggml_gallocr_free_node): ")


def trim(text: str) -> str:
    """The log's memory lines, then the allocations and frees of the first reserve (the pp graph)."""
    events: list[str] = []
    for line in text.splitlines():
        if "allocating inp_tokens " in line and events:
            break
        if _EVENT.match(line):
            events.append(line)
    return trim_log(text) + "\n".join(events) + "\n"


if __name__ == "__main__":
    command, target = sys.argv[1], Path(sys.argv[2])
    if command == "patch":
        patch(target)
    else:
        for log in (target / "logs").glob("*.log"):
            log.write_text(trim(log.read_text(errors="replace")))
