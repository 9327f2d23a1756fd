#!/usr/bin/env bash
# Two builds' training steps side by side: OLD and NEW bench_train_step binaries run in turn,
# PAIRS times (each run: its step median of --repeats 3), so that load drifts hit both alike.
# Prints every pair and the median of the per-pair ratios NEW / OLD (below 1: NEW is faster).
#   bench/compare_train_step.sh OLD_BENCH NEW_BENCH [PAIRS]      (default 7 pairs)
# Run it on an otherwise idle machine; docs/benchmarks.md records its output.
set -euo pipefail
old=$1 new=$2 pairs=${3:-7}
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
step() { "$1" --repeats 3 --warmup 1 | sed -n 's/^step (fwd+bwd+AdamW), median of [0-9]*: \([0-9.]*\) s.*/\1/p'; }
ratios=()
uptime
for ((i = 1; i <= pairs; ++i)); do
  if ((i % 2)); then a=$(step "$old"); b=$(step "$new"); else b=$(step "$new"); a=$(step "$old"); fi
  r=$(python3 -c "print(f'{$b / $a:.4f}')")
  ratios+=("$r")
  echo "pair $i: old $a s  new $b s  new/old $r"
done
uptime
python3 - "${ratios[@]}" <<'PY'
import statistics, sys
r = sorted(float(x) for x in sys.argv[1:])
print(f"median new/old over {len(r)} pairs: {statistics.median(r):.4f} (min {r[0]:.4f}, max {r[-1]:.4f})")
PY
