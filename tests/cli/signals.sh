#!/usr/bin/env bash
# Signals and the run directory's lock through the real `rrt train` (docs/runs.md, "Signals"):
#  - SIGTERM in the middle of a step, SIGINT during a checkpoint write (RRT_TEST_SIGNAL, so the
#    point is exact): exit 3, a checkpoint of that step, and the resumed run ends bit for bit
#    where an uninterrupted one ends;
#  - two signals during a checkpoint write: exit 143 at once, the write left unfinished; the
#    rerun deletes its temporary and resumes bit-exactly from the checkpoint before;
#  - SIGTERM, SIGINT and SIGUSR1 from outside (kill) at whatever step the run is in: the same;
#  - a second trainer on a run directory is refused with the first one's pid and host, and
#    after a kill -9 of the first the directory is free again.
# Usage: signals.sh RRT CHECKPOINT_DIFF SOURCE_DIR
set -euo pipefail
rrt="$1" diff_tool="$2" src="$3"
work="$(mktemp -d)"
pids=()
cleanup() { for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=passive

mkdir -p "$work/text"
for i in 1 2 3; do
  for j in $(seq 1 60); do echo "Text $i, line $j: a block that loops over itself."; done > "$work/text/doc$i.txt"
done
"$rrt" prepare --quiet --out "$work/shards" "$work/text" >/dev/null || fail prepare
cfg="$src/configs/tiny.yaml"
# A smaller model than tiny.yaml's, so that the runs take a second or two.
common=(data.path="$work/shards" train.grad_accum=2 train.seq_len=32 train.micro_batch=2
        model.d_model=32 model.ffn=64 lora.rank=2 train.eval_every=4 train.eval_batches=1
        checkpoint.every=4 checkpoint.keep_last=5 log.every=1 optim.warmup_steps=2
        train.threads=1)
ckpt() { printf '%s/step_%08d.h5' "$1" "$2"; }
# train DIR [key=value...]: runs rrt train in the foreground; its exit status in $status.
train() {
  local dir="$1"; shift
  status=0
  "$rrt" train "$cfg" "${common[@]}" train.run_dir="$dir" "$@" >>"$dir.log" 2>&1 || status=$?
}
# same DIR REFERENCE STEP: the checkpoints of STEP are bit-identical.
same() {
  "$diff_tool" "$(ckpt "$1" "$3")" "$(ckpt "$2" "$3")" 0 >/dev/null ||
    fail "$1 differs from $2 at step $3: $("$diff_tool" "$(ckpt "$1" "$3")" "$(ckpt "$2" "$3")" 0)"
}
newest() { ls "$1" | grep -E '^step_[0-9]{8}\.h5$' | tail -1; }

train "$work/ref" train.steps=12
[[ $status -eq 0 ]] || fail "reference run: $(cat "$work/ref.log")"

# SIGTERM in the middle of step 6 (after its first micro-batch): step 6 ends, is saved, exit 3.
RRT_TEST_SIGNAL=TERM:step:6 train "$work/a" train.steps=12
[[ $status -eq 3 ]] || fail "SIGTERM mid-step: exit $status, not 3: $(cat "$work/a.log")"
grep -q "stopped by SIGTERM after step 6: checkpoint .*step_00000006.h5 written" "$work/a.log" ||
  fail "no stop message: $(cat "$work/a.log")"
[[ "$(newest "$work/a")" == step_00000006.h5 ]] || fail "newest checkpoint $(newest "$work/a")"
train "$work/a" train.steps=12
[[ $status -eq 0 ]] && grep -q "resuming from .*step_00000006.h5 (step 6)" "$work/a.log" ||
  fail "no resume from step 6: $(cat "$work/a.log")"
same "$work/a" "$work/ref" 12
echo "SIGTERM mid-step 6: stopped, resumed, bit-exact"

# SIGINT while step 8's checkpoint is being written: the write completes, no further step.
RRT_TEST_SIGNAL=INT:commit:step_00000008.h5 train "$work/b" train.steps=12
[[ $status -eq 3 ]] || fail "SIGINT in a write: exit $status: $(cat "$work/b.log")"
[[ "$(newest "$work/b")" == step_00000008.h5 ]] || fail "newest checkpoint $(newest "$work/b")"
ls "$work/b" | grep -q tmp && fail "a temporary is left: $(ls "$work/b")"
same "$work/b" "$work/ref" 8
train "$work/b" train.steps=12
same "$work/b" "$work/ref" 12
echo "SIGINT during a checkpoint write: the checkpoint completes, resumed, bit-exact"

# Two signals during step 8's write: exit 128 + 15 at once; step 8 is never renamed into place.
RRT_TEST_SIGNAL=USR1:commit:step_00000008.h5,TERM:commit:step_00000008.h5 \
  train "$work/c" train.steps=12
[[ $status -eq 143 ]] || fail "second signal: exit $status, not 143: $(cat "$work/c.log")"
grep -q "second signal: exiting now" "$work/c.log" || fail "no second-signal message"
[[ "$(newest "$work/c")" == step_00000004.h5 ]] || fail "newest checkpoint $(newest "$work/c")"
ls "$work/c" | grep -q 'step_00000008.h5.tmp' || fail "no unfinished write to clean up"
train "$work/c" train.steps=12
[[ $status -eq 0 ]] || fail "rerun after the second signal: $(cat "$work/c.log")"
grep -q "removed 1 unfinished checkpoint file" "$work/c.log" || fail "the temporary was not removed"
ls "$work/c" | grep -q tmp && fail "a temporary is left: $(ls "$work/c")"
same "$work/c" "$work/ref" 12
echo "two signals during a write: exit 143, the rerun cleans up and resumes bit-exactly"

# Real signals at whatever step the run is in. The runs are long (train.steps=100000); both the
# resumed and the reference run stop by the hook after step 300, where they are compared (the
# kill lands some steps after step 5 is logged, well before).
long=(train.steps=100000 checkpoint.every=20)
RRT_TEST_SIGNAL=TERM:step:300 train "$work/ref300" "${long[@]}"
[[ $status -eq 3 ]] || fail "reference of the long runs: exit $status: $(cat "$work/ref300.log")"
for sig in TERM INT USR1; do
  dir="$work/kill$sig"
  "$rrt" train "$cfg" "${common[@]}" "${long[@]}" train.run_dir="$dir" >"$dir.log" 2>&1 &
  pid=$!
  pids+=("$pid")
  for _ in $(seq 300); do grep -q "^step      5/" "$dir.log" 2>/dev/null && break; sleep 0.1; done
  kill -"$sig" "$pid"
  status=0
  wait "$pid" || status=$?
  [[ $status -eq 3 ]] || fail "kill -$sig: exit $status: $(tail -5 "$dir.log")"
  stop=$(sed -n "s/^stopped by SIG$sig after step \([0-9]*\):.*/\1/p" "$dir.log")
  [[ -n "$stop" && "$stop" -lt 300 ]] || fail "kill -$sig: stopped after step '$stop'"
  [[ "$(newest "$dir")" == "$(basename "$(ckpt "$dir" "$stop")")" ]] ||
    fail "kill -$sig: newest checkpoint $(newest "$dir"), stopped after $stop"
  RRT_TEST_SIGNAL=TERM:step:300 train "$dir" "${long[@]}"
  [[ $status -eq 3 ]] || fail "kill -$sig: the resumed run: exit $status"
  same "$dir" "$work/ref300" 300
  echo "kill -$sig after step $stop: stopped, resumed, bit-exact at step 300"
done

# The lock: a second trainer on a directory in use is refused with the holder's pid and host.
dir="$work/locked"
"$rrt" train "$cfg" "${common[@]}" "${long[@]}" train.run_dir="$dir" >"$dir.log" 2>&1 &
holder=$!
pids+=("$holder")
for _ in $(seq 300); do grep -q "^step      2/" "$dir.log" 2>/dev/null && break; sleep 0.1; done
status=0
"$rrt" train "$cfg" "${common[@]}" "${long[@]}" train.run_dir="$dir" >"$work/second.log" 2>&1 ||
  status=$?
[[ $status -eq 1 ]] || fail "a second trainer: exit $status: $(cat "$work/second.log")"
grep -q "is in use by rrt pid $holder on host $(hostname)" "$work/second.log" ||
  fail "the refusal does not name pid $holder and host $(hostname): $(cat "$work/second.log")"
kill -9 "$holder"
{ wait "$holder"; } 2>/dev/null || true
# No stale lock after kill -9: the next trainer starts (and resumes). The holder may have
# checkpointed any number of steps before the kill, so the stop comes one step after the newest
# checkpoint (a fixed step would never come when the holder got past it).
last=$(ls "$dir" | sed -n 's/^step_0*\([0-9][0-9]*\)\.h5$/\1/p' | sort -n | tail -1)
RRT_TEST_SIGNAL=TERM:step:$((${last:-0} + 1)) train "$dir" "${long[@]}"
[[ $status -eq 3 ]] || fail "after kill -9 of the holder: exit $status: $(tail -3 "$dir.log")"
echo "lock: a second trainer refused with pid and host; free again after kill -9"
echo "signals: all good"
