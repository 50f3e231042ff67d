#!/usr/bin/env bash
# The GPU suite in one go (under 8 minutes on an H100/H200): writes every result as a file under OUT.
#   bash benchmarks/gpu.sh [OUT]          OUT defaults to $OUT, else runs/bench-gpu
#   GK_GPU_PARAMS=1e6 GK_QUICK=1 GK_NO_INSTALL=1 bash benchmarks/gpu.sh /tmp/dry   # dry run, tiny sizes, CPU
# Needs jax (CUDA), optax and torch (CUDA) installed; installs gradkit itself with --no-deps.
# 1. AdamW float32 on ~1B params (one leaf, and GPT-2's 148 leaves scaled to 1B): gradkit on the tree and
#    packed, optax and torch fused, as % of the streaming roofline measured in the same rounds, compile times.
# 2. The built-in suite at full scale (packed rows), 3. compile time vs leaves and end-to-end training steps.
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

echo "== 1/3 AdamW on ${PARAMS} params ==" | tee "$OUT/adamw1b.log"
timeout 200 python benchmarks/gpu_adamw.py --params "$PARAMS" --out "$OUT" --budget 3 2>&1 | tee -a "$OUT/adamw1b.log"
echo "exit ${PIPESTATUS[0]} after $(( $(date +%s) - start )) s" | tee -a "$OUT/adamw1b.log"

quick=()
[ -n "${GK_QUICK:-}" ] && quick=(--quick)
bench() {  # bench SECONDS LOG ARGS...: one part of the suite; a run cut short still leaves <name>.partial.json
  local seconds=$1 log=$2; shift 2
  timeout "$seconds" python -c "import sys; from gradkit.cli import main; sys.exit(main(sys.argv[1:]))" \
    bench --suite --out "$OUT" "${quick[@]}" "$@" 2>&1 | tee -a "$OUT/$log"
  echo "exit ${PIPESTATUS[0]} after $(( $(date +%s) - start )) s" | tee -a "$OUT/$log"
}
# 1,000-leaf tree compiles take tens of seconds on a GPU too: a small budget per case keeps the suite in time.
echo "== 2/3 the suite's update steps ==" | tee "$OUT/suite-cases.log"
bench 150 suite-cases.log --parts cases --budget 1
echo "== 3/3 compile time vs leaves, end-to-end training steps ==" | tee "$OUT/suite-training.log"
bench 100 suite-training.log --parts compile,training --budget 1
# markdown for any part that was cut short
python -c "
import json, pathlib, sys
from gradkit.bench import report
for p in pathlib.Path(sys.argv[1]).glob('*.partial.json'):
    p.with_suffix('.md').write_text(report.markdown(json.loads(p.read_text())))
" "$OUT"
echo "total $(( $(date +%s) - start )) s"
ls -la "$OUT"
