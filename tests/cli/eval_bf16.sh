#!/usr/bin/env bash
# rrt eval on a bf16 run's checkpoint (train.precision: bf16 on cpu): it is scored on the CPU bf16
# model at every exit and says so ("cpu-bf16" in the text and in --json's "device"); an override
# moves it to fp32 and back, and the two agree within the bf16 backends' loss tolerance. Then
# serving in bf16: rrt generate and rrt serve-bench with --precision bf16 on the same checkpoint,
# and the combination no engine runs (fp32 on cuda) refused with the flag named.
# Skipped (exit 77) where this build or CPU has no bf16 backend (`rrt --version` says why).
# Usage: eval_bf16.sh RRT_BINARY SOURCE_DIR
set -euo pipefail
source "$(dirname "$0")/cli_lib.sh"  # rrt, src, work, fail, expect_error, make_hf_llama_300

if "$rrt" --version | grep -q "^bf16: unavailable"; then
  echo "SKIP: $("$rrt" --version | grep '^bf16:')"
  exit 77
fi

mkdir -p "$work/text"
for i in 1 2 3; do
  for j in $(seq 1 60); do echo "Text $i, line $j: a block that loops over itself."; done > "$work/text/doc$i.txt"
done
"$rrt" prepare --quiet --out "$work/shards" "$work/text" >/dev/null || fail prepare
"$rrt" train "$src/configs/tiny.yaml" data.path="$work/shards" train.run_dir="$work/run" \
  train.steps=4 train.micro_batch=2 train.seq_len=32 train.eval_every=4 train.eval_batches=1 \
  checkpoint.every=4 log.every=4 optim.warmup_steps=1 train.precision=bf16 >"$work/train" 2>&1 \
  || { cat "$work/train"; fail "train in bf16"; }
grep -q "training in bf16 on the CPU" "$work/train" || fail "the run did not train in bf16"
ckpt="$work/run/step_00000004.h5"

"$rrt" eval "$ckpt" >"$work/text.out" || fail "eval"
grep -q "over [0-9]* tokens (cpu-bf16)" "$work/text.out" || fail "eval names no cpu-bf16: $(cat "$work/text.out")"
"$rrt" eval --json "$ckpt" >"$work/bf16.json" || fail "eval --json"
"$rrt" eval --json "$ckpt" train.precision=fp32 >"$work/fp32.json" || fail "eval --json in fp32"
python3 - "$work/bf16.json" "$work/fp32.json" <<'PY' || fail "eval --json of the bf16 checkpoint"
import json, sys
bf, fp = (json.load(open(p)) for p in sys.argv[1:3])
assert bf["device"] == "cpu-bf16", bf["device"]
assert fp["device"] == "cpu", fp["device"]
assert len(bf["exits"]) == len(fp["exits"]) == 2, (bf["exits"], fp["exits"])
# Every exit in bf16 within 1e-2 relative of fp32's loss (the bf16 backends' whole-model loss
# tolerance, tests/model/test_core_bf16.cpp), and not equal to it: the bf16 arithmetic ran.
for b, f in zip(bf["exits"], fp["exits"]):
    assert abs(b["loss"] - f["loss"]) < 1e-2 * f["loss"], (b, f)
    assert b["loss"] != f["loss"], (b, f)
PY
# Serving on the CPU bf16 engine: greedy text with each token's exit loop, and a small benchmark.
"$rrt" generate "$ckpt" --precision bf16 --prompt "Text 1, line" --max-new-tokens 8 --json \
  >"$work/gen.json" || fail "generate --precision bf16"
python3 - "$work/gen.json" <<'PY' || fail "generate --precision bf16 output: $(cat "$work/gen.json")"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
assert len(rows) == 1, rows
assert len(rows[0]["exit_loops"]) >= 1, rows[0]
PY
"$rrt" serve-bench "$ckpt" --precision bf16 --requests 4 --prompt-len 4-8 --output-len 4-8 \
  --repeats 1 --exits none --schedulers depth >"$work/bench.out" || fail "serve-bench --precision bf16"
grep -q "depth" "$work/bench.out" || fail "serve-bench printed no depth-wise row: $(cat "$work/bench.out")"
set +e
"$rrt" generate "$ckpt" --device cuda --precision fp32 --prompt "x" >"$work/refused" 2>&1
code=$?
set -e
[[ $code -ne 0 ]] || fail "fp32 on cuda was accepted"
grep -q -- "--precision" "$work/refused" || fail "the refusal names no --precision: $(cat "$work/refused")"
echo "eval and serving in bf16: all good"
