#!/usr/bin/env bash
# A requeue cycle of launch/slurm_train.sbatch on a one-node cluster started here
# (tools/local_slurm.sh), 2 tasks (srun --mpi=pmix):
#  1. SIGUSR1 to the batch shell after step 10 (what the script's --signal=B:USR1@120 makes
#     Slurm send before the time limit): the ranks finish their step, write a checkpoint and
#     exit 3, the script requeues the job, the job runs again, resumes from that checkpoint and
#     ends bit-exactly where an uninterrupted job of the same shape ends;
#  2. scancel (SIGTERM to the ranks, then SIGKILL after KillWait): the ranks checkpoint their
#     step in time and stop; the job is not requeued (nobody asked for it).
# Usage: slurm_requeue.sh RRT CHECKPOINT_DIFF SOURCE_DIR. Needs root, slurm-wlm and munge;
# exits 77 (ctest: skipped) without them. The cluster is stopped and its directory deleted on exit.
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
steps=150  # the signal comes at step 10: the rest is the margin for its delivery
common=(data.path="$work/shards" train.steps=$steps train.grad_accum=2 train.seq_len=32
        train.micro_batch=3 train.eval_every=50 train.eval_batches=2 checkpoint.every=50
        checkpoint.keep_last=5 log.every=1 optim.warmup_steps=2)
cd "$src"  # the scripts find launch/ in the submission directory

# submit NAME [key=value...]: a 2-task slurm_train job writing $work/NAME; prints its id.
submit() {
  local name="$1"; shift
  sbatch --parsable -n 2 --output="$work/$name.out" launch/slurm_train.sbatch "$cfg" \
    "${common[@]}" train.run_dir="$work/$name" "$@"
}
# wait_for_line FILE PATTERN SECONDS
wait_for_line() {
  local i
  for ((i = 0; i < $3 * 5; i++)); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.2; done
  fail "no '$2' in $1 after $3 s"
}
# wait_gone JOB SECONDS: until squeue no longer lists the job (requeued jobs stay listed)
wait_gone() {
  local i
  for ((i = 0; i < $2; i++)); do
    [[ -z "$(squeue -h -j "$1" -o %T 2>/dev/null)" ]] && return 0
    sleep 1
  done
  fail "job $1 still queued or running after $2 s"
}

reference=$(submit reference)
requeued=$(submit requeued)
cancelled=$(submit cancelled train.steps=100000)
wait_for_line "$work/requeued.out" "^step     10/$steps" 60
scancel --batch --signal=USR1 "$requeued"
wait_for_line "$work/cancelled.out" "^step     10/" 60
scancel "$cancelled"

# 1. The requeue cycle (Slurm lets a requeued job start again after cred_expire, 10 s here).
wait_gone "$requeued" 150
out="$work/requeued.out"
stop=$(sed -n 's/^stopped by SIGUSR1 after step \([0-9]*\):.*/\1/p' "$out")
[[ -n "$stop" ]] || fail "the ranks did not stop on SIGUSR1"
((stop >= 10 && stop < steps)) || fail "stopped after step $stop"
grep -q "srun: error: .*Exited with exit code 3" "$out" || fail "the ranks did not exit 3"
grep -q "slurm_train: requeueing job $requeued" "$out" || fail "the script did not requeue"
grep -q "slurm_train: requeued run number 1" "$out" || fail "the job did not run again"
grep -q "resuming from .*step_$(printf %08d "$stop").h5 (step $stop)" "$out" ||
  fail "the requeued job did not resume from step $stop"
grep -q "done: steps $((stop + 1))..$steps" "$out" || fail "the requeued job did not finish"
wait_gone "$reference" 60
grep -q "done: steps 1..$steps" "$work/reference.out" || fail "the reference job did not finish"
echo "requeued (stopped after step $stop) vs uninterrupted, 2 tasks each (exact):"
"$diff_tool" "$work/requeued/step_$(printf %08d $steps).h5" \
  "$work/reference/step_$(printf %08d $steps).h5" 0 || fail "the requeued run differs"

# 2. scancel: a checkpoint of the step the ranks were in, and no requeue.
wait_gone "$cancelled" 30
out="$work/cancelled.out"
stop=$(sed -n 's/^stopped by SIGTERM after step \([0-9]*\):.*/\1/p' "$out")
[[ -n "$stop" && -s "$work/cancelled/step_$(printf %08d "$stop").h5" ]] ||
  fail "scancel: no checkpoint of the step the ranks stopped after"
grep -q "requeue" "$out" && fail "a cancelled job was requeued"
echo "slurm requeue: all good after $(seconds_since_start) s"
