#!/usr/bin/env bash
# The demo's pipeline for several seeds, then one table of mean +- spread (docs/results.md):
#   tools/demo_seeds.sh [OUT_DIR [SEEDS...]]        default runs/demo_seeds, seeds 1 2 3
# Each seed is a whole `rrt demo --seed S --out OUT_DIR/seed_S` (its own teacher, conversions,
# data order and initialisation); a rerun skips what is done. Extra rrt demo arguments go in
# DEMO_ARGS (e.g. DEMO_ARGS="--quick"). Writes OUT_DIR/summary.md and prints it.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-runs/demo_seeds}"
shift || true
seeds=("$@")
[[ ${#seeds[@]} -gt 0 ]] || seeds=(1 2 3)
rrt="${RRT:-build/rrt}"
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}"
mkdir -p "$out"

for s in "${seeds[@]}"; do
  echo "== seed $s"
  start=$(date +%s)
  # shellcheck disable=SC2086
  "$rrt" demo --seed "$s" --out "$out/seed_$s" ${DEMO_ARGS:-} >"$out/seed_$s.log" 2>&1 ||
    { tail -20 "$out/seed_$s.log"; exit 1; }
  echo "   $(($(date +%s) - start)) s (log: $out/seed_$s.log)"
done

python3 tools/demo_summary.py "${seeds[@]/#/$out/seed_}" | tee "$out/summary.md"
