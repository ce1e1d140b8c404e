#!/usr/bin/env bash
# Builds llama-server and llama-bench once, with cmake, from the exact llama.cpp source that node-llama-cpp
# ships (llama/gitRelease.bundle, plus its patches), into $1 (default ~/.cache/mf-bench/llama.cpp-<release>).
# Run by bench/peers.ts when the binaries are missing; ~11 minutes on 2 cores.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
NLC="$ROOT/node_modules/node-llama-cpp/llama"
RELEASE="$(node -p "require('$NLC/binariesGithubRelease.json').release")"
DEST="${1:-$HOME/.cache/mf-bench/llama.cpp-$RELEASE}"
if [ -x "$DEST/bin/llama-server" ] && [ -x "$DEST/bin/llama-bench" ]; then echo "$DEST"; exit 0; fi
WORK="$DEST.work"
rm -rf "$WORK" && mkdir -p "$WORK"
git clone -q "$NLC/gitRelease.bundle" "$WORK/src" 2>/dev/null
for p in "$NLC"/patches/*.diff; do [ -e "$p" ] && (cd "$WORK/src" && git apply "$p"); done
cmake -S "$WORK/src" -B "$WORK/build" -DCMAKE_BUILD_TYPE=Release -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF \
  -DGGML_METAL=OFF -DGGML_CUDA=OFF -DGGML_VULKAN=OFF -DBUILD_SHARED_LIBS=OFF -DLLAMA_BUILD_TESTS=OFF >&2
nice -n 10 cmake --build "$WORK/build" --target llama-server llama-bench -j "$(nproc)" >&2
mkdir -p "$DEST/bin"
cp "$WORK/build/bin/llama-server" "$WORK/build/bin/llama-bench" "$DEST/bin/"
rm -rf "$WORK"
echo "$DEST"
