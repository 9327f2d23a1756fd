#!/usr/bin/env bash
# `rrt sweep --launch slurm` on a one-node cluster started here (tools/local_slurm.sh):
#  1. the array it builds over launch/slurm_array.sbatch is accepted by `sbatch --test-only`;
#  2. submitted for real (sbatch --wait), both runs of the array finish, and the summary says so;
#  3. launched again, nothing is left to submit.
# Usage: sweep_slurm.sh RRT SOURCE_DIR. Needs root, slurm-wlm and munge; exits 77 (ctest:
# skipped) without them. The cluster is stopped and its directory deleted on exit.
set -euo pipefail
rrt="$1" src="$2"
source "$src/tests/slurm_common.sh"

mkdir -p "$work/text"
for i in 1 2 3; do
  for j in $(seq 1 60); do echo "Text $i, line $j: a block that loops over itself."; done > "$work/text/doc$i.txt"
done
"$rrt" prepare --quiet --out "$work/shards" "$work/text" >/dev/null || fail prepare
cat >"$work/sweep.yaml" <<YAML
base: $src/configs/tiny.yaml
set:
  data.path: $work/shards
  train.steps: 4
  train.seq_len: 32
  train.eval_every: 2
  train.eval_batches: 2
  checkpoint.every: 2
  log.every: 1
grid:
  optim.lr: [1e-3, 3e-3]
YAML
cd "$work"  # like a user: the sweep writes under the current directory's --out

"$rrt" sweep sweep.yaml --out sweep --launch slurm --submit --sbatch-arg=--test-only \
  >"$work/test_only.log" 2>&1 || fail "rrt sweep --launch slurm --submit --sbatch-arg=--test-only"
grep -q "sbatch --array=0-1 " "$work/test_only.log" || fail "no sbatch --array=0-1 command printed"
grep -q "to start at" "$work/test_only.log" || fail "sbatch --test-only did not accept the array"
[[ $(wc -l <"$work/sweep/slurm_runs.txt") -eq 2 ]] || fail "slurm_runs.txt does not list 2 runs"

timeout -k 5 120 "$rrt" sweep sweep.yaml --out sweep --launch slurm --submit --sbatch-arg=--wait \
  >"$work/submit.log" 2>&1 || fail "the submitted array failed"
"$rrt" sweep summary sweep >"$work/summary.log" 2>&1 || fail "rrt sweep summary"
[[ $(grep -c "| finished |" "$work/summary.log") -eq 2 ]] || fail "the runs did not both finish"
ls "$work"/sweep/slurm-*_0.out "$work"/sweep/slurm-*_1.out >/dev/null || fail "no array task logs in the sweep directory"
"$rrt" sweep sweep.yaml --out sweep --launch slurm >"$work/again.log" 2>&1 || fail "third launch"
grep -q "nothing to submit" "$work/again.log" || fail "finished runs were listed again"
cat "$work/summary.log"
echo "slurm sweep: all good"
