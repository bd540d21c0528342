#!/usr/bin/env bash
# The GPU check, for a machine with an NVIDIA GPU (sized for under 15 minutes on one H100/H200):
#   1. tests/test_cuda.py (float16 weights and cache, the decode step captured as a CUDA graph, parity) and the
#      CUDA tests of tests/test_int4.py (_weight_int4pack_mm against the dequantized weights, the bundled model);
#   2. `bench engine` and `bench typing` on CUDA, float16 and int4 (bf16 activations), for the CodeGen-350M and
#      CodeGen-2B shapes (random weights: speed depends on the shape only), ours against transformers in the same
#      run (transformers has no int4 of ours: its int4 cells say so);
#   3. one summary at the end ($OUT/gpu_table.md).
# Needs torch with CUDA, transformers, tokenizers, safetensors and huggingface_hub on that machine (no network:
# nothing else is installed; the language server's own dependencies are not needed for this).
#     scripts/gpu_check.sh            # writes into ${OUT:-/tmp/gpu-check}
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu-check}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
PY=${PYTHON:-python3}

"$PY" -m pip install -q --no-deps --no-build-isolation -e . >"$OUT/install.log" 2>&1 \
  || { echo "gpu_check: pip install -e . failed"; tail -20 "$OUT/install.log"; exit 1; }
"$PY" - <<'PYEOF' | tee "$OUT/gpu.txt"
import torch
print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, {torch.cuda.get_device_name(0)}")
PYEOF

"$PY" -m pytest -q -p no:cacheprovider tests/test_cuda.py 2>&1 | tee "$OUT/test_cuda.log" | tail -15
"$PY" -m pytest -q -p no:cacheprovider tests/test_int4.py -k cuda 2>&1 | tee "$OUT/test_int4_cuda.log" | tail -15

for shape in 350M 2B; do
  timeout 300 "$PY" -m benchmarks engine --device cuda --shape "$shape" --dtypes float16,int4 --prefill 1024 \
    --decode 128 --repeats 5 --workdir "$OUT/work" 2>&1 | tee "$OUT/engine-$shape.md" | tail -12
  timeout 300 "$PY" -m benchmarks typing --device cuda --shape "$shape" --dtypes float16,int4 --keystrokes 60 \
    --workdir "$OUT/work" 2>&1 | tee "$OUT/typing-$shape.md" | tail -12
done

{
  echo "# GPU check: $(cat "$OUT/gpu.txt")"
  echo
  echo "tests/test_cuda.py: $(tail -1 "$OUT/test_cuda.log")"
  echo "tests/test_int4.py -k cuda: $(tail -1 "$OUT/test_int4_cuda.log")"
  for shape in 350M 2B; do
    echo; echo "## CodeGen-$shape shape"; echo
    grep -E '^\|' "$OUT/engine-$shape.md"; echo; grep -E '^\||^- ' "$OUT/typing-$shape.md"
  done
} >"$OUT/gpu_table.md"
rm -rf "$OUT/work"
cat "$OUT/gpu_table.md"
