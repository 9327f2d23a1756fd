#!/usr/bin/env bash
# rrt generate, rrt serve-bench and rrt exit-classifier end to end on a tiny relaxed model
# trained for a few steps: text and JSON output, prompts from a file and stdin, every exit rule
# and KV fill, the bench's JSON keys, and the errors a user meets first.
# Usage: cli_smoke.sh RRT_BINARY SOURCE_DIR
set -euo pipefail
source "$(dirname "$0")/../cli/cli_lib.sh"  # rrt, src, work, fail, expect_error

for cmd in generate serve-bench; do "$rrt" "$cmd" --help >/dev/null || fail "rrt $cmd --help"; done
mkdir -p "$work/text"
for j in $(seq 1 80); do echo "Line $j: the block loops over itself, and exits when it is sure."; done > "$work/text/doc.txt"
"$rrt" prepare --quiet --out "$work/shards" "$work/text" >/dev/null || fail prepare
"$rrt" train "$src/configs/tiny.yaml" data.path="$work/shards" train.run_dir="$work/run" \
  train.steps=4 train.micro_batch=2 train.seq_len=32 train.eval_every=4 train.eval_batches=1 \
  checkpoint.every=4 optim.warmup_steps=1 >/dev/null || fail train
ckpt="$work/run/step_00000004.h5"

"$rrt" generate "$ckpt" --prompt "Line 3:" --max-new-tokens 8 >"$work/gen" 2>"$work/gen.err" || fail generate
grep -q '^\[1\] Line 3:' "$work/gen" || fail "generate printed no continuation: $(cat "$work/gen")"
grep -q '^exits:.*@2' "$work/gen" || fail "generate printed no exit depths"
grep -q "tokens/s" "$work/gen.err" || fail "generate printed no summary"
printf 'Line 1:\nLine 2:\n' >"$work/prompts.txt"
for exit in none oracle confidence saturation; do
  for kv in propagate recompute copy; do
    "$rrt" generate "$ckpt" --prompts "$work/prompts.txt" --exit "$exit" --threshold 0.2 --kv "$kv" \
      --max-new-tokens 6 --json 2>/dev/null >"$work/gen.json" || fail "generate --exit $exit --kv $kv"
    [[ $(grep -c '"exit_loops"' "$work/gen.json") -eq 2 ]] || fail "generate --json: two lines expected"
  done
done
echo "Line 9:" | "$rrt" generate "$ckpt" --batching static --temperature 0.8 --top-p 0.9 \
  --max-new-tokens 4 2>/dev/null | grep -q '^\[1\] Line 9:' || fail "generate from stdin"

"$rrt" serve-bench "$ckpt" --requests 6 --prompt-len 4-9 --output-len 3-7 --repeats 1 \
  --exits none,oracle,confidence:0.3,saturation:0.5 --max-batch 3 >"$work/bench.md" || fail serve-bench
for s in static sequence depth; do grep -q "| oracle | $s |" "$work/bench.md" || fail "bench lacks oracle/$s"; done
grep -q "| saturation 0.5 | depth |" "$work/bench.md" || fail "bench lacks saturation 0.5"
"$rrt" generate "$ckpt" --prompt "x" --exit confidence --threshold -0.5 >/dev/null 2>&1 &&
  fail "generate accepted a negative confidence threshold"
"$rrt" serve-bench "$ckpt" --requests 4 --prompt-len 3 --output-len 6 --repeats 1 \
  --exits drawn:0.5,0.5 --schedulers depth >"$work/drawn.md" || fail "serve-bench --exits drawn"
grep -q "| drawn 0.5/0.5 | depth |" "$work/drawn.md" || fail "bench lacks the drawn setting"
"$rrt" serve-bench "$ckpt" --requests 4 --prompt-len 3 --output-len 4 --repeats 1 --exits none \
  --arrival-rate 100 >"$work/arrivals.md" || fail "serve-bench --arrival-rate"
grep -q "Poisson arrivals at 100 requests/s" "$work/arrivals.md" || fail "bench lacks the arrival rate"
grep -q "TTFT p50" "$work/arrivals.md" || fail "bench lacks time to first token"
grep -q "c(n) = a + b n" "$work/bench.md" || fail "bench lacks the latency fit"
"$rrt" serve-bench "$ckpt" --requests 4 --prompt-len 5 --output-len 4 --repeats 2 --random-prompts \
  --exits oracle --schedulers depth,static --kv copy --json >"$work/bench.json" || fail "serve-bench --json"
for key in '"tokens_per_second"' '"latency_p99"' '"mean_loops"' '"agreement"' '"theory_block_seconds"' '"exit_counts"'; do
  grep -qF "$key" "$work/bench.json" || fail "serve-bench --json lacks $key"
done
# Progress on stderr (every run with RRT_PROGRESS_SECONDS=0: 2 repeats x 1 exit x 2 schedulers),
# stdout still exactly the JSON document.
RRT_PROGRESS_SECONDS=0 "$rrt" serve-bench "$ckpt" --requests 4 --prompt-len 5 --output-len 4 \
  --repeats 2 --random-prompts --exits oracle --schedulers depth,static --json \
  >"$work/progress.json" 2>"$work/progress.err" || fail "serve-bench with progress"
for i in 1 2 3 4; do
  grep -q "^serve-bench: $i/4, .* s, ETA " "$work/progress.err" || fail "no progress line $i/4: $(cat "$work/progress.err")"
done
python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "$work/progress.json" \
  || fail "serve-bench --json stdout is not one JSON document with progress on"
printf '1 2 3\n40 41 42 43 44\n' >"$work/tokens.txt"
"$rrt" serve-bench "$ckpt" --tokens "$work/tokens.txt" --requests 3 --output-len 3 --repeats 1 \
  --exits none --schedulers depth | grep -q "prompts from" || fail "serve-bench --tokens"

# The learned exit classifier: trained from the run's held-out tokens, then served by
# --exit classifier (generate, serve-bench); a rule without its file is an error.
"$rrt" exit-classifier train "$ckpt" --out "$work/cls.safetensors" --tokens 256 --seq-len 16 \
  --epochs 3 --hidden 4 >"$work/cls.md" 2>"$work/cls.err" || fail "exit-classifier train: $(cat "$work/cls.err")"
grep -q "| loop | train | held out |" "$work/cls.md" || fail "exit-classifier train printed no report"
[[ -s "$work/cls.safetensors" ]] || fail "exit-classifier train wrote no file"
"$rrt" exit-classifier show "$work/cls.safetensors" --checkpoint "$ckpt" | grep -q "^matches " \
  || fail "exit-classifier show --checkpoint"
"$rrt" generate "$ckpt" --prompts "$work/prompts.txt" --exit classifier --threshold 0.5 \
  --exit-classifier "$work/cls.safetensors" --max-new-tokens 6 --json 2>/dev/null >"$work/cls.json" \
  || fail "generate --exit classifier"
[[ $(grep -c '"exit_loops"' "$work/cls.json") -eq 2 ]] || fail "generate --exit classifier: two lines expected"
"$rrt" serve-bench "$ckpt" --requests 4 --prompt-len 3-5 --output-len 4 --repeats 1 \
  --exits none,classifier:0.5 --exit-classifier "$work/cls.safetensors" --schedulers depth \
  >"$work/cls_bench.md" || fail "serve-bench classifier:0.5"
grep -q "| classifier 0.5 | depth |" "$work/cls_bench.md" || fail "bench lacks classifier 0.5"
expect_error "--exit-classifier FILE" "$rrt" generate "$ckpt" --prompt "x" --exit classifier
expect_error "--exit-classifier FILE" "$rrt" serve-bench "$ckpt" --exits classifier:0.5 --requests 2 \
  --repeats 1

expect_error "no prompt" bash -c "\"$rrt\" generate \"$ckpt\" </dev/null"
expect_error "max_seq_len" "$rrt" generate "$ckpt" --prompt "x" --max-new-tokens 100000
expect_error "unknown exit setting" "$rrt" serve-bench "$ckpt" --exits sometimes
expect_error "--prompt-len" "$rrt" serve-bench "$ckpt" --prompt-len 9-3
if ! "$rrt" --version 2>/dev/null | grep -qi cuda; then
  # A CPU build: the GPU engine is a clear error, not a crash.
  expect_error "without CUDA" "$rrt" generate "$ckpt" --prompt "x" --device cuda
fi
echo "inference CLI smoke: ok"
