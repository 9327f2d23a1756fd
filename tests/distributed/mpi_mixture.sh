#!/usr/bin/env bash
# A mixture (data.sources) under mpirun: 2 and 3 ranks train 8 steps as 1 rank does with the
# same global batch (6 rows), with the same per-source counts in the checkpoint (every rank
# advances the whole global batch's schedule and reads its own, disjoint, rows); a 2-rank
# checkpoint resumes on 3 ranks and ends where the 1-rank run ends.
# Usage: mpi_mixture.sh RRT MPIRUN CHECKPOINT_DIFF SOURCE_DIR
set -euo pipefail
rrt="$1" mpirun="$2" diff_tool="$3" src="$4"
source "$(dirname "$0")/mpi_common.sh"
# Losses agree to ~1e-7 relative (the same rows: only the all-reduce's summation order
# differs); parameters to ~2e-5, the zero-initialised LoRA B tensors having the smallest norms.
tolerance=1e-4 loss_tolerance=1e-6

mkdir -p "$work/code_text"
for i in 1 2; do
  for j in $(seq 1 50); do echo "int f$i$j(int x) { return x * $j; }"; done > "$work/code_text/f$i.c.txt"
done
"$rrt" prepare --quiet --out "$work/code" "$work/code_text" >/dev/null || fail prepare code

common=("data.sources=[{path: $work/shards, weight: 2, name: prose}, {path: $work/code, weight: 1, epochs: 3, name: code}]"
        data.path= train.steps=8 train.grad_accum=2 train.seq_len=32 train.eval_every=4
        train.eval_batches=1 checkpoint.every=4 checkpoint.keep_last=5 log.every=1
        optim.warmup_steps=2 train.threads=1)
train() {  # train RANKS RUN_DIR [key=value...]: global micro-batch 6 = RANKS x (6 / RANKS)
  local ranks="$1" dir="$2"; shift 2
  "${mpi[@]}" -np "$ranks" "$rrt" train "$cfg" "${common[@]}" train.run_dir="$dir" \
    train.micro_batch=$((6 / ranks)) "$@" >"$dir.log" 2>&1 || fail "$ranks ranks: $(cat "$dir.log")"
}

train 1 "$work/m1"
grep -q '"source_tokens/code"' "$work/m1/metrics.jsonl" || fail "no source tokens logged"
grep -q '"val_loss/prose"' "$work/m1/metrics.jsonl" || fail "no per-source validation logged"
for ranks in 2 3; do
  train "$ranks" "$work/m$ranks"
  echo "mixture, 1 vs $ranks ranks:"
  "$diff_tool" "$work/m$ranks/step_00000008.h5" "$work/m1/step_00000008.h5" "$tolerance" \
    || fail "a mixture on $ranks ranks differs from 1 rank"
  python3 - "$work/m$ranks/metrics.jsonl" "$work/m1/metrics.jsonl" \
    "$loss_tolerance" <<'PY' || fail "source tokens or losses differ on $ranks ranks"
import json, sys
def read(path):
    return [json.loads(l) for l in open(path)]
def tokens(lines):
    return [{k: v for k, v in j.items() if k.startswith("source_tokens/")}
            for j in lines if "loss" in j]
a, b = read(sys.argv[1]), read(sys.argv[2])
assert tokens(a) == tokens(b) and tokens(a)[-1], (tokens(a)[-1:], tokens(b)[-1:])
print("source tokens per step equal:", tokens(a)[-1])
worst = max(abs(x[k] - y[k]) / abs(y[k]) for x, y in zip(a, b) for k in x
            if k == "loss" or k.startswith("val_loss"))
print(f"losses: worst relative difference {worst:.1e}")
assert len(a) == len(b) and worst <= float(sys.argv[3]), worst
PY
done
mkdir -p "$work/resume3"
cp "$work/m2/step_00000004.h5" "$work/resume3/"
train 3 "$work/resume3"
grep -q "resuming from .*step_00000004.h5 (step 4)" "$work/resume3.log" || fail "did not resume"
echo "mixture, 2 -> 3 ranks resumed vs 1 rank throughout:"
"$diff_tool" "$work/resume3/step_00000008.h5" "$work/m1/step_00000008.h5" "$tolerance" \
  || fail "a mixture resumed on 3 ranks differs"
echo "mpi mixture: all good"
