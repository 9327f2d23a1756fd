#!/usr/bin/env bash
# Signals under mpirun, on 1 and 2 ranks (docs/runs.md, "Signals"): every rank stops after the
# same step even when only one rank gets the signal, and even when it gets it after that step's
# all-reduce (the others then learn of it one step later); rank 0 writes the checkpoint, every
# rank exits 3 and the rerun resumes bit for bit. Points (RRT_TEST_SIGNAL): SIGTERM in the
# middle of step 6 on the last rank; after step 6's all-reduce on the last rank (the ranks stop
# after step 7); while rank 0 writes step 8's checkpoint; twice there (exit at once, the
# temporary cleaned up by the rerun). Then launch/mpirun.sh under a real SIGTERM: it reaches
# the ranks as SIGUSR1 (mpirun would kill them a second after a SIGTERM) and they checkpoint.
# Usage: mpi_signals.sh RRT MPIRUN CHECKPOINT_DIFF SOURCE_DIR
set -euo pipefail
rrt="$1" mpirun="$2" diff_tool="$3" src="$4"
source "$(dirname "$0")/mpi_common.sh"
common=(data.path="$work/shards" train.grad_accum=2 train.seq_len=32 train.micro_batch=2
        model.d_model=32 model.ffn=64 lora.rank=2 train.eval_every=4 train.eval_batches=1
        checkpoint.every=4 checkpoint.keep_last=5 log.every=1 optim.warmup_steps=2
        train.threads=1)
ckpt() { printf '%s/step_%08d.h5' "$1" "$2"; }
newest() { ls "$1" | grep -E '^step_[0-9]{8}\.h5$' | tail -1; }
# train RANKS DIR [key=value...]: mpirun's exit status in $status (RRT_TEST_SIGNAL passed on).
train() {
  local ranks="$1" dir="$2"; shift 2
  status=0
  "${mpi[@]}" -x RRT_TEST_SIGNAL -np "$ranks" "$rrt" train "$cfg" "${common[@]}" \
    train.run_dir="$dir" "$@" >>"$dir.log" 2>&1 || status=$?
}
same() {
  "$diff_tool" "$(ckpt "$1" "$3")" "$(ckpt "$2" "$3")" 0 >/dev/null ||
    fail "$1 differs from $2 at step $3: $("$diff_tool" "$(ckpt "$1" "$3")" "$(ckpt "$2" "$3")" 0)"
}
# stopped RANKS DIR STEP: exit 3, every rank past the step's checkpoint, and the rerun exact.
stopped() {
  local ranks="$1" dir="$2" step="$3"
  [[ $status -eq 3 ]] || fail "$dir: exit $status, not 3: $(tail -20 "$dir.log")"
  grep -q "stopped by .* after step $step: checkpoint" "$dir.log" ||
    fail "$dir: not stopped after step $step: $(grep -v '^step' "$dir.log")"
  [[ "$(newest "$dir")" == "$(basename "$(ckpt "$dir" "$step")")" ]] ||
    fail "$dir: newest checkpoint $(newest "$dir"), not step $step"
  RRT_TEST_SIGNAL= train "$ranks" "$dir" train.steps=12
  [[ $status -eq 0 ]] || fail "$dir: the rerun failed: $(tail -20 "$dir.log")"
  same "$dir" "$work/ref$ranks" 12
}

export RRT_TEST_SIGNAL=
for ranks in 1 2; do
  last=$((ranks - 1))
  train "$ranks" "$work/ref$ranks" train.steps=12
  [[ $status -eq 0 ]] || fail "reference on $ranks ranks: $(cat "$work/ref$ranks.log")"

  RRT_TEST_SIGNAL=TERM:step:6:$last train "$ranks" "$work/mid$ranks" train.steps=12
  stopped "$ranks" "$work/mid$ranks" 6
  RRT_TEST_SIGNAL=TERM:after_step:6:$last train "$ranks" "$work/after$ranks" train.steps=12
  stopped "$ranks" "$work/after$ranks" 7
  RRT_TEST_SIGNAL=TERM:commit:step_00000008.h5 train "$ranks" "$work/write$ranks" train.steps=12
  stopped "$ranks" "$work/write$ranks" 8
  echo "$ranks rank(s): SIGTERM mid-step, after the step's all-reduce, in a write: exact"

  dir="$work/twice$ranks"
  RRT_TEST_SIGNAL=TERM:commit:step_00000008.h5,TERM:commit:step_00000008.h5 \
    train "$ranks" "$dir" train.steps=12
  [[ $status -ne 0 && $status -ne 3 ]] || fail "$dir: exit $status after a second signal"
  grep -q "second signal: exiting now" "$dir.log" || fail "$dir: no second-signal message"
  [[ "$(newest "$dir")" == step_00000004.h5 ]] || fail "$dir: newest $(newest "$dir")"
  RRT_TEST_SIGNAL= train "$ranks" "$dir" train.steps=12
  grep -q "removed 1 unfinished checkpoint file" "$dir.log" || fail "$dir: temporary not removed"
  same "$dir" "$work/ref$ranks" 12
  echo "$ranks rank(s): two signals in a write: exit at once, the rerun cleans up, exact"
done

# launch/mpirun.sh under a real SIGTERM at whatever step the ranks are in; both this run and the
# reference stop by the hook after step 300, where they are compared.
long=(train.steps=100000 checkpoint.every=50)
RRT_TEST_SIGNAL=TERM:step:300 train 2 "$work/ref300" "${long[@]}"
[[ $status -eq 3 ]] || fail "2-rank reference of the long run: exit $status"
dir="$work/script"
RRT="$rrt" MPIRUN="$mpirun" THREADS=1 "$src/launch/mpirun.sh" 2 "$cfg" "${common[@]}" \
  "${long[@]}" train.run_dir="$dir" >"$dir.log" 2>&1 &
pid=$!
for _ in $(seq 600); do grep -q "^step      5/" "$dir.log" 2>/dev/null && break; sleep 0.1; done
kill -TERM "$pid"
status=0
wait "$pid" || status=$?
[[ $status -eq 3 ]] || fail "launch/mpirun.sh after SIGTERM: exit $status: $(tail -20 "$dir.log")"
stop=$(sed -n 's/^stopped by SIGUSR1 after step \([0-9]*\):.*/\1/p' "$dir.log")
[[ -n "$stop" && "$stop" -lt 300 ]] || fail "launch/mpirun.sh: stopped after step '$stop'"
RRT_TEST_SIGNAL=TERM:step:300 train 2 "$dir" "${long[@]}"
[[ $status -eq 3 ]] || fail "the resumed run: exit $status"
same "$dir" "$work/ref300" 300
echo "launch/mpirun.sh: SIGTERM after step $stop, resumed, bit-exact at step 300"
echo "mpi signals: all good"
