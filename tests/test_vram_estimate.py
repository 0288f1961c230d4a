"""The estimator's rules, one by one, on the benchmark models' stored shapes (no GGUF needed)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from homelab.errors import SettingsError
from homelab.vram.estimate import estimate, max_gpu_layers
from homelab.vram.guess import guess_shape
from homelab.vram.settings import RunSettings, context_for
from homelab.vram.sizes import MIB
from tests.vram_shapes import stored_shape as shape

INTERFACE = ("weights_gpu_bytes", "weights_cpu_bytes", "kv_bytes", "compute_bytes", "gpu_total_bytes",
             "cpu_total_bytes", "n_gpu_layers")  # fmt: skip


@pytest.mark.parametrize(
    ("ctx", "parallel", "unified", "n_ctx", "n_ctx_seq"),
    [(4096, 1, False, 4096, 4096), (1000, 1, False, 1024, 1024), (4096, 3, False, 4608, 1536),
     (4096, 4, True, 4096, 4096), (None, 1, False, 32768, 32768)],
)  # fmt: skip
def test_context_is_padded_to_256_cells_per_stream(
    ctx: int | None, parallel: int, unified: bool, n_ctx: int, n_ctx_seq: int
) -> None:
    c = context_for(shape("llama-f16"), RunSettings(ctx_size=ctx, parallel=parallel, kv_unified=unified))
    assert (c.n_ctx, c.n_ctx_seq) == (n_ctx, n_ctx_seq)


@pytest.mark.parametrize(
    ("ctx", "parallel", "unified", "swa_cells"),
    [(32768, 1, False, 1536), (512, 1, False, 512), (32768, 4, False, 1536), (4096, 4, False, 1024),
     (32768, 4, True, 4608)],
)  # fmt: skip
def test_sliding_window_cache_is_window_plus_micro_batch(
    ctx: int, parallel: int, unified: bool, swa_cells: int
) -> None:
    c = context_for(shape("gemma2-f16"), RunSettings(ctx_size=ctx, parallel=parallel, kv_unified=unified))
    assert c.swa_cells == swa_cells


def test_kv_bytes_per_cache_type() -> None:
    llama = shape("llama-f16")  # 8 layers, 4 KV heads of 64: 256 values per row
    f16 = estimate(llama, RunSettings(ctx_size=4096))
    q8 = estimate(llama, RunSettings(ctx_size=4096, cache_type_k="q8_0", cache_type_v="q8_0", flash_attn=True))
    q4 = estimate(llama, RunSettings(ctx_size=4096, cache_type_k="q4_0", cache_type_v="q4_0", flash_attn=True))

    assert f16.kv_bytes == 8 * 4096 * 256 * 2 * 2
    assert q8.kv_bytes == f16.kv_bytes * 34 // 64
    assert q4.kv_bytes == f16.kv_bytes * 18 // 64


def test_one_gpu_layer_is_the_output_layer() -> None:
    llama = shape("llama-f16")
    e = estimate(llama, RunSettings(ctx_size=4096, n_gpu_layers=1))
    output = sum(t.n_bytes for t in llama.tensors if t.name.startswith("output"))

    assert e.n_gpu_layers == 1
    assert e.kv_gpu_bytes == 0
    assert output <= e.weights_gpu_bytes <= output + 2 * 128


def test_tied_output_is_copied_to_the_gpu() -> None:
    gemma = shape("gemma2-f16")
    token_embd = next(t.n_bytes for t in gemma.tensors if t.name == "token_embd.weight")
    everything = estimate(gemma, RunSettings(ctx_size=4096, n_gpu_layers=-1))

    assert everything.weights_gpu_bytes == pytest.approx(gemma.weight_bytes, abs=128 * len(gemma.tensors))
    assert everything.weights_cpu_bytes == token_embd  # the input layer stays on the CPU as well


def test_cpu_only_build_uses_no_gpu_and_no_overhead() -> None:
    e = estimate(shape("llama-q4"), RunSettings(ctx_size=4096, n_gpu_layers=-1, backend="cpu"))

    assert (e.n_gpu_layers, e.gpu_total_bytes, e.overhead_bytes, e.compute_gpu_bytes) == (0, 0, 0, 0)
    assert e.cpu_total_bytes == e.weights_cpu_bytes + e.kv_bytes + e.compute_host_bytes + e.output_bytes


def test_cuda_build_computes_on_the_gpu_even_without_gpu_layers() -> None:
    e = estimate(shape("llama-f16"), RunSettings(ctx_size=4096, n_gpu_layers=0, gpu_overhead_bytes=300 * MIB))

    assert e.weights_gpu_bytes == e.kv_gpu_bytes == 0
    assert e.compute_gpu_bytes > 100 * MIB  # the KQ matrix of 4096 x 512 x 16 heads
    assert e.cuda_pool_bytes == 4096 * 512 * 16 * 2  # its f16 copy in ggml's CUDA pool
    assert e.gpu_total_bytes == e.compute_gpu_bytes + e.cuda_pool_bytes + 300 * MIB


def test_flash_attention_needs_no_kq_in_the_cuda_pool() -> None:
    flash = estimate(shape("llama-f16"), RunSettings(ctx_size=32768, n_gpu_layers=-1, flash_attn=True))
    cpu = estimate(shape("llama-f16"), RunSettings(ctx_size=32768, backend="cpu"))

    assert flash.cuda_pool_bytes == cpu.cuda_pool_bytes == 0


def test_interface_fields_and_totals() -> None:
    e = estimate(shape("llama-q8"), RunSettings(ctx_size=8192, n_gpu_layers=5, flash_attn=True))
    data = e.model_dump()

    assert all(name in data for name in INTERFACE)
    assert e.gpu_total_bytes == (
        e.weights_gpu_bytes + e.kv_gpu_bytes + e.compute_gpu_bytes + e.cuda_pool_bytes + e.overhead_bytes
    )
    assert e.kv_bytes == e.kv_gpu_bytes + e.kv_cpu_bytes
    assert e.compute_bytes == e.compute_gpu_bytes + e.compute_host_bytes


def test_flash_attention_shrinks_long_context_compute() -> None:
    llama = shape("llama-f16")
    plain = estimate(llama, RunSettings(ctx_size=32768, n_gpu_layers=-1))
    flash = estimate(llama, RunSettings(ctx_size=32768, n_gpu_layers=-1, flash_attn=True))

    assert plain.compute_gpu_bytes > 1024 * MIB > 100 * MIB > flash.compute_gpu_bytes


def test_quantized_v_cache_needs_flash_attention() -> None:
    with pytest.raises(ValidationError, match="needs flash attention"):
        RunSettings(cache_type_v="q8_0")


def test_cache_blocks_must_divide_the_key_width() -> None:
    odd = shape("qwen2-f16").model_copy(update={"head_dim_k": 40, "head_dim_v": 40})  # 2 heads x 40 = 80
    with pytest.raises(SettingsError, match="q4_0 K cache needs rows that divide by 32; this model's are 80"):
        estimate(odd, RunSettings(cache_type_k="q4_0", cache_type_v="q4_0", flash_attn=True))


def test_most_layers_that_fit_a_budget() -> None:
    model = guess_shape("qwen2.5-14b Q4_K_M")
    settings = RunSettings(ctx_size=8192, flash_attn=True)
    whole = estimate(model, settings.model_copy(update={"n_gpu_layers": -1}))

    assert max_gpu_layers(model, settings, whole.gpu_total_bytes).n_gpu_layers == 49  # type: ignore[union-attr]
    half = max_gpu_layers(model, settings, whole.gpu_total_bytes // 2)
    assert half is not None and 0 < half.n_gpu_layers < 49
    assert half.gpu_total_bytes <= whole.gpu_total_bytes // 2
    more = estimate(model, settings.model_copy(update={"n_gpu_layers": half.n_gpu_layers + 1}))
    assert more.gpu_total_bytes > whole.gpu_total_bytes // 2
    assert max_gpu_layers(model, settings, 10 * MIB) is None
