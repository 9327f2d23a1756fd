#!/usr/bin/env bash
# A run's relative paths are relative to the directory it was launched from (rrt sweep launches
# every run in the sweep's directory). Its checkpoints record that directory, so `rrt eval` (the
# run's data.path) and `rrt generate` (its data.tokenizer) work on them from anywhere
# (checkpoint/checkpoint_config.h), and a path given on the command line stays the user's.
# Usage: launch_dir.sh RRT_BINARY SOURCE_DIR
set -euo pipefail
source "$(dirname "$0")/cli_lib.sh"  # rrt, src, work, fail, expect_error, make_hf_llama_300

launch="$work/launch"
mkdir -p "$launch/tok" "$launch/text" "$work/elsewhere"
cp "$src/tests/fixtures/tokenizer_json/smollm2/tokenizer.json" \
   "$src/tests/fixtures/tokenizer_json/smollm2/tokenizer_config.json" "$launch/tok/"
for i in 1 2 3; do
  for j in $(seq 1 40); do echo "Text $i, line $j: a block that loops over itself."; done \
    >"$launch/text/doc$i.txt"
done

cd "$launch"
"$rrt" prepare --quiet --tokenizer tok/tokenizer.json --out shards text >/dev/null || fail prepare
"$rrt" train "$src/configs/tiny.yaml" data.path=shards data.tokenizer=tok/tokenizer.json \
  model.vocab=49152 train.run_dir=run train.steps=2 train.micro_batch=2 train.seq_len=16 \
  train.eval_every=2 train.eval_batches=1 checkpoint.every=2 log.every=1 optim.warmup_steps=1 \
  >"$work/train.log" 2>&1 || fail "train: $(tail -5 "$work/train.log")"
ckpt="$launch/run/step_00000002.h5"
[[ -f "$ckpt" ]] || fail "no checkpoint at step 2"

cd "$work/elsewhere"
# Neither shards/ nor tok/ exists here: both come from the launch directory.
"$rrt" eval --json "$ckpt" >"$work/eval.json" 2>"$work/eval.err" ||
  fail "eval from another directory: $(cat "$work/eval.err")"
grep -q '"perplexity"' "$work/eval.json" || fail "eval printed no perplexity"
"$rrt" generate "$ckpt" --prompt "Text 1, line" --max-new-tokens 3 >"$work/gen.out" \
  2>"$work/gen.err" || fail "generate from another directory: $(cat "$work/gen.err")"
grep -q "Text 1, line" "$work/gen.out" || fail "generate printed no prompt: $(cat "$work/gen.out")"

# A path given here is relative to here: a tokenizer.json of this directory is the one read,
# and one that does not exist here is reported as such (not looked up in the launch directory).
expect_error "tok/tokenizer.json" \
  "$rrt" generate "$ckpt" --tokenizer tok/tokenizer.json --prompt "x" --max-new-tokens 1
echo "launch_dir: ok"
