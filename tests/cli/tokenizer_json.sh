#!/usr/bin/env bash
# HF tokenizer.json through the rrt binary: convert carries it from an HF folder that holds only
# tokenizer.json, prepare / eval / generate take it with --tokenizer, shards of another
# tokenizer are refused, export writes it back, and a file rrt cannot run is refused at once.
# Usage: tokenizer_json.sh RRT_BINARY SOURCE_DIR
set -euo pipefail
source "$(dirname "$0")/cli_lib.sh"  # rrt, src, work, fail, expect_error, make_hf_llama_300

# An HF folder of a 300-token Llama with a byte-level BPE tokenizer.json of 300 tokens (the
# GPT-2-style fixture cut to its first 300 ids) and no tokenizer.model.
hf="$work/hf"
make_hf_llama_300 "$hf"

"$rrt" convert --from "$hf" --loops 3 --lora-rank 2 --out "$work/conv/init.h5" >"$work/conv.out" \
  || fail "convert"
grep -q "^tokenizer: .*/hf/tokenizer.json (300 tokens, EOS 0)" "$work/conv.out" \
  || fail "convert did not read the tokenizer: $(cat "$work/conv.out")"
grep -q "tokenizer: .*/hf/tokenizer.json" "$work/conv/init.yaml" || fail "tokenizer not recorded"

mkdir -p "$work/text"
for i in 1 2 3; do
  for j in $(seq 1 40); do echo "Text $i, line $j: the 3 loops of a block — naïve café 😀."; done \
    >"$work/text/doc$i.txt"
done
"$rrt" prepare --quiet --tokenizer "$hf/tokenizer.json" --out "$work/shards" "$work/text" \
  | grep -q "3 documents" || fail "prepare --tokenizer tokenizer.json"
grep -q '"hf:tokenizer.json"' "$work/shards/manifest.json" || fail "shards' tokenizer name"
"$rrt" prepare --quiet --out "$work/byte_shards" "$work/text" >/dev/null || fail "prepare byte"

run=(data.path="$work/shards" train.run_dir="$work/run" train.steps=2 train.micro_batch=2
     train.seq_len=16 train.eval_batches=1)
"$rrt" train "$work/conv/init.yaml" "${run[@]}" >/dev/null || fail "train on tokenizer.json shards"
ckpt="$work/run/step_00000002.h5"
# Byte shards under the converted model: refused, naming both tokenizers.
expect_error "written with tokenizer 'byte'" "$rrt" train "$work/conv/init.yaml" "${run[@]}" \
  data.path="$work/byte_shards" train.run_dir="$work/run_byte"
"$rrt" eval "$ckpt" --tokenizer "$hf" | grep -q "validation loss" || fail "eval --tokenizer DIR"
expect_error "written with tokenizer 'byte'" "$rrt" eval "$ckpt" --data "$work/byte_shards"
"$rrt" generate "$ckpt" --prompt "the loops" --max-new-tokens 3 --tokenizer "$hf/tokenizer.json" \
  >/dev/null || fail "generate --tokenizer tokenizer.json"
# A tokenizer whose vocabulary the model cannot hold.
expect_error "is not the model's tokenizer" "$rrt" generate "$ckpt" --prompt "x" \
  --tokenizer "$src/tests/fixtures/tokenizer_json/llama2/tokenizer.json"

"$rrt" export "$ckpt" --out "$work/export" >"$work/export.out" || fail export
cmp -s "$hf/tokenizer.json" "$work/export/tokenizer.json" || fail "tokenizer.json not written back"
cmp -s "$hf/tokenizer_config.json" "$work/export/tokenizer_config.json" \
  || fail "tokenizer_config.json not written back"
[[ "$(grep -c "tokenizer.json" "$work/export.out")" == 1 ]] || fail "tokenizer.json copied twice"

# A tokenizer.json rrt cannot run: refused by convert and prepare, naming the field.
python3 - "$hf/tokenizer.json" <<'PY'
import json, sys
t = json.load(open(sys.argv[1], encoding="utf-8"))
t["pre_tokenizer"] = {"type": "Whitespace"}
json.dump(t, open(sys.argv[1], "w", encoding="utf-8"))
PY
expect_error "pre_tokenizer.type" "$rrt" convert --from "$hf" --loops 3 --out "$work/bad.h5"
expect_error "pre_tokenizer.type" "$rrt" prepare --tokenizer "$hf/tokenizer.json" \
  --out "$work/bad_shards" "$work/text"
echo "tokenizer.json end to end: ok"
