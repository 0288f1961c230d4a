"""VRAM planning: model metadata readers, the memory estimator and the lineup planner.

    gguf_header   a GGUF's header, every count checked against the file
    metadata      a local GGUF -> ModelShape          served   Ollama /api/show, llama-server /props
    guess         a name or parameter count -> an estimated ModelShape (guess_moe: released MoE models)
    settings      llama-server's memory flags, and the sizes llama.cpp derives from them
    run_args      those flags read from a container's command line (-ot, --n-cpu-moe, -ts, -fa...)
    devices       which device holds each layer and tensor (the layer split, -sm, tensor overrides)
    sizes         units, the per-GPU overhead and the flags' bounds, as plain numbers
    weights, kvcache, compute   the three things llama.cpp allocates, split GPU / host
    device_compute              compute buffers per device and host (who runs what, pipeline copies)
    estimate      their sum (and the most GPU layers that fit a budget)
    planner       a lineup on the GPUs of the cluster   lineup   that lineup from the inventory
    llama_log     llama.cpp's own figures, read from its log   accuracy   the two compared

Accuracy against llama.cpp's logs: docs/vram-accuracy.md.
"""

# Import from the modules themselves: a package that loaded them all would load gguf and numpy
# for anyone who needs only `settings` (`homelab plan --help` reads its bounds).
__all__: list[str] = []
