#!/usr/bin/env bash
# Build llama.cpp's own `llama-server` (the local engine), `llama-batched-bench` (the ceiling
# bench/local.py compares with), `llama-export-lora` and `llama-quantize` (merging a fine-tuned
# adapter into a full f16 or q8_0 model) from the llama.cpp source that llama-cpp-python vendors, so the local engine runs
# exactly the inference code the in-process path runs.
#
# Usage: build-llama-server.sh LLAMA_CPP_PYTHON_VERSION CACHE_KEY "CMAKE FLAGS" DEST_BIN_DIR
# The binaries are cached under ~/.cache/llm-judge/llama-server/VERSION-KEY and copied to
# DEST_BIN_DIR (the virtual environment's bin/, where llm-judge looks first). About 10 minutes on
# 2 cores the first time, seconds afterwards. Static, without OpenSSL and without the web UI (whose
# default build downloads it), so the binary needs nothing beyond libc and libstdc++.
set -euo pipefail
VERSION=$1; KEY=$2; FLAGS=$3; DEST=$4
CACHE=${LLM_JUDGE_SERVER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/llm-judge/llama-server}/$VERSION-$KEY
BINS=(llama-server llama-batched-bench llama-export-lora llama-quantize)

missing=0
for b in "${BINS[@]}"; do [ -x "$CACHE/$b" ] || missing=1; done
if [ $missing = 1 ]; then
  echo "==> building llama-server from llama-cpp-python $VERSION's llama.cpp ($KEY; takes several minutes)"
  WORK=$(mktemp -d)
  trap 'rm -rf "$WORK"' EXIT
  PY=${PYTHON_FOR_DOWNLOAD:-python3}
  "$PY" -m pip download -q --no-binary :all: --no-deps -d "$WORK" "llama-cpp-python==$VERSION" 2>&1 | grep -v "is ignored" || true
  tar -xzf "$WORK"/llama_cpp_python-"$VERSION".tar.gz -C "$WORK"
  SRC="$WORK/llama_cpp_python-$VERSION/vendor/llama.cpp"
  # shellcheck disable=SC2086
  cmake -S "$SRC" -B "$WORK/build" -DCMAKE_BUILD_TYPE=Release $FLAGS \
    -DBUILD_SHARED_LIBS=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_BUILD_UI=OFF \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_APP=OFF >"$WORK/cmake.log" 2>&1 \
    || { tail -20 "$WORK/cmake.log" >&2; exit 1; }
  cmake --build "$WORK/build" --config Release -j "$(nproc 2>/dev/null || echo 2)" --target "${BINS[@]}" \
    >"$WORK/build.log" 2>&1 || { tail -30 "$WORK/build.log" >&2; exit 1; }
  mkdir -p "$CACHE"
  for b in "${BINS[@]}"; do cp "$WORK/build/bin/$b" "$CACHE/$b.tmp" && mv "$CACHE/$b.tmp" "$CACHE/$b"; done
fi
mkdir -p "$DEST"
for b in "${BINS[@]}"; do cp "$CACHE/$b" "$DEST/$b"; done
"$DEST/llama-server" --version 2>&1 | grep -m1 -i version || true
