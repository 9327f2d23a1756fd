#!/usr/bin/env bash
# A failing rank ends the whole job promptly with its message, never a hang:
#  1. rank 0 throws mid-training (its checkpoint cannot be written) while rank 1 waits for it at
#     the checkpoint barrier -> MPI_Abort from rrt's error path;
#  2. rank 1 throws while starting (no data) while rank 0 waits in the first broadcast;
#  3. rank 1 is killed (SIGKILL) mid-training -> mpirun ends the others.
# Each must exit non-zero within 60 s.
# Usage: mpi_failure.sh RRT MPIRUN SOURCE_DIR FAULT_LIBRARY (tests/fault/write_fault.c)
set -euo pipefail
rrt="$1" mpirun="$2" src="$3" fault="$4"
source "$(dirname "$0")/mpi_common.sh"
limit=60

common=(data.path="$work/shards" train.seq_len=32 train.micro_batch=2 train.threads=1
        train.eval_every=1000 log.every=1 optim.warmup_steps=2)
# run NAME FRAGMENT mpirun-args...: expects failure, FRAGMENT in the output, under $limit s.
run() {
  local name="$1" fragment="$2"; shift 2
  local status=0 start end
  start=$(date +%s.%N)
  timeout -k 10 120 "${mpi[@]}" "$@" >"$work/$name.out" 2>&1 || status=$?
  end=$(date +%s.%N)
  local seconds
  seconds=$(python3 -c "print(f'{$end - $start:.1f}')")
  echo "$name: exit $status after $seconds s"
  [[ $status -ne 0 ]] || fail "$name: the job succeeded"
  [[ $status -ne 124 && $status -ne 137 ]] || [[ $name == killed && $status -eq 137 ]] ||
    fail "$name: the job hung and was ended by the test's own timeout"
  sed -n '/[^ ]/{s/^/  | /;p}' "$work/$name.out" | tail -n 8
  python3 -c "import sys; sys.exit(0 if $seconds < $limit else 1)" || fail "$name took $seconds s"
  grep -qF -- "$fragment" "$work/$name.out" || fail "$name: no '$fragment' in: $(cat "$work/$name.out")"
}

# 1. A full disk for step 3's checkpoint (its temporary's name holds the writer's pid, so the
#    LD_PRELOAD fault library fails the writes by name): rank 0, the only writer, throws.
LD_PRELOAD="$fault" RRT_FAULT_FILE=step_00000003.h5 RRT_FAULT_AFTER=0 RRT_FAULT_MODE=enospc \
  run checkpoint_throw "rank 0 of 2: [checkpoint" -np 2 -x LD_PRELOAD -x RRT_FAULT_FILE \
  -x RRT_FAULT_AFTER -x RRT_FAULT_MODE "$rrt" train "$cfg" "${common[@]}" \
  train.run_dir="$work/run1" train.steps=1000 checkpoint.every=3
grep -q "aborting all 2 ranks" "$work/checkpoint_throw.out" || fail "no abort notice"

# 2. MPMD: rank 1 is given data that does not exist.
run startup_throw "rank 1 of 2: [$work/nowhere] token data not found" \
  -np 1 "$rrt" train "$cfg" "${common[@]}" train.run_dir="$work/run2" train.steps=1000 : \
  -np 1 "$rrt" train "$cfg" "${common[@]}" train.run_dir="$work/run2" train.steps=1000 \
  data.path="$work/nowhere"

# 3. Rank 1 killed after 3 s of a long run.
run killed "exited on signal 9" -np 1 "$rrt" train "$cfg" "${common[@]}" train.run_dir="$work/run3" \
  train.steps=100000 : -np 1 timeout -s KILL 3 "$rrt" train "$cfg" "${common[@]}" \
  train.run_dir="$work/run3" train.steps=100000
echo "mpi failure: all good"
