#!/usr/bin/env bash
# Build llama.cpp ONCE for both engines: the shared libraries the Python binding (llama-cpp-python)
# loads for the in-process engine, and the programs the local engine and fine-tuning run
# (`llama-server`, `llama-batched-bench`, `llama-export-lora`, `llama-quantize`), all from the
# llama.cpp source that llama-cpp-python VERSION vendors, with the same flags.
#
# Usage: build-llama.sh VERSION CACHE_KEY "CMAKE FLAGS" VENV [build|install|all]
#
# PHASE (default all): `build` fills the cache and touches nothing in VENV but uses its pip to fetch
# the source (so the set-up can install the other dependencies meanwhile); `install` installs from a
# filled cache; `all` does both.
#
# It compiles with Ninja where there is one (on PATH, or in VENV/bin where scripts/setup.sh puts
# PyPI's `ninja`; Make otherwise): Ninja starts a target's sources while the libraries it needs still
# link, which keeps both cores busy. scripts/llama-cold.cmake sets the optimisation of the code that
# does not run per token (-O1, mtmd -O0; the arithmetic stays -O3) and compiles it in unity batches.
# Together: about half the time of a plain release build with Make (docs/benchmarks.md, "Set-up").
#
# The build is cached under ~/.cache/llm-judge/llama/VERSION-KEY-RECIPE (RECIPE: the first digits of
# llama-cold.cmake's SHA-256, so a changed recipe builds again; bin/, lib/, the binding's
# Python-only wheel in wheel/, and a stamp naming the source), so a second set-up copies files and
# compiles nothing. Into VENV it installs the binding without compiling it (LLAMA_BUILD=OFF), puts
# the libraries in the binding's own llama_cpp/lib/ (where it looks first, so `import llama_cpp`
# works in any shell with no environment variable) and the programs in VENV/bin (where llm-judge
# looks first). The programs find the libraries through their RPATH ($ORIGIN/../lib/llama-cpp),
# so a copy of them lives in VENV/lib/llama-cpp too. The stamp goes beside both copies: llm-judge
# compares them when it starts a server, and this script compares them after installing.
set -euo pipefail
VERSION=$1; KEY=$2; FLAGS=$3; VENV=$4; PHASE=${5:-all}
case "$PHASE" in build|install|all) ;; *) echo "build-llama.sh: phase $PHASE is not build, install or all" >&2; exit 2 ;; esac
COLD="$(cd "$(dirname "$0")" && pwd)/llama-cold.cmake"
KEY="$KEY-$(sha256sum "$COLD" | cut -c1-8)"
CACHE=${LLM_JUDGE_LLAMA_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/llm-judge/llama}/$VERSION-$KEY
BINS=(llama-server llama-batched-bench llama-export-lora llama-quantize)
LIBS=(llama ggml ggml-base ggml-cpu)
PY="$VENV/bin/python"
STAMP=llama-build.txt

complete=1
for b in "${BINS[@]}"; do [ -x "$CACHE/bin/$b" ] || complete=0; done
for l in "${LIBS[@]}"; do [ -f "$CACHE/lib/lib$l.so" ] || complete=0; done
ls "$CACHE"/wheel/llama_cpp_python-"$VERSION"-*.whl >/dev/null 2>&1 || complete=0
[ -f "$CACHE/$STAMP" ] || complete=0
[ -f "$CACHE/compile_commands.json" ] || complete=0

if [ $complete = 0 ] && [ "$PHASE" = install ]; then
  echo "the llama.cpp build in $CACHE is missing or incomplete: rerun scripts/setup.sh" >&2; exit 1
fi
if [ $complete = 0 ]; then
  echo "==> building llama.cpp from llama-cpp-python $VERSION ($KEY; once, several minutes)"
  WORK=$(mktemp -d)
  trap 'rm -rf "$WORK"' EXIT
  "$PY" -m pip download -q --no-binary :all: --no-deps -d "$WORK" "llama-cpp-python==$VERSION" 2>&1 \
    | grep -v "is ignored" || true
  SDIST="$WORK/llama_cpp_python-$VERSION.tar.gz"
  [ -f "$SDIST" ] || { echo "could not download the llama-cpp-python $VERSION source from PyPI" >&2; exit 1; }
  tar -xzf "$SDIST" -C "$WORK"
  SRC="$WORK/llama_cpp_python-$VERSION/vendor/llama.cpp"
  GENERATOR=()
  NINJA=$(command -v ninja || true)
  [ -z "$NINJA" ] && [ -x "$VENV/bin/ninja" ] && NINJA="$(cd "$VENV/bin" && pwd)/ninja"
  [ -n "$NINJA" ] && GENERATOR=(-G Ninja "-DCMAKE_MAKE_PROGRAM=$NINJA")
  # shellcheck disable=SC2086
  cmake "${GENERATOR[@]}" -S "$SRC" -B "$WORK/build" -DCMAKE_BUILD_TYPE=Release $FLAGS "-DCMAKE_PROJECT_INCLUDE=$COLD" \
    -DBUILD_SHARED_LIBS=ON -DCMAKE_BUILD_RPATH_USE_ORIGIN=ON -DCMAKE_SKIP_BUILD_RPATH=OFF \
    -DCMAKE_BUILD_WITH_INSTALL_RPATH=ON '-DCMAKE_INSTALL_RPATH=$ORIGIN:$ORIGIN/../lib/llama-cpp' \
    -DLLAMA_OPENSSL=OFF -DLLAMA_CURL=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_BUILD_UI=OFF \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_APP=OFF -DCMAKE_EXPORT_COMPILE_COMMANDS=ON \
    >"$WORK/cmake.log" 2>&1 \
    || { tail -20 "$WORK/cmake.log" >&2; exit 1; }
  cmake --build "$WORK/build" --config Release -j "$(nproc 2>/dev/null || echo 2)" --target "${BINS[@]}" \
    >"$WORK/build.log" 2>&1 || { tail -30 "$WORK/build.log" >&2; exit 1; }
  # the binding's Python code only: LLAMA_BUILD=OFF compiles nothing
  CMAKE_ARGS="-DLLAMA_BUILD=OFF -DLLAVA_BUILD=OFF" "$PY" -m pip wheel -q --no-deps --no-cache-dir \
    -w "$WORK/wheel" "$SDIST" 2>&1 | grep -v "is ignored" || true
  ls "$WORK"/wheel/llama_cpp_python-"$VERSION"-*.whl >/dev/null 2>&1 \
    || { echo "could not build llama-cpp-python $VERSION's Python package" >&2; exit 1; }
  rm -rf "$CACHE.part" && mkdir -p "$CACHE.part/bin" "$CACHE.part/lib" "$CACHE.part/wheel"
  for b in "${BINS[@]}"; do cp "$WORK/build/bin/$b" "$CACHE.part/bin/"; done
  # the libraries with their version links (the programs and the binding ask for libllama.so.0 ...)
  find "$WORK/build" \( -type f -o -type l \) -name 'lib*.so*' -exec cp -a {} "$CACHE.part/lib/" \;
  cp "$WORK"/wheel/*.whl "$CACHE.part/wheel/"
  # how each source was compiled (its flags, the optimisation among them), kept beside the build; a
  # unity batch (scripts/llama-cold.cmake) is listed as each source it includes, with the batch's command
  "$PY" - "$WORK/build/compile_commands.json" <<'PY' | sed "s|$WORK/|BUILD/|g" >"$CACHE.part/compile_commands.json"
import json, re, sys
entries = []
for entry in json.load(open(sys.argv[1])):
    if re.search(r"/Unity/unity_[^/]*\.(cxx|c)$", entry["file"]):
        sources = re.findall(r'^#include "([^"]+)"', open(entry["file"]).read(), flags=re.M)
        entries += [{**entry, "file": source, "unity": entry["file"]} for source in sources]
    else:
        entries.append(entry)
json.dump(entries, sys.stdout, indent=1)
PY
  printf 'llama-cpp-python %s %s sha256:%s\n' "$VERSION" "$KEY" "$(sha256sum "$SDIST" | cut -d' ' -f1)" \
    >"$CACHE.part/$STAMP"
  rm -rf "$CACHE" && mkdir -p "$(dirname "$CACHE")" && mv "$CACHE.part" "$CACHE"
fi

[ "$PHASE" = build ] && exit 0
"$PY" -m pip install -q --force-reinstall --no-deps "$CACHE"/wheel/llama_cpp_python-"$VERSION"-*.whl
"$PY" -m pip install -q "$CACHE"/wheel/llama_cpp_python-"$VERSION"-*.whl  # its dependencies
PKG=$("$PY" -c 'import importlib.util, pathlib; print(pathlib.Path(importlib.util.find_spec("llama_cpp").origin).parent)')
mkdir -p "$PKG/lib" "$VENV/lib/llama-cpp" "$VENV/bin"
cp -a "$CACHE"/lib/lib*.so* "$PKG/lib/"
cp -a "$CACHE"/lib/lib*.so* "$VENV/lib/llama-cpp/"
cp "$CACHE/$STAMP" "$PKG/lib/$STAMP"
cp "$CACHE/$STAMP" "$VENV/lib/llama-cpp/$STAMP"
cp "$CACHE/compile_commands.json" "$VENV/lib/llama-cpp/compile_commands.json"
for b in "${BINS[@]}"; do cp "$CACHE/bin/$b" "$VENV/bin/$b"; done
cmp -s "$PKG/lib/$STAMP" "$VENV/lib/llama-cpp/$STAMP" \
  || { echo "llama.cpp builds differ between the binding and llama-server: rerun scripts/setup.sh" >&2; exit 1; }
"$PY" -c 'import llama_cpp; llama_cpp.llama_backend_init()' \
  || { echo "the llama.cpp libraries do not load: remove $CACHE and rerun scripts/setup.sh" >&2; exit 1; }
"$VENV/bin/llama-server" --version 2>&1 | grep -m1 -i version || true
