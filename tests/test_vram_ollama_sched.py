"""What Ollama's scheduler will offload, per supported version, against figures worked out by hand from its source.

Every expected number below is derived in the comment beside it from Ollama's own formulas
(GitHub ollama/ollama; fs/ggml/ggml.go and llm/server.go at v0.12.11, llm/memory.go at
v0.12.10), not from homelab's code: the toy model is small enough to do the sums on paper.

The toy: arch llama, 4 blocks, embedding 1024, 8 heads of 128, 2 KV heads, feed-forward 4096,
vocabulary 32000, every matrix F16 (2 bytes), norms F32, an untied output.

- a block (`GroupLayers`, ggml.go:300-321): q 1024*1024*2 = 2_097_152, k and v 1024*256*2 =
  524_288 each, attn_output 2_097_152, gate/up/down 1024*4096*2 = 8_388_608 each, two norms
  1024*4 each: 30_416_896;
- the output layer (llm/server.go:499-508): output_norm 4_096 + output 1024*32000*2 =
  65_536_000: 65_540_096 (token_embd is never counted: "we historically haven't included
  InputWeights");
- the KV cache of a layer (ggml.go:588): context * (128 + 128) * 2 heads * 2 bytes =
  context * 1024: 4_194_304 at num_ctx 4096, 8_388_608 at 8192;
- the graph (ggml.go:614-625, case "llama"), batch = min(512, num_ctx) = 512, heads 8, KV heads
  2, embeddingHeads 1024/8 = 128:
  full    = max(4*512*(1 + 4*1024 + ctx*9), 4*512*(1024 + 32000))
  partial = 4*512*1024 + max(4*512*(1 + 1024 + max(ctx, 1024)) + 1024*1024*9/16
                             + 4*ctx*(512*8 + 128*2),
                             4*512*(1024 + 32000) + 1024*32000*105/128)
  at 4096: full = max(2048*40961, 2048*33024) = 83_888_128;
           partial = 2_097_152 + max(10_487_808 + 589_824 + 71_303_168, 67_633_152 + 26_880_000)
                   = 2_097_152 + 94_513_152 = 96_610_304
  at 8192: full = 2048*77825 = 159_385_600;
           partial = 2_097_152 + (2048*9217 + 589_824 + 32768*4352) = 2_097_152 + 162_072_576 = 164_169_728
- a layer Ollama places = block + its cache: 34_611_200 at 4096, 38_805_504 at 8192; the minimum
  per CUDA GPU is 457 MiB = 479_199_232 (ml/device.go:348-353).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from homelab.errors import SettingsError
from homelab.vram.estimate import estimate
from homelab.vram.guess import guess_shape
from homelab.vram.ollama_graph import ollama_sizes
from homelab.vram.ollama_sched import OllamaGpu, OllamaRun, check_version, ollama_decision, scheduler_for
from homelab.vram.settings import RunSettings
from homelab.vram.shape import ModelShape, synthesize_tensors
from homelab_app.ollama_standin import ModelSpec, StandInOptions
from tests.fixtures.ollama import StandInServer
from tests.test_plan_ollama import homelab

MINIMUM = 479_199_232  # 457 MiB
LAYER_4K, LAYER_8K = 34_611_200, 38_805_504
OUTPUT = 65_540_096
PARTIAL_4K, FULL_4K, PARTIAL_8K = 96_610_304, 83_888_128, 164_169_728

TOY = ModelShape(
    name="toy", arch="llama", source="gguf", estimated=False, n_layer=4, n_embd=1024, n_head=8,
    n_head_kv=[2] * 4, head_dim_k=128, head_dim_v=128, n_ff=4096, n_vocab=32000, context_length=131072,
    swa_layers=[False] * 4, parameter_count=0,
    tensors=synthesize_tensors(
        n_layer=4, n_embd=1024, n_head=8, n_head_kv=2, head_dim=128, n_ff=4096, n_vocab=32000, weight_type="F16"
    ),
)  # fmt: skip


def decide(version: str, free: Sequence[int], num_ctx: int = 4096, **run: int) -> tuple[int, list[tuple[int, int]]]:
    """(layers offloaded, [(layers, Ollama's bytes) per GPU used]) for the toy on GPUs with `free` bytes."""
    gpus = [OllamaGpu(name=f"gpu{i}", index=i, free_bytes=f) for i, f in enumerate(free)]
    d = ollama_decision(TOY, OllamaRun(version=version, num_ctx=num_ctx, **run), gpus)
    return d.n_gpu_layers, [(g.layers, g.estimate_bytes) for g in d.gpus]


def test_ollama_sizes_the_toy_by_its_own_formulas() -> None:
    four = ollama_sizes(TOY, 4096, 1, 512, "")
    assert four.layer_weights == [30_416_896] * 4
    assert four.output_weights == OUTPUT
    assert four.kv == [4_194_304] * 4
    assert (four.graph_partial, four.graph_full) == (PARTIAL_4K, FULL_4K)
    eight = ollama_sizes(TOY, 8192, 1, 512, "")
    assert (eight.kv[0], eight.graph_partial, eight.graph_full) == (8_388_608, PARTIAL_8K, 159_385_600)
    # Two sequences of 4096 are one cache of 8192 (ggml.go:551 `context *= numParallel`).
    assert ollama_sizes(TOY, 4096, 2, 512, "").kv == eight.kv
    # q8_0 is 1 byte per element in Ollama's eyes (ggml.go:839-840): half of f16, no block scales.
    assert ollama_sizes(TOY, 4096, 1, 512, "q8_0").kv == [2_097_152] * 4


# --- 0.12.11: buildLayout / assignLayers / greedyFit (llm/server.go:884-1110) ------------------
# Each GPU's free memory first loses one layer and its cache as a buffer (:480-488), then the
# minimum, and, once the GPU is in use, the larger graph (:914); layers fit while `size <= free`.


def test_0_12_11_a_model_that_fits_is_offloaded_whole_with_the_full_graph() -> None:
    # 1 GiB: 1_073_741_824 - 34_611_200 - 479_199_232 - 96_610_304 = 463_321_088 >= 4*34_611_200
    # + 65_540_096 = 203_984_896: all five layers; Ollama's figure is them plus the full graph
    # (:585-606): 203_984_896 + 83_888_128 = 287_873_024.
    assert decide("0.12.11", [1 << 30]) == (5, [(5, 287_873_024)])


def test_0_12_11_a_model_that_does_not_fit_leaves_the_output_layer_first() -> None:
    # free 760_420_736: left for layers 760_420_736 - 34_611_200 - 479_199_232 - 96_610_304 =
    # 150_000_000. Output + 2 blocks fit (134_762_496) but not a third, so assignLayers (:1018-1041)
    # drops the output layer and tries again: 4 blocks = 138_444_800 fit. 4/5, partial graph:
    # 138_444_800 + 96_610_304 = 235_055_104.
    assert decide("0.12.11", [760_420_736]) == (4, [(4, 235_055_104)])


def test_0_12_11_a_longer_context_offloads_fewer_layers() -> None:
    # num_ctx 8192 on the same GPU: 760_420_736 - 38_805_504 - 479_199_232 - 164_169_728 =
    # 78_246_272: the output (65_540_096) fits alone; without it, 2 blocks (77_611_008).
    # 2/5: 77_611_008 + 164_169_728 = 241_780_736.
    assert decide("0.12.11", [760_420_736], num_ctx=8192) == (2, [(2, 241_780_736)])


def test_0_12_11_the_457_mib_minimum_and_float32_free_memory() -> None:
    # Exactly enough: buffer + minimum + graph + all layers = 34_611_200 + 479_199_232 +
    # 96_610_304 + 203_984_896 = 814_405_632.
    exact = 814_405_632
    assert decide("0.12.11", [exact])[0] == 5
    # greedyFit multiplies a float32 of the free bytes (:1087): 203_984_888 free rounds up to
    # 203_984_896 (float32 steps are 16 bytes there), so 8 bytes short still takes everything;
    # 203_984_887 rounds down to 203_984_880 and the output layer stays on the CPU.
    assert decide("0.12.11", [exact - 8])[0] == 5
    assert decide("0.12.11", [exact - 9])[0] == 4
    # OLLAMA_GPU_OVERHEAD adds to the minimum (:914): 16 MiB more reserve, one layer fewer.
    assert decide("0.12.11", [exact], ollama_gpu_overhead_bytes=16 << 20)[0] == 4


def test_0_12_11_two_gpus_share_the_layers() -> None:
    # GPU0 730_420_736 and GPU1 710_420_736: 120_000_000 and 100_000_000 left for layers once
    # both carry the graph. First pass (no graph yet): everything fits GPU0. Second: GPU0 has the
    # graph (120_000_000 left), GPU1 not yet (196_610_304): output + blocks 3, 2 on GPU1, 1 and 0
    # on GPU0 (the smallest capacity factor that places all five, :1051-1081). Third, both with
    # the graph: all five need 203_984_896 > 220_000_000 minus what whole layers waste (GPU1's
    # 100_000_000 holds the output and no block: 34_459_904 left < 34_611_200), so the output is
    # dropped and 4 blocks split 2 + 2 (factor 0.6922: 69_222_400 of 100_000_000 and of
    # 120_000_000). Each GPU: 69_222_400 + 96_610_304 = 165_832_704.
    assert decide("0.12.11", [730_420_736, 710_420_736]) == (4, [(2, 165_832_704), (2, 165_832_704)])


# --- 0.12.0-0.12.10: estimateGPULayers (llm/memory.go:154-437 at v0.12.10) ---------------------
# A GPU takes part if free >= overhead + graph + minimum + 2 layers (:285); it starts with the
# minimum and one layer as a buffer allocated (:303); a layer fits while free > overhead +
# allocated + graph + layer (:333, strictly); its figure counts the minimum and the buffer.


def test_0_12_10_fits_whole_only_strictly_above_the_sum() -> None:
    # allocated 479_199_232 + 34_611_200 = 513_810_432; all five need free > 513_810_432 +
    # 96_610_304 + 138_444_800 + 65_540_096 = 814_405_632. At exactly that the output stays out.
    # 4/5: 513_810_432 + 138_444_800 + 96_610_304 = 748_865_536; 5/5: 513_810_432 + 203_984_896
    # + 83_888_128 (full graph) = 801_683_456.
    assert decide("0.12.10", [814_405_632]) == (4, [(4, 748_865_536)])
    assert decide("0.12.10", [814_405_633]) == (5, [(5, 801_683_456)])
    assert decide("0.12.0", [814_405_633]) == (5, [(5, 801_683_456)])


def test_0_12_10_splits_and_a_longer_context_takes_the_gpu_away() -> None:
    # 700_000_000: block 3 needs > 645_031_936, block 2 > 679_643_136, block 1 > 714_254_336:
    # two blocks, then the GPU leaves the deal (:338-340) and the rest stays on the CPU.
    # 513_810_432 + 69_222_400 + 96_610_304 = 679_643_136.
    assert decide("0.12.10", [700_000_000]) == (2, [(2, 679_643_136)])
    # num_ctx 8192: to take part a GPU needs 164_169_728 + 479_199_232 + 2*38_805_504 =
    # 720_979_968 > 700_000_000: nothing on the GPU at all.
    assert decide("0.12.10", [700_000_000], num_ctx=8192) == (0, [])


def test_0_12_10_two_gpus_take_layers_in_turn() -> None:
    # One GPU cannot hold everything, so both take part, with the partial graph on each (:253-256).
    # Blocks 3..0 go to GPU (i % 2): 1, 0, 1, 0, each fitting (the second on a GPU needs
    # > 548_421_632 + 96_610_304 + 34_611_200 = 679_643_136). The output (count 4 % 2 -> GPU0)
    # needs > 583_032_832 + 96_610_304 + 65_540_096 = 745_183_232: no. Each GPU: 583_032_832 +
    # 96_610_304 = 679_643_136.
    assert decide("0.12.10", [700_000_000, 700_000_000]) == (4, [(2, 679_643_136), (2, 679_643_136)])


# --- which scheduler, by version ------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "arch", "scheduler"),
    [
        ("0.12.0", "llama", "estimate"),
        ("0.12.10", "qwen2", "estimate"),
        ("0.12.11", "llama", "layout"),
        ("0.12.11", "qwen3", "measured"),  # OllamaEngineRequired (fs/ggml/ggml.go:241-253)
        ("0.12.5", "qwen3", "estimate"),  # v0.12.5's list had qwen3moe but not qwen3
        ("0.12.1", "qwen3moe", "estimate"),  # added in v0.12.2
        ("0.12.2", "qwen3moe", "measured"),
        ("0.30.0", "llama", "fit"),
        ("0.33.0-rc2", "qwen3", "fit"),
    ],
)
def test_the_scheduler_follows_the_release(version: str, arch: str, scheduler: str) -> None:
    assert scheduler_for(version, arch) == scheduler


@pytest.mark.parametrize("version", ["0.11.10", "0.13.0", "0.29.9", "latest", ""])
def test_a_release_homelab_does_not_model_is_refused(version: str) -> None:
    with pytest.raises(SettingsError, match=r"0\.12\.x and 0\.30|X\.Y\.Z"):
        check_version(version)


# --- 0.30+: llama-server --fit, 1024 MiB margin per device ---------------------------------


def test_0_30_fits_what_leaves_the_fit_margin_free() -> None:
    # Ollama passes no -ngl (llm/llama_server.go:403-410 at v0.33.0-rc2); llama.cpp's fit keeps
    # 1024 MiB free per device (common/common.h:486). Its flags: -c 4096 -np 1 -b/-ub 512,
    # flash attention auto (on for a CUDA GPU).
    settings = RunSettings(ctx_size=4096, flash_attn=True, n_gpu_layers=-1, n_ubatch=512, n_batch=512)
    whole = estimate(TOY, settings).gpu_total_bytes
    assert decide("0.33.0", [whole + (1 << 30)])[0] == 5
    assert decide("0.33.0", [whole + (1 << 30) - 1])[0] == 4


# --- what the plan flags ------------------------------------------------------------------


def test_ollama_leaving_layers_on_the_cpu_that_llama_cpp_would_fit_is_flagged() -> None:
    # 760_420_736 free: Ollama 0.12.11 offloads 4/5 (above); llama.cpp's own buffers for all five
    # layers without the CUDA context are far less, so the model would fit.
    gpu = [OllamaGpu(name="gpu0", index=0, free_bytes=760_420_736)]
    d = ollama_decision(TOY, OllamaRun(version="0.12.11", num_ctx=4096, cuda_overhead_bytes=0), gpu)
    assert (d.n_gpu_layers, d.leaves_cpu_though_fits, d.over_commits) == (4, True, False)
    assert d.llama_cpp_full_bytes <= 760_420_736


def test_a_cuda_context_larger_than_ollamas_reserve_is_an_over_commit() -> None:
    # 1 GiB: Ollama 0.12.11 reserves 457 MiB and offloads everything; a process whose CUDA
    # context and workspaces take 800 MiB needs more than the GPU has.
    gpu = [OllamaGpu(name="gpu0", index=0, free_bytes=1 << 30)]
    d = ollama_decision(TOY, OllamaRun(version="0.12.11", num_ctx=4096, cuda_overhead_bytes=800 << 20), gpu)
    assert (d.n_gpu_layers, d.over_commits, d.leaves_cpu_though_fits) == (5, True, False)


def test_ollamas_own_engine_is_homelabs_reading_not_its_formula() -> None:
    shape = guess_shape("qwen3:8b")
    gpu = [OllamaGpu(name="gpu0", index=0, free_bytes=24 << 30)]
    d = ollama_decision(shape, OllamaRun(version="0.12.11", num_ctx=8192), gpu)
    assert (d.scheduler, d.exact, d.flash_attn) == ("measured", False, True)
    assert d.n_gpu_layers == d.n_layers_total


# --- the plan prints both ------------------------------------------------------------------


def cluster(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "cluster.yaml"
    path.write_text(
        "nodes:\n  - name: box\n    tier: gpu\n    host: box.home.arpa\n"
        "    gpus: [{name: RTX 3090, vram_gib: 24}]\n    endpoints:\n"
        f"      - name: ollama\n        kind: ollama\n        url: {url}\n"
        "        models:\n          - {name: 'qwen2.5:14b', alias: chat}\n"
    )
    return path


def test_the_plan_says_what_llama_cpp_would_take_and_what_ollama_will_offload(tmp_path: Path) -> None:
    path = cluster(tmp_path, "http://127.0.0.1:9")
    text = homelab("plan", "-i", path, "--no-ask-nodes", "--ollama-version", "0.12.11")
    assert text.returncode == 0, text.stderr
    # qwen2 is not among the architectures 0.12.11 gives flash attention (fs/ggml/ggml.go:827-834),
    # so llama.cpp run as Ollama runs it takes more than the plan's row (planned with it on).
    assert "llama.cpp would take 18.5 GiB with 49 layers (flash attention off, as Ollama runs it)" in text.stdout
    assert "Ollama 0.12.11 will offload 49/49 layers (its estimate 16.5 GiB; 457 MiB reserve per GPU)" in text.stdout
    assumed = homelab("plan", "-i", path, "--no-ask-nodes")
    assert "Ollama 0.33.0 (assumed: the node was not asked) will offload 49/49 layers" in assumed.stdout
    assert "1024 MiB fit margin per GPU" in assumed.stdout
    data = json.loads(homelab("plan", "-i", path, "--no-ask-nodes", "--ollama-version", "0.12.3", "--json").stdout)
    placed = data["gpus"][0]["placements"][0]
    assert placed["estimate"]["n_gpu_layers"] == 49  # the existing fields stay
    assert placed["ollama"]["scheduler"] == "estimate"
    assert placed["ollama"]["n_gpu_layers"] == 49
    assert placed["ollama"]["reserve_bytes_per_gpu"] == MINIMUM
    refused = homelab("plan", "-i", path, "--no-ask-nodes", "--ollama-version", "0.20.0")
    assert refused.returncode == 2
    assert "homelab plans Ollama 0.12.x and 0.30 and later, not 0.20.0" in refused.stderr


QWEN = ModelSpec(
    name="qwen2.5:14b", size=9_000_000_000, family="qwen2", parameter_size="14.8B", quantization_level="Q4_K_M",
    context_length=32768, n_vocab=152064,
    gguf_keys={
        "qwen2.block_count": 48, "qwen2.embedding_length": 5120, "qwen2.attention.head_count": 40,
        "qwen2.attention.head_count_kv": 8, "qwen2.feed_forward_length": 13824,
    },
)  # fmt: skip


def test_the_plan_uses_the_version_the_node_reports(
    ollama_standin_factory: Callable[..., StandInServer], tmp_path: Path
) -> None:
    # The Ollama stand-in (not Ollama) playing 0.12.11 answers /api/version with it.
    server = ollama_standin_factory([QWEN], StandInOptions(ollama_version="0.12.11"))
    result = homelab("plan", "-i", cluster(tmp_path, server.url))
    assert result.returncode == 0, result.stderr
    assert "Ollama 0.12.11 will offload" in result.stdout
    assert "assumed" not in result.stdout
