#!/usr/bin/env bash
# Every command takes an HF directory or a GGUF file where it takes a checkpoint
# (checkpoint/model_source.h): `rrt eval DIR` scores the loss of the checkpoint that
# `rrt convert --loops 1` writes from it, `rrt generate DIR` greedy gives its tokens, serve-bench
# runs on a .gguf file, and a path that is none of the three is told what is accepted.
# Usage: any_source.sh RRT_BINARY SOURCE_DIR
set -euo pipefail
source "$(dirname "$0")/cli_lib.sh"  # rrt, src, work, fail, expect_error, make_hf_llama_300

# An HF folder of a 300-token Llama with a byte-level BPE tokenizer.json cut to 300 ids (as in
# tokenizer_json.sh): the tokenizer that travels with the directory.
hf="$work/hf"
make_hf_llama_300 "$hf"
"$rrt" convert --from "$hf" --loops 1 --out "$work/plain.h5" >/dev/null 2>&1 || fail "convert"

mkdir -p "$work/text"
for i in 1 2 3; do
  for j in $(seq 1 50); do echo "Text $i, line $j: the loops of a block."; done >"$work/text/d$i.txt"
done
"$rrt" prepare --quiet --tokenizer "$hf/tokenizer.json" --out "$work/shards" "$work/text" \
  >/dev/null || fail "prepare"

# rrt eval: the same loss from the directory as from its converted checkpoint (exit 1 is all).
loss() { "$rrt" eval "$1" --data "$work/shards" --json | python3 -c \
  'import json,sys; j=json.load(sys.stdin); print(j["exits"][0]["loss"], len(j["exits"]))'; }
from_dir="$(loss "$hf")" || fail "eval DIR"
from_h5="$(loss "$work/plain.h5")" || fail "eval CHECKPOINT"
[[ -n $from_dir && $from_dir == "$from_h5" ]] \
  || fail "eval: directory gives '$from_dir', its checkpoint '$from_h5'"

# rrt generate, greedy: token for token, with the directory's own tokenizer.
gen() { "$rrt" generate "$1" --prompt "Hello there" --prompt "the loops" --max-new-tokens 12 \
  --ignore-eos --json 2>/dev/null; }
gen "$hf" >"$work/gen_dir" || fail "generate DIR"
gen "$work/plain.h5" >"$work/gen_h5" || fail "generate CHECKPOINT"
grep -q '"tokens":\[[0-9]' "$work/gen_dir" || fail "generate DIR gave no tokens: $(cat "$work/gen_dir")"
cmp -s "$work/gen_dir" "$work/gen_h5" \
  || fail "generate: $(cat "$work/gen_dir") vs its checkpoint's $(cat "$work/gen_h5")"

# serve-bench on a GGUF file (random prompts: the fixture carries no tokenizer).
"$rrt" serve-bench "$src/tests/fixtures/gguf/llama_untied.gguf" --random-prompts --requests 2 \
  --prompt-len 4 --output-len 4 --exits none --schedulers depth --json >"$work/bench" 2>/dev/null \
  || fail "serve-bench FILE.gguf"
grep -q '"depth"' "$work/bench" || fail "serve-bench output: $(cat "$work/bench")"

# Paths that are none of the three.
echo "notes" >"$work/notes.txt"
accepted="a Hugging Face model directory with config.json, or a .gguf file"
expect_error "$accepted" "$rrt" generate "$work/notes.txt" --prompt hi
expect_error "$accepted" "$rrt" eval "$src/tests/fixtures/gguf" --data "$work/shards"
expect_error "$accepted" "$rrt" serve-bench "$work/missing.h5" --random-prompts
echo "any_source: OK"
