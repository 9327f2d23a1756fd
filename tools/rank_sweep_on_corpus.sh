#!/usr/bin/env bash
# Issue #4, "the converted model's loss falls as rank grows", on real text: train a plain
# 4-layer model on the embedded corpus, export it as an HF Llama directory, convert it into a
# 2-loop relaxed model at several LoRA ranks (average init, SVD LoRA), and evaluate each on the
# corpus's validation split. Prints one table row per rank.
#   tools/rank_sweep_on_corpus.sh [WORK_DIR] [STEPS]      (defaults: /tmp/rrt_rank_sweep, 300)
set -euo pipefail
cd "$(dirname "$0")/.."
rrt=build/rrt
work="${1:-/tmp/rrt_rank_sweep}"
steps="${2:-300}"
rm -rf "$work" && mkdir -p "$work"
"$rrt" prepare --quiet --out "$work/data" data/corpus/demo.jsonl >/dev/null
# The plain model: configs/demo.yaml with one loop (4 unique layers) and no LoRA.
"$rrt" train configs/demo.yaml data.path="$work/data" train.run_dir="$work/plain" \
  recursion.loops=1 lora.rank=0 train.steps="$steps" train.eval_every="$steps" \
  checkpoint.every="$steps" log.every=50 >"$work/train.log"
plain=$(ls "$work"/plain/step_*.h5 | tail -1)
"$rrt" export "$plain" --out "$work/hf" >/dev/null
printf "| model | LoRA rank (attention / mlp) | validation loss | perplexity |\n|---|---|---|---|\n"
loss_of() { "$rrt" eval --json --data "$work/data" "$1" | python3 -c 'import json,sys; d=json.load(sys.stdin); print("%.4f | %.2f" % (d["loss"], d["perplexity"]))'; }
echo "| original (4 layers) | - | $(loss_of "$plain") |"
# d_model 128, kv dim 64: ranks are capped by min(in, out) per kind (attention 64, mlp 128).
for r in "0 0" "8 8" "32 32" "64 64" "64 128"; do
  set -- $r
  "$rrt" convert --from "$work/hf" --loops 2 --init average --lora-rank-attention "$1" \
    --lora-rank-mlp "$2" --out "$work/conv_$1_$2.h5" >/dev/null
  echo "| relaxed, 2 x 2 loops | $1 / $2 | $(loss_of "$work/conv_$1_$2.h5") |"
done
