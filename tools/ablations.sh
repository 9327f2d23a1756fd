#!/usr/bin/env bash
# The miniature ablations of configs/sweeps/ on the embedded corpus (docs/sweeps.md), in order:
#   tools/ablations.sh [RRT]          RRT: the rrt binary (default build/rrt)
# Prepares runs/sweeps/data from data/corpus/demo.jsonl if it is not there, then runs
#   rrt sweep configs/sweeps/{teacher,init,lora,early_exit}.yaml --launch local
# each printing its summary table (runs/sweeps/<name>/summary.md, summary.csv, loss.png), and
# the total time. Every run uses 2 OpenMP threads (train.threads in base/miniature.yaml).
# Rerunning resumes: finished runs are skipped, interrupted ones continue from their newest
# checkpoint.
set -euo pipefail
cd "$(dirname "$0")/.."
rrt="${1:-build/rrt}"
[[ -x "$rrt" ]] || { echo "ablations: no rrt binary at $rrt (build first, or pass its path)" >&2; exit 2; }
export OMP_WAIT_POLICY=passive
start=$(date +%s)
if [[ ! -f runs/sweeps/data/shard_00000.h5 ]]; then
  "$rrt" prepare --out runs/sweeps/data data/corpus/demo.jsonl
fi
for sweep in teacher init lora early_exit; do
  t0=$(date +%s)
  "$rrt" sweep "configs/sweeps/$sweep.yaml" --launch local
  echo "== $sweep: $(( $(date +%s) - t0 )) s"
done
echo "== all sweeps: $(( $(date +%s) - start )) s"
