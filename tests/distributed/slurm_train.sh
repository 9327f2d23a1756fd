#!/usr/bin/env bash
# The Slurm launch scripts on a one-node cluster started here (tools/local_slurm.sh):
#  1. launch/slurm_train.sbatch, 2 tasks (srun --mpi=pmix), trains configs/tiny.yaml for 10 steps
#     and ends where 1 rank with the same global batch (6 rows x 2 micro-batches) ends;
#  2. launch/slurm_array.sbatch, a 2-task array over two run directories holding resolved
#     configs: one resumes from a step-5 checkpoint and ends bit-exactly where the 1-rank run
#     ends, the other (another learning rate) trains from scratch;
#  3. `sbatch --test-only` accepts both scripts; run outside a job they print their usage.
# Usage: slurm_train.sh RRT CHECKPOINT_DIFF SOURCE_DIR. Needs root, slurm-wlm and munge; exits
# 77 (ctest: skipped) without them. The cluster is stopped and its directory deleted on exit.
set -euo pipefail
rrt="$1" diff_tool="$2" src="$3"
source "$src/tests/slurm_common.sh"
export RRT="$rrt"  # the jobs inherit the environment
mkdir -p "$work/text"
for i in 1 2 3; do
  for j in $(seq 1 60); do echo "Text $i, line $j: a block that loops over itself."; done > "$work/text/doc$i.txt"
done
"$rrt" prepare --quiet --out "$work/shards" "$work/text" >/dev/null || fail prepare
cfg="$src/configs/tiny.yaml"
common=(data.path="$work/shards" train.steps=10 train.grad_accum=2 train.seq_len=32
        train.eval_every=5 train.eval_batches=2 checkpoint.every=5 checkpoint.keep_last=5
        log.every=1 optim.warmup_steps=2)
cd "$src"  # the scripts find launch/ in the submission directory

# Usage text outside a job; --test-only: Slurm accepts the scripts' #SBATCH lines.
for script in slurm_train slurm_array; do
  status=0
  bash "launch/$script.sbatch" >"$work/usage.log" 2>&1 || status=$?
  [[ $status -eq 2 ]] && grep -q "sbatch .*launch/$script.sbatch" "$work/usage.log" ||
    fail "$script without arguments: exit $status, no usage text"
done
printf '%s\n' "$work/a" "$work/b" >"$work/runs.list"
sbatch --test-only -n 2 launch/slurm_train.sbatch "$cfg" >"$work/test_only.log" 2>&1 &&
  sbatch --test-only --array=0-1 launch/slurm_array.sbatch "$work/runs.list" >>"$work/test_only.log" 2>&1 &&
  [[ $(grep -c "to start at" "$work/test_only.log") -eq 2 ]] || fail "sbatch --test-only"

# submit NAME OUTPUT sbatch-args...: sbatch --wait in the background, the job's output in
# NAME-OUTPUT.out (a Slurm file name pattern), sbatch's exit code in NAME.rc.
submit() {
  local name="$1" output="$2"; shift 2
  (status=0
   timeout -k 5 60 sbatch --wait --output="$work/$name-$output.out" "$@" >"$work/$name.log" 2>&1 || status=$?
   echo "$status" >"$work/$name.rc") &
}
submitted_ok() { [[ "$(cat "$work/$1.rc")" == 0 ]] || fail "$1: sbatch --wait exit $(cat "$work/$1.rc")"; }

submit train %j -n 2 launch/slurm_train.sbatch "$cfg" "${common[@]}" train.micro_batch=3 \
  train.run_dir="$work/r2"
# The 1-rank reference, outside Slurm, while the job runs.
"$rrt" train "$cfg" "${common[@]}" train.micro_batch=6 train.threads=1 train.run_dir="$work/r1" \
  >"$work/r1.log" 2>&1 || fail "1-rank run"

# A sweep's run directories: resolved configs whose run_dir points elsewhere (the array
# overrides it); run a resumes from the 1-rank run's step-5 checkpoint.
for run in a b; do mkdir -p "$work/$run"; done
"$rrt" config show "$cfg" "${common[@]}" train.micro_batch=6 train.run_dir="$work/elsewhere" \
  >"$work/a/config.yaml" || fail "rrt config show"
"$rrt" config show "$cfg" "${common[@]}" train.micro_batch=6 train.run_dir="$work/elsewhere" \
  optim.lr=3e-3 >"$work/b/config.yaml" || fail "rrt config show"
cp "$work/r1/step_00000005.h5" "$work/a/"
submit array %A_%a --array=0-1 launch/slurm_array.sbatch "$work/runs.list"
wait

submitted_ok train
out="$(ls "$work"/train-*.out)"
grep -q "data parallel: 2 ranks (mpi)" "$out" || fail "the job did not run 2 MPI ranks"
grep -q "done: steps 1..10" "$out" || fail "the job did not train 10 steps"
for f in config.yaml metrics.jsonl step_00000005.h5 step_00000010.h5; do
  [[ -s "$work/r2/$f" ]] || fail "no $f in the run directory"
done
grep -q '"step":10' "$work/r2/metrics.jsonl" || fail "no step 10 in metrics.jsonl"
echo "2 Slurm tasks vs 1 rank:"
"$diff_tool" "$work/r2/step_00000010.h5" "$work/r1/step_00000010.h5" 1e-5 ||
  fail "the 2-task job's parameters differ from the 1-rank run"

submitted_ok array
for run in a b; do
  [[ -s "$work/$run/step_00000010.h5" ]] || fail "array run $run did not finish"
done
grep -q "resuming from .*step_00000005.h5 (step 5)" "$work"/array-*_0.out || fail "run a did not resume"
[[ ! -e "$work/elsewhere" ]] || fail "an array task wrote its config's run_dir, not its own"
echo "array run a (resumed at step 5) vs the 1-rank run (exact):"
"$diff_tool" "$work/a/step_00000010.h5" "$work/r1/step_00000010.h5" 0 ||
  fail "the resumed array run differs from the 1-rank run"
echo "slurm: all good after $(seconds_since_start) s"
