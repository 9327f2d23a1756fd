#!/usr/bin/env bash
# Data-parallel training through the real binary under mpirun: 2 and 3 ranks train 10 steps as
# 1 rank does with the same global batch (6 rows x 2 accumulated micro-batches); a checkpoint
# written by 3 ranks resumes on 2 and ends where the uninterrupted runs end; a 3-rank resume is
# bit-exact; ZeRO-1 equals no ZeRO, and its checkpoints move between both; distillation with
# early exits trains on 2 ranks as on 1; --profile writes one trace per rank (gradient buckets
# included) and only rank 0 writes TensorBoard events.
# Usage: mpi_train.sh RRT MPIRUN CHECKPOINT_DIFF SOURCE_DIR
set -euo pipefail
rrt="$1" mpirun="$2" diff_tool="$3" src="$4"
source "$(dirname "$0")/mpi_common.sh"
tolerance=1e-5

common=(data.path="$work/shards" train.steps=10 train.grad_accum=2 train.seq_len=32
        train.eval_every=5 train.eval_batches=2 checkpoint.every=5 checkpoint.keep_last=5
        log.every=1 optim.warmup_steps=2 train.threads=1)
train() {  # train RANKS RUN_DIR [key=value...]: global micro-batch 6 = RANKS x (6 / RANKS)
  local ranks="$1" dir="$2"; shift 2
  "${mpi[@]}" -np "$ranks" "$rrt" train "$cfg" "${common[@]}" train.run_dir="$dir" \
    train.micro_batch=$((6 / ranks)) "$@" >"$dir.log" 2>&1 || fail "$ranks ranks: $(cat "$dir.log")"
}
# compare_losses A B FIRST_STEP: every loss and val_loss of metrics.jsonl from FIRST_STEP on.
compare_losses() {
  python3 - "$1/metrics.jsonl" "$2/metrics.jsonl" "$3" "$tolerance" <<'PY'
import json, sys
def read(path, first):
    out = {}
    for line in open(path):
        j = json.loads(line)
        for key in ("loss", "val_loss"):
            if key in j and j["step"] >= first:
                out[(j["step"], key)] = j[key]
    return out
a, b = read(sys.argv[1], int(sys.argv[3])), read(sys.argv[2], int(sys.argv[3]))
assert a.keys() == b.keys() and a, f"different steps logged: {sorted(a)} vs {sorted(b)}"
worst = max(abs(a[k] - b[k]) / abs(b[k]) for k in a)
print(f"{len(a)} losses, worst relative difference {worst:.3e}")
sys.exit(0 if worst <= float(sys.argv[4]) else 1)
PY
}

train 1 "$work/r1"
grep -q "data parallel" "$work/r1.log" && fail "1 rank announced data parallelism"
for ranks in 2 3; do
  train "$ranks" "$work/r$ranks"
  grep -q "data parallel: $ranks ranks (mpi)" "$work/r$ranks.log" || fail "no banner: $(cat "$work/r$ranks.log")"
  # Only rank 0 logs: each step line once.
  [[ $(grep -c "^step      3/10" "$work/r$ranks.log") -eq 1 ]] || fail "step 3 not logged exactly once"
  # Every training line carries the all-reduce wait after backward (a time: >= 0, finite).
  python3 -c 'import json, math, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if "\"loss\"" in l]
assert rows and all(0 <= r["comm_wait_ms"] < math.inf for r in rows), rows[:2]' \
    "$work/r$ranks/metrics.jsonl" || fail "no comm_wait_ms in $ranks-rank metrics"
  echo "1 vs $ranks ranks:"
  compare_losses "$work/r$ranks" "$work/r1" 1 || fail "losses of $ranks ranks differ from 1 rank"
  "$diff_tool" "$work/r$ranks/step_00000010.h5" "$work/r1/step_00000010.h5" "$tolerance" \
    || fail "final parameters of $ranks ranks differ from 1 rank"
done

# ZeRO-1 (moments sharded, parameters all-gathered) trains as without it, and its checkpoints
# (moments gathered whole on rank 0) resume on another world size without ZeRO, and back.
for ranks in 2 3; do
  train "$ranks" "$work/z$ranks" distributed.zero1=true
  grep -q "ZeRO-1" "$work/z$ranks.log" || fail "no ZeRO-1 banner: $(cat "$work/z$ranks.log")"
  echo "ZeRO-1 on $ranks ranks vs 1 rank:"
  compare_losses "$work/z$ranks" "$work/r1" 1 || fail "ZeRO-1 losses of $ranks ranks differ"
  "$diff_tool" "$work/z$ranks/step_00000010.h5" "$work/r$ranks/step_00000010.h5" 0 \
    || fail "ZeRO-1 on $ranks ranks is not bit-identical to $ranks ranks without it"
done
mkdir -p "$work/zresume2" "$work/zresume3"
cp "$work/z3/step_00000005.h5" "$work/zresume2/"
cp "$work/r2/step_00000005.h5" "$work/zresume3/"
train 2 "$work/zresume2"
train 3 "$work/zresume3" distributed.zero1=true
echo "ZeRO-1 3 ranks -> 2 ranks without ZeRO, and 2 ranks -> ZeRO-1 on 3:"
"$diff_tool" "$work/zresume2/step_00000010.h5" "$work/r2/step_00000010.h5" "$tolerance" \
  || fail "a ZeRO-1 checkpoint resumed without ZeRO differs"
"$diff_tool" "$work/zresume3/step_00000010.h5" "$work/r1/step_00000010.h5" "$tolerance" \
  || fail "a checkpoint resumed with ZeRO-1 differs"

# The step-5 checkpoint of the 3-rank run, resumed on 2 ranks (3 rows each).
mkdir -p "$work/resume2" "$work/resume3"
cp "$work/r3/step_00000005.h5" "$work/resume2/"
cp "$work/r3/step_00000005.h5" "$work/resume3/"
train 2 "$work/resume2"
grep -q "resuming from .*step_00000005.h5 (step 5)" "$work/resume2.log" || fail "did not resume"
echo "3 -> 2 ranks resumed vs 2 ranks throughout:"
compare_losses "$work/resume2" "$work/r2" 6 || fail "resumed losses differ"
"$diff_tool" "$work/resume2/step_00000010.h5" "$work/r2/step_00000010.h5" "$tolerance" \
  || fail "resumed parameters differ from the 2-rank run"
"$diff_tool" "$work/resume2/step_00000010.h5" "$work/r1/step_00000010.h5" "$tolerance" \
  || fail "resumed parameters differ from the 1-rank run"
# Same world size: resume is exact.
train 3 "$work/resume3"
echo "3 -> 3 ranks resumed vs 3 ranks throughout (exact):"
"$diff_tool" "$work/resume3/step_00000010.h5" "$work/r3/step_00000010.h5" 0 \
  || fail "a 3-rank resume is not bit-exact"
# Distillation + early exits (forward KL from a teacher, exits after both loops, aggressive(0.1)
# + self-distillation): each rank runs the teacher on its own rows, the chunked loss averages
# per rank, and 2 ranks must still train as 1 rank does. The teacher: the 1-rank run's result.
kd=(distill.teacher="$work/r1/step_00000010.h5" distill.alpha=0.5 distill.temperature=2
    early_exit.exits=all "early_exit.weights=[aggressive(0.1)]" early_exit.self_distill=true)
train 1 "$work/kd1" "${kd[@]}"
train 2 "$work/kd2" "${kd[@]}"
grep -q '"loss_kd"' "$work/kd2/metrics.jsonl" || fail "no KD term logged: $(head -3 "$work/kd2/metrics.jsonl")"
echo "KD + exits, 1 vs 2 ranks:"
compare_losses "$work/kd2" "$work/kd1" 1 || fail "KD + exits: losses of 2 ranks differ from 1 rank"
"$diff_tool" "$work/kd2/step_00000010.h5" "$work/kd1/step_00000010.h5" "$tolerance" \
  || fail "KD + exits: final parameters of 2 ranks differ from 1 rank"
# --profile on 2 ranks: each rank writes its own trace (pid = rank) with the steps after the
# first and the gradient buckets' all-reduce; rank 0 alone writes the TensorBoard events.
"${mpi[@]}" -np 2 "$rrt" train "$cfg" "${common[@]}" train.run_dir="$work/prof2" \
  train.micro_batch=3 train.steps=3 --profile=2 >"$work/prof2.log" 2>&1 \
  || fail "--profile on 2 ranks: $(cat "$work/prof2.log")"
python3 - "$work/prof2" <<'PY' || fail "profile traces of 2 ranks: $(cat "$work/prof2.log")"
import glob, json, sys
run = sys.argv[1]
for rank in (0, 1):
    doc = json.load(open(f"{run}/profile_rank{rank}.json"))
    spans = [e for e in doc["traceEvents"] if e["ph"] == "X"]
    assert all(e["pid"] == rank and e["dur"] >= 0 for e in spans), rank
    steps = sorted(e["args"]["step"] for e in spans if e["name"] == "step")
    assert steps == [2, 3], (rank, steps)
    names = {e["name"] for e in spans}
    assert {"grad_sync.launch", "grad_sync.wait", "forward_backward"} <= names, names
assert len(glob.glob(f"{run}/events.out.tfevents.*")) == 1, glob.glob(f"{run}/events*")
print("profile: 2 traces with steps 2..3 and bucket spans, one event file")
PY
echo "mpi train: all good"
