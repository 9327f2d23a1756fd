#!/usr/bin/env bash
# Fault injection for writes: a full disk (ENOSPC) or a kill at each write site of the rrt
# binary (token shards, checkpoint, metrics.jsonl, the progress log, export), through the
# LD_PRELOAD library write_fault.c. Each time: the command fails with an error naming the file,
# and nothing written before is lost (previous checkpoints verify, metrics.jsonl keeps every
# earlier byte and no partial line, an unfinished shard set or export is refused by readers).
# Usage: write_faults.sh RRT_BINARY FAULT_LIBRARY SOURCE_DIR
set -euo pipefail
rrt="$1"
shim="$2"
src="$3"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
# faulty FILE AFTER MODE cmd...: runs cmd with the fault armed; stdout/stderr in $work/out, err.
faulty() {
  local file="$1" after="$2" mode="$3"; shift 3
  status=0
  RRT_FAULT_FILE="$file" RRT_FAULT_AFTER="$after" RRT_FAULT_MODE="$mode" LD_PRELOAD="$shim" \
    "$@" >"$work/out" 2>"$work/err" || status=$?
}
# expect_failure FRAGMENT: the last faulty command exited 1 (137 for a kill) naming FRAGMENT.
expect_failure() {
  [[ $status -eq 1 ]] || fail "expected exit 1, got $status; stderr: $(cat "$work/err")"
  grep -qF -- "$1" "$work/err" || fail "expected '$1' in: $(cat "$work/err")"
}
expect_killed() { [[ $status -eq 137 ]] || fail "expected a kill (137), got $status"; }

mkdir -p "$work/text"
for i in 1 2 3 4; do
  for j in $(seq 1 80); do echo "Text $i, line $j: a block that loops over itself."; done \
    >"$work/text/doc$i.txt"
done
"$rrt" prepare --quiet --out "$work/shards" "$work/text" >/dev/null || fail prepare

# --- shards: a full disk in the second shard -------------------------------------------------
faulty shards_full/shard_00001 2000 enospc \
  "$rrt" prepare --quiet --shard-tokens 4000 --out "$work/shards_full" "$work/text"
expect_failure "shards_full/shard_00001.h5"
[[ -z "$(ls -A "$work/shards_full")" ]] || fail "a failed prepare left files: $(ls "$work/shards_full")"
# ... and a kill there: INCOMPLETE stays, and training refuses the set.
faulty shards_killed/shard_00001 2000 kill \
  "$rrt" prepare --quiet --shard-tokens 4000 --out "$work/shards_killed" "$work/text"
expect_killed
[[ -f "$work/shards_killed/INCOMPLETE" ]] || fail "a killed prepare left no INCOMPLETE marker"

cfg="$src/configs/tiny.yaml"
common=(data.path="$work/shards" train.run_dir="$work/run" train.micro_batch=2 train.seq_len=32
        train.eval_every=1000 train.eval_batches=1 checkpoint.every=2 checkpoint.keep_last=10
        log.every=1 optim.warmup_steps=2 optim.schedule=constant)
status=0
"$rrt" train "$cfg" "${common[@]}" data.path="$work/shards_killed" train.steps=2 \
  >"$work/out" 2>"$work/err" || status=$?
expect_failure "incomplete shard set"

"$rrt" train "$cfg" "${common[@]}" train.steps=4 >/dev/null || fail "train to step 4"
cp "$work/run/step_00000004.h5" "$work/step4.copy"

# --- metrics.jsonl: a full disk in mid-line, then a kill in mid-line ---------------------------
cp "$work/run/metrics.jsonl" "$work/metrics.before"
size=$(stat -c %s "$work/run/metrics.jsonl")
faulty metrics.jsonl 40 enospc "$rrt" train "$cfg" "${common[@]}" train.steps=8
expect_failure "metrics.jsonl"
cmp -s "$work/run/metrics.jsonl" "$work/metrics.before" || fail "metrics.jsonl lost or gained bytes"
faulty metrics.jsonl 40 kill "$rrt" train "$cfg" "${common[@]}" train.steps=8
expect_killed
[[ $(stat -c %s "$work/run/metrics.jsonl") -eq $((size + 40)) ]] || fail "the kill did not cut a line"
cmp -s -n "$size" "$work/run/metrics.jsonl" "$work/metrics.before" || fail "earlier lines changed"

# --- checkpoint: a full disk while step 6 is written -----------------------------------------
faulty step_00000006.h5 4096 enospc "$rrt" train "$cfg" "${common[@]}" train.steps=8
expect_failure "step_00000006.h5"
ls "$work/run" | grep -q "step_00000006" && fail "a failed checkpoint left $(ls "$work/run")"
cmp -s "$work/run/step_00000004.h5" "$work/step4.copy" || fail "step 4 changed"
"$rrt" eval "$work/run/step_00000004.h5" >/dev/null 2>&1 || fail "step 4 does not load"

# --- the progress log on a full disk -----------------------------------------------------------
status=0
"$rrt" train "$cfg" "${common[@]}" train.steps=8 >/dev/full 2>"$work/err" || status=$?
expect_failure "/dev/full"

# A clean rerun resumes from step 4, cuts the partial line, and logs each step once (steps 4
# and 8 also have their validation line: the ends of the two invocations that finished).
"$rrt" train "$cfg" "${common[@]}" train.steps=8 >/dev/null || fail "clean resume"
cmp -s -n "$size" "$work/run/metrics.jsonl" "$work/metrics.before" || fail "resume changed lines"
steps=$(grep -o '"step":[0-9]*' "$work/run/metrics.jsonl" | tr '\n' ' ')
[[ "$steps" == '"step":1 "step":2 "step":3 "step":4 "step":4 "step":5 "step":6 "step":7 "step":8 "step":8 ' ]] ||
  fail "metrics.jsonl steps after the faults: $steps"

# --- export: a full disk in model.safetensors over an earlier export ---------------------------
"$rrt" export "$work/run/step_00000004.h5" --out "$work/exp" >/dev/null || fail export
cp "$work/exp/model.safetensors" "$work/exp.copy"
faulty exp/model.safetensors 10000 enospc \
  "$rrt" export "$work/run/step_00000008.h5" --out "$work/exp" --force
expect_failure "model.safetensors"
cmp -s "$work/exp/model.safetensors" "$work/exp.copy" || fail "the earlier export was damaged"
[[ -f "$work/exp/INCOMPLETE" ]] || fail "a failed export is not marked INCOMPLETE"
status=0
"$rrt" convert --from "$work/exp" --loops 1 --out "$work/conv.h5" >"$work/out" 2>"$work/err" ||
  status=$?
expect_failure "incomplete export"
echo "write faults: all sites pass"
