#!/usr/bin/env bash
# Set up llm-judge on a fresh machine: a virtual environment in .venv with everything installed,
# including a llama.cpp build that runs on any x86-64 CPU with AVX2 (and on ARM).
#
# llama-cpp-python ships no binary wheel, so pip compiles llama.cpp (about 7 minutes on 2 cores).
# A default build targets the build machine's CPU ("native") and can die with SIGILL on CPUs
# that advertise instructions they do not permit (AMX tiles on some virtual machines), so on
# x86-64 we build a portable AVX2/FMA/F16C binary instead. The wheel is cached under
# ~/.cache/llm-judge/wheels, keyed by these flags, so later set-ups take seconds.
#
# From the same llama.cpp source it builds llama.cpp's own llama-server (the local engine: parallel
# slots), llama-batched-bench, llama-export-lora and llama-quantize into the environment's bin/
# (scripts/build-llama-server.sh; about as long again the first time, cached the same way). Set
# LLM_JUDGE_SKIP_SERVER=1 to skip it: local models then run in-process, one request at a time.
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
$PIP install -q --upgrade pip wheel

case "$(uname -m)" in
  x86_64|amd64)
    FLAGS="-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON"; KEY=x86_64-avx2 ;;
  *)
    FLAGS=""; KEY="$(uname -m)-default" ;;
esac
WHEELS=${LLM_JUDGE_WHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/llm-judge/wheels}/$KEY
if ! ls "$WHEELS"/llama_cpp_python-"$LLAMA_VERSION"-*.whl >/dev/null 2>&1; then
  echo "==> building llama-cpp-python $LLAMA_VERSION ($KEY; takes several minutes)"
  mkdir -p "$WHEELS"
  CMAKE_ARGS="$FLAGS" $PIP wheel -q --no-deps --no-cache-dir -w "$WHEELS" "llama-cpp-python==$LLAMA_VERSION"
fi
$PIP install -q "$WHEELS"/llama_cpp_python-"$LLAMA_VERSION"-*.whl
if [ "${LLM_JUDGE_SKIP_SERVER:-0}" != 1 ]; then
  PYTHON_FOR_DOWNLOAD="$VENV/bin/python" bash scripts/build-llama-server.sh "$LLAMA_VERSION" "$KEY" "$FLAGS" "$VENV/bin"
fi
EXTRAS="ui,dev"
if [ $FINETUNE = 1 ]; then
  # PyTorch's CPU build (0.9 GB) rather than PyPI's default CUDA build (5 GB); a GPU machine can
  # install its own torch first, which this keeps.
  if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
    echo "==> installing PyTorch (CPU build)"
    $PIP install -q "torch==2.13.0+cpu" 2>/dev/null \
      || $PIP install -q "torch==2.13.0" --index-url https://download.pytorch.org/whl/cpu
  fi
  EXTRAS="$EXTRAS,finetune"
fi
echo "==> installing llm-judge and its dependencies"
$PIP install -q -e ".[$EXTRAS]"
"$VENV/bin/llm-judge" --version
echo "ready: source $VENV/bin/activate"
