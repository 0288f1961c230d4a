"""What the estimator knows per llama.cpp architecture: which ones it models, and their sliding windows.

The buffer formulas hold for decoder-only transformers with a standard KV cache (one K and one V
row per token and layer) or deepseek2's multi-head latent attention (one compressed K row, no V).
Architectures with other memories (recurrent state, hybrid Mamba layers) would be sized wrongly,
so they are refused instead of guessed.

Sliding-window attention follows llama.cpp's `load_swa_pattern(ml, n_pattern)`: a GGUF may carry
`{arch}.attention.sliding_window_pattern` (a period or one bool per layer); without it, every
`n_pattern`-th layer is dense and the others slide. Some architectures slide only when the file
names a window (gemma3, olmo2); phi3's window is ignored by llama.cpp, so it is ignored here.
"""

from __future__ import annotations

from dataclasses import dataclass

from homelab.errors import UnsupportedModel

__all__ = ["ARCHITECTURES", "ArchInfo", "arch_info", "swa_layers"]


@dataclass(frozen=True)
class ArchInfo:
    """Sliding-window behaviour of one architecture (None: never slides)."""

    swa_period: int | None = None
    default_window: int | None = None
    window_needs_key: bool = False


_DENSE = ArchInfo()
ARCHITECTURES: dict[str, ArchInfo] = {
    **{
        name: _DENSE
        for name in (
            "llama", "qwen2", "qwen3", "qwen2moe", "qwen3moe", "gemma", "phi3", "granite", "internlm2",
            "starcoder2", "mistral3", "smollm3", "olmo", "exaone", "command-r", "stablelm", "seed_oss",
            "glm4moe", "deepseek2",
        )
    },
    "gemma2": ArchInfo(swa_period=2, default_window=4096),
    "gemma3": ArchInfo(swa_period=6, window_needs_key=True),
    "cohere2": ArchInfo(swa_period=4),
    "olmo2": ArchInfo(swa_period=4, window_needs_key=True),
    "gpt-oss": ArchInfo(swa_period=2, window_needs_key=True),
}  # fmt: skip


def arch_info(arch: str) -> ArchInfo:
    """The estimator's knowledge of `arch`.

    Raises:
        UnsupportedModel: llama.cpp may know `arch`, but its memory is not modelled here.
    """
    try:
        return ARCHITECTURES[arch]
    except KeyError:
        known = ", ".join(sorted(ARCHITECTURES))
        raise UnsupportedModel(
            f"architecture {arch!r} is not modelled by the VRAM estimator (known: {known})"
        ) from None


def swa_layers(
    arch: str, n_layer: int, window: int | None, pattern: int | list[bool] | None
) -> tuple[int | None, list[bool]]:
    """The sliding window in tokens and, per layer, whether it slides (llama.cpp's rule).

    Args:
        arch: The architecture name.
        n_layer: Number of blocks.
        window: `{arch}.attention.sliding_window` from the file, if any.
        pattern: `{arch}.attention.sliding_window_pattern`: a period or one bool per layer.
    """
    info = arch_info(arch)
    if info.swa_period is None or (info.window_needs_key and not window):
        return None, [False] * n_layer
    window = window or info.default_window
    if isinstance(pattern, list):
        flags = [bool(x) for x in pattern[:n_layer]]
        return window, flags + [False] * (n_layer - len(flags))
    period = pattern if isinstance(pattern, int) else info.swa_period
    # llama.cpp: period 0 means every layer slides; otherwise the last of each period is dense.
    return window, [period == 0 or il % period < period - 1 for il in range(n_layer)]
