#!/usr/bin/env bash
# Data-parallel training on GPUs (train.device: cuda, gradients all-reduced by NCCL): 2 ranks,
# one GPU each, train 10 steps as 1 GPU does with the same global batch (6 rows x 2 accumulated
# micro-batches), twice: gradient buckets (small ones, so there are many) all-reduced during
# backward from the device model's grad-ready hook, and distributed.overlap=false (every bucket
# after backward). bf16 activations make the two runs differ by rounding (GEMMs over 3 rows and
# over 6 rows sum in different orders), so the tolerances are bf16's, not fp32's: losses within
# 1e-2 relative, final parameters within 3e-2 relative L2. A rank training without the
# all-reduce sees half the batch and misses both by far.
# Skipped (exit 77) without 2 visible GPUs or without a CUDA build.
# Usage: nccl_train.sh RRT MPIRUN CHECKPOINT_DIFF SOURCE_DIR
set -euo pipefail
rrt="$1" mpirun="$2" diff_tool="$3" src="$4"
gpus=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU ' || true)
if ((gpus < 2)); then
  echo "SKIP: NCCL data parallel needs 2 GPUs, $gpus visible"
  exit 77
fi
source "$(dirname "$0")/mpi_common.sh"

common=(data.path="$work/shards" train.steps=10 train.grad_accum=2 train.seq_len=32
        train.eval_every=5 train.eval_batches=2 checkpoint.every=5 checkpoint.keep_last=5
        log.every=1 optim.warmup_steps=2 train.device=cuda)
train() {  # train RANKS RUN_DIR [key=value...]
  local ranks="$1" dir="$2"; shift 2
  "${mpi[@]}" -np "$ranks" "$rrt" train "$cfg" "${common[@]}" train.run_dir="$dir" \
    train.micro_batch=$((6 / ranks)) "$@" >"$dir.log" 2>&1 || {
    if grep -q "built without CUDA" "$dir.log"; then echo "SKIP: rrt has no CUDA"; exit 77; fi
    fail "$ranks ranks: $(cat "$dir.log")"
  }
}
train 1 "$work/g1"
train 2 "$work/g2" distributed.bucket_mb=0.01
train 2 "$work/g2_after" distributed.overlap=false
grep -q "data parallel: 2 ranks (nccl.*overlapped with backward" "$work/g2.log" \
  || fail "no overlapped NCCL banner: $(cat "$work/g2.log")"
grep -q "data parallel: 2 ranks (nccl.*reduced after backward" "$work/g2_after.log" \
  || fail "no NCCL banner without overlap: $(cat "$work/g2_after.log")"
for run in g2 g2_after; do
python3 - "$work/$run/metrics.jsonl" "$work/g1/metrics.jsonl" <<'PY' || fail "losses of 2 GPUs ($run) differ from 1 GPU"
import json, sys
def read(path):
    return {(j["step"], k): j[k] for j in map(json.loads, open(path))
            for k in ("loss", "val_loss") if k in j}
a, b = read(sys.argv[1]), read(sys.argv[2])
assert a.keys() == b.keys() and a, "different steps logged"
worst = max(abs(a[k] - b[k]) / abs(b[k]) for k in a)
print(f"{len(a)} losses, worst relative difference {worst:.3e} (tolerance 1e-2)")
sys.exit(0 if worst <= 1e-2 else 1)
PY
"$diff_tool" "$work/$run/step_00000010.h5" "$work/g1/step_00000010.h5" 3e-2 \
  || fail "final parameters of 2 GPUs ($run) differ from 1 GPU"
done
echo "nccl train: all good"
