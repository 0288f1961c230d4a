"""Compute buffers per device and on the host: who runs which part of the graph (ggml-backend's scheduler).

`homelab.vram.compute` sizes the parts of the worst-case graph; this module says on which buffer
each lands once layers and tensors are placed (`homelab.vram.devices`):

  a device holding blocks  the masks and cache indices (copied to every device running attention),
                           the largest attention or feed-forward phase of a layer, the logits if it
                           holds the output layer;
  a device holding only overridden tensors (`-ot blk\\.1\\.=CUDA1`)  the ops reading them run there
                           (ggml-backend.cpp:1101-1120 assigns a weight's op to its buffer's backend):
                           a feed-forward phase;
  the first device         on CUDA, the large ops of CPU layers and CPU experts too: ggml-cuda asks
                           for every op of a batch of 32 tokens or more whose weight is in host memory
                           (ggml-backend.cpp:1107-1116, ggml-cuda.cu:5754-5757), so a CPU layer's K
                           and V and a CPU expert stack are copied into its buffer. ggml-rpc asks for
                           none (offload_op NULL, ggml-rpc.cpp:2264): with RPC devices the host runs
                           CPU layers (its buffer is then the CPU build's) and CPU experts (their
                           products);
  the host                 the graph inputs (masks, indices, token rows), the logits when the output
                           layer stays there.

Pipeline parallelism (several devices holding every layer, `-sm layer`, no override: llama-
context.cpp:431-459) makes the scheduler keep four copies of every split input for the whole
graph (ggml-backend.cpp:1551-1580, 1703-1730): each device holding blocks adds three copies of its
masks, indices and incoming activation, the first device nine activations more and the host
three copies of the masks and indices and six activations (fitted to benchmarks/data/vram-rpc:
mostly within two activations, at worst seven (14 MiB, gpt-oss); on CUDA the same scheduler code
runs, unmeasured).
"""

from __future__ import annotations

from dataclasses import replace

from homelab.vram.compute import (
    HOST_ACTS,
    ComputeSplit,
    GraphTerms,
    attention_peak,
    cache_side_rows,
    fa_f16_copies,
    graph_terms,
    layer_ffn_peak,
    layer_kq,
)
from homelab.vram.devices import CPU, DeviceMap
from homelab.vram.galloc import attention_rise
from homelab.vram.kvcache import LayerCache
from homelab.vram.settings import Context, RunSettings
from homelab.vram.shape import ModelShape
from homelab.vram.weights import WeightSplit

__all__ = ["compute_buffers"]

_F32, _F16 = 4, 2
_SCHED_MAX_COPIES = 4  # GGML_SCHED_MAX_COPIES, ggml-backend.cpp:911-912
_FFN_HOLE_ACTS = 2  # with CPU layers, the feed-forward phase grows by up to two activations
_PIPELINE_FIRST_ACTS = 9  # the first device's further pinned inputs with pipeline parallelism (fitted)
_PIPELINE_HOST_ACTS = 2  # per extra copy on the host (fitted)


def _pipeline_copies(settings: RunSettings, devices: DeviceMap) -> int:
    """Copies of every split input the scheduler keeps: 4 with pipeline parallelism, else 1."""
    parallel = (
        len(devices.active) > 1
        and CPU not in devices.layers
        and settings.split_mode == "layer"
        and not devices.overrides
    )
    return _SCHED_MAX_COPIES if parallel else 1


def _device(
    shape: ModelShape,
    ctx: Context,
    terms: GraphTerms,
    devices: DeviceMap,
    device: int,
    weights: WeightSplit,
    attention: list[int],
    host_ops: tuple[int, int] | None,
) -> int:
    """One device's compute buffer before pipeline copies.

    `host_ops` is what the first device's attention and feed-forward phases grow by when it runs the
    host's large ops (CUDA only; None of it elsewhere).
    """
    blocks = [il for il in range(shape.n_layer_trunk) if devices.layers[il] == device]
    grow = host_ops if host_ops is not None and device == devices.first else None
    logits = _output(shape, terms, devices, device, weights) if host_ops is None else 0
    logits = logits or (terms.logits if devices.layers[shape.n_layer] == device else 0)
    if not blocks and grow is None:
        held = _tensors_only(shape, ctx, terms, weights, device) if device not in devices.layers else 0
        return max(held, logits)
    # The last block runs its feed-forward on the output rows alone; routed experts kept on the CPU
    # run on the host (RPC) or, on CUDA, on the first device (`grow`).
    ffn = terms.ffn if blocks != [shape.n_layer_trunk - 1] else terms.ffn_last
    if grow is None and all(il in weights.cpu_expert_layers for il in blocks):
        ffn = min(ffn, terms.ffn_shared)
    # With `grow` this device also runs the CPU layers' attention (op offload).
    runs = blocks + ([il for il in range(shape.n_layer_trunk) if devices.layers[il] == CPU] if grow else [])
    attn = max((attention[il] for il in runs), default=0) + (grow[0] if grow else 0)
    ffn += grow[1] if grow else 0
    return terms.masks + (terms.v_idxs if blocks else 0) + max(attn, ffn, logits)


def _attention(
    shape: ModelShape,
    settings: RunSettings,
    ctx: Context,
    terms: GraphTerms,
    weights: WeightSplit,
    devices: DeviceMap,
    il: int,
) -> int:
    """A block's attention phase on its cache's device, with the block's own KQ (a sliding window's is
    smaller). When `-ot` moved its projections away, only the products with the cache run there: they
    read the cache (ggml-backend.cpp:1101-1120 places a weight's op; the cache write lands where its
    view is, 1061-1076), so the queries and new K/V rows are copied in beside KQ."""
    kq = layer_kq(shape, settings, ctx, il)
    projections = {weights.where.get(f"blk.{il}.{name}.weight") for name in ("attn_q", "attn_q_b")} - {None}
    if projections and devices.layers[il] not in projections:
        return kq + cache_side_rows(shape, ctx, il)
    return attention_peak(shape, settings, ctx, replace(terms, kq=kq))


def _tensors_only(shape: ModelShape, ctx: Context, terms: GraphTerms, weights: WeightSplit, device: int) -> int:
    """A device holding some layer's overridden tensors runs the ops that read them (ggml-backend.cpp:
    1101-1120) and those after them up to the cache write, which runs where the cache is: the
    feed-forward phase of the blocks it holds tensors of (the last block's on its output rows, a
    dense first block's width not among them), the attention's projections (deepseek2's absorbed
    queries among them), and without flash attention the softmax of an attention-sinks layer
    (gpt-oss), so the KQ matrix and the mask are copied there (SOFT_MAX reads the sinks weight;
    FLASH_ATTN_EXT is exempt, 1098-1099)."""
    mine = [name for name, d in weights.where.items() if d == device]
    layers = {int(name.split(".")[1]) for name in mine if name.startswith("blk.")}
    ffn = max((layer_ffn_peak(shape, ctx, il) for il in layers if il < shape.n_layer_trunk), default=0)
    attention = _attention_side(shape, ctx, terms) if any(".attn_" in name for name in mine) else 0
    sinks = terms.kq + terms.masks if terms.kq and any(name.endswith(".attn_sinks.weight") for name in mine) else 0
    return max(ffn, attention, sinks)


def _attention_side(shape: ModelShape, ctx: Context, terms: GraphTerms) -> int:
    """What a device holding a block's attention weights but not its cache runs of the attention:
    the attention's output ([n_head x head size, n_ubatch]) comes back for its projection, beside the
    residual and the product (traced with GGML_SCHED_DEBUG=2: the split reading `kqv_out-1` and
    `l_out-0` on that device is its peak). deepseek2 with MLA also absorbs the queries there."""
    if shape.mla:
        return terms.attn_acts
    return shape.n_head * shape.head_dim_v * ctx.n_ubatch * _F32 + 2 * terms.act


def _output(shape: ModelShape, terms: GraphTerms, devices: DeviceMap, device: int, weights: WeightSplit) -> int:
    """The output layer's device, when the last block's experts ran on the host, also sums them.

    The ops after the last weighted one (the experts' down product) read no weight, so the
    scheduler's "expand gpu up" gives them the backend of the next assigned op, the output norm's
    (ggml-backend.cpp:1290-1309; "expand gpu down", 1269-1288, stops at a CPU op). Only a last
    block computing every row makes that sum large (`GraphTerms.last_reduction`).
    """
    last = shape.n_layer_trunk - 1
    if devices.layers[shape.n_layer] != device or devices.layers[last] == device:
        return 0
    if devices.layers[last] != CPU and last not in weights.cpu_expert_layers:
        return 0
    return terms.last_reduction + terms.logits if terms.last_reduction else 0


def compute_buffers(
    shape: ModelShape,
    settings: RunSettings,
    ctx: Context,
    kv: list[LayerCache],
    devices: DeviceMap,
    weights: WeightSplit,
) -> ComputeSplit:
    """Compute buffer bytes of each device and of the host for this model, settings and placement."""
    cpu_experts = weights.largest_cpu_experts
    terms = graph_terms(shape, settings, ctx)
    cpu_only_peak = max(attention_peak(shape, settings, ctx, terms), terms.ffn, terms.logits)
    cpu_build = terms.masks + terms.v_idxs + terms.small + cpu_only_peak + terms.act
    if settings.backend == "cpu":
        return ComputeSplit(0, cpu_build)  # one buffer for everything, the token rows included
    cuda = settings.backend == "cuda"
    on_device = [device != CPU for device in devices.layers]
    cpu_layers = not all(on_device[: shape.n_layer])
    f16_copies = fa_f16_copies(shape, settings, ctx, kv) if cuda else 0
    attention = [
        _attention(shape, settings, ctx, terms, weights, devices, il) + f16_copies for il in range(shape.n_layer)
    ]
    host_ops = None
    if cuda and (cpu_layers or cpu_experts):
        kv_copy = max(
            (layer.bytes for layer, on in zip(kv, on_device[: shape.n_layer], strict=True) if not on), default=0
        )
        rise = attention_rise(shape, settings, ctx, kv, on_device)
        # The freed K/V copies leave a hole the feed-forward tensors only partly reuse.
        host_ops = (kv_copy + rise, min(kv_copy, _FFN_HOLE_ACTS * terms.act) + cpu_experts)
    copies = _pipeline_copies(settings, devices)
    per_device: dict[int, int] = {}
    pools: dict[int, int] = {}
    for device in sorted(set(devices.active) | set(weights.device_bytes)):
        per_device[device] = _device(shape, ctx, terms, devices, device, weights, attention, host_ops)
        blocks = device in devices.layers[: shape.n_layer]
        if blocks and copies > 1:
            per_device[device] += (copies - 1) * (terms.masks + terms.v_idxs + terms.act)
            per_device[device] += _PIPELINE_FIRST_ACTS * terms.act if device == devices.active[0] else 0
        if cuda and (blocks or (device == devices.first and host_ops is not None)):
            pools[device] = terms.kq * _F16 // _F32
    host = _host(terms, shape, devices, cuda, cpu_build, copies, cpu_experts)
    return ComputeSplit(sum(per_device.values()), host, sum(pools.values()), per_device, pools)


def _host(
    terms: GraphTerms, shape: ModelShape, devices: DeviceMap, cuda: bool, cpu_build: int, copies: int, experts: int
) -> int:
    """The host's compute buffer: graph inputs, logits of a CPU output layer, and what it runs itself."""
    if not cuda and CPU in devices.layers[: shape.n_layer]:
        return cpu_build  # the host runs CPU layers whole, as a CPU-only build does
    output_on_host = devices.layers[shape.n_layer] == CPU
    host = terms.masks + terms.v_idxs + terms.small + HOST_ACTS * terms.act + (terms.logits if output_on_host else 0)
    host += (copies - 1) * (terms.masks + terms.v_idxs + _PIPELINE_HOST_ACTS * terms.act)
    return host + (terms.routed_on_host if experts and not cuda else 0)
