#!/usr/bin/env bash
# The GPU suite in one go (under 8 minutes on an H100/H200): writes every result as a file under OUT.
#   bash benchmarks/gpu.sh [OUT]          OUT defaults to $OUT, else runs/bench-gpu
#   GK_GPU_PARAMS=1e6 GK_QUICK=1 GK_NO_INSTALL=1 bash benchmarks/gpu.sh /tmp/dry   # dry run, tiny sizes, CPU
# Needs jax (CUDA), optax and torch (CUDA) installed; installs gradkit itself with --no-deps.
# 1. AdamW float32 on ~1B params (one leaf, and GPT-2's 148 leaves scaled to 1B): gradkit on the tree and
#    packed, optax and torch fused, as % of the streaming roofline measured in the same rounds, compile times.
# 2. The built-in suite at full scale (packed rows, compile time vs leaves, end-to-end training steps).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-${OUT:-runs/bench-gpu}}"
PARAMS="${GK_GPU_PARAMS:-1e9}"
mkdir -p "$OUT"
export XLA_PYTHON_CLIENT_PREALLOCATE=false
start=$(date +%s)
if [ -z "${GK_NO_INSTALL:-}" ]; then  # GK_NO_INSTALL=1: leave the environment alone (dry runs)
  python -m pip install --quiet --no-deps -e . > "$OUT/pip.log" 2>&1 || echo "pip install -e . failed (see $OUT/pip.log); using PYTHONPATH=src"
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
{ nvidia-smi || true; python -c "import jax, torch; print(jax.devices(), jax.__version__, torch.__version__, torch.cuda.is_available())"; } > "$OUT/environment.txt" 2>&1

echo "== 1/2 AdamW on ${PARAMS} params ==" | tee "$OUT/adamw1b.log"
timeout 270 python benchmarks/gpu_adamw.py --params "$PARAMS" --out "$OUT" --budget 3 2>&1 | tee -a "$OUT/adamw1b.log"
echo "exit ${PIPESTATUS[0]} after $(( $(date +%s) - start )) s" | tee -a "$OUT/adamw1b.log"

left=$(( 450 - ($(date +%s) - start) ))
quick=()
[ -n "${GK_QUICK:-}" ] && quick=(--quick)
echo "== 2/2 the suite (${left} s left) ==" | tee "$OUT/suite.log"
# 1,000-leaf tree compiles take tens of seconds on a GPU too: a small budget per case keeps the suite in time.
timeout "$(( left > 60 ? left : 60 ))" python -c "import sys; from gradkit.cli import main; sys.exit(main(sys.argv[1:]))" \
  bench --suite --budget 1 --out "$OUT" "${quick[@]}" 2>&1 | tee -a "$OUT/suite.log"
echo "exit ${PIPESTATUS[0]} after $(( $(date +%s) - start )) s" | tee -a "$OUT/suite.log"
ls -la "$OUT"
