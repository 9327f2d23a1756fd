#!/usr/bin/env bash
# rrt convert --score: the original and the converted model scored on the same tokens. A tiny
# plain model is trained here (4 layers, byte tokens), then converted twice:
#   - K = 2, average init, SVD LoRA rank 4: the printed and the JSON numbers (original, and the
#     converted model per exit) equal what rrt eval computes on the same data, for both models;
#     the parameter fraction is the converted count over the original's;
#   - full rank with per-loop norms: the conversion is exact, so the converted final exit scores
#     the original's perplexity.
# And --score on text: tokenised into FILE.score_shards with the model's tokenizer, the same
# numbers as on the shards prepared from that text.
# Usage: convert_score.sh RRT_BINARY SOURCE_DIR
set -euo pipefail
source "$(dirname "$0")/cli_lib.sh"  # rrt, src, work, fail, expect_error, make_hf_llama_300

mkdir -p "$work/text"
for i in 1 2 3; do
  for j in $(seq 1 80); do echo "Text $i, line $j: a block that loops over itself, $((i * j))."; done \
    >"$work/text/doc$i.txt"
done
"$rrt" prepare --quiet --out "$work/shards" "$work/text" >/dev/null || fail prepare
# Trained in bf16 where the CPU has it: the converted config then says bf16, and the rrt eval
# command that --score prints must add train.precision=fp32 to score as it did.
precision=fp32
"$rrt" --version | grep -q "^bf16: unavailable" || precision=bf16
"$rrt" train "$src/configs/tiny.yaml" train.precision=$precision data.path="$work/shards" train.run_dir="$work/plain" \
  recursion.loops=1 lora.rank=0 model.d_model=32 model.n_heads=2 model.n_kv_heads=1 model.ffn=64 \
  train.steps=6 train.micro_batch=2 train.seq_len=32 train.eval_every=6 train.eval_batches=1 \
  checkpoint.every=6 log.every=6 optim.warmup_steps=1 optim.lr=3e-3 >"$work/train" 2>&1 \
  || { cat "$work/train"; fail "train the plain model"; }
plain="$work/plain/step_00000006.h5"
score=(--score-batches 2 --score-seq-len 32 --score-micro-batch 2 --score-val-fraction 0.5)
eval_args=(--batches 2 train.seq_len=32 train.micro_batch=2 data.val_fraction=0.5)

# 1. A lossy conversion: every number as rrt eval computes it.
"$rrt" convert --from "$plain" --loops 2 --init average --lora-rank 4 --out "$work/r4.h5" \
  --score "$work/shards" "${score[@]}" >"$work/r4.out" 2>"$work/r4.err" \
  || { cat "$work/r4.out" "$work/r4.err"; fail "convert --score"; }
tail -1 "$work/r4.out" | grep -q "^wrote .*r4.h5 (" || fail "the last line is not 'wrote ...': $(tail -1 "$work/r4.out")"
grep -q "^convert: scored both models in" "$work/r4.err" || fail "no scoring stage line on stderr"
grep -q "expected, not a bug" "$work/r4.out" || fail "no sentence on what to expect: $(cat "$work/r4.out")"
command="$(grep -o "rrt eval $work/r4.h5 --data $work/shards --batches 2 train.seq_len=32.*" \
  "$work/r4.out")" || fail "no rrt eval command: $(cat "$work/r4.out")"
if [[ $precision == bf16 ]]; then
  [[ "$command" == *" train.precision=fp32" ]] || fail "the command does not ask for fp32: $command"
fi
[[ -f "$work/r4.score.json" ]] || fail "no r4.score.json"
# The printed command, as printed (its rrt is this binary).
read -r -a words <<<"${command#rrt }"
"$rrt" "${words[0]}" --json "${words[@]:1}" >"$work/r4.eval.json" || fail "eval of the converted model"
"$rrt" eval --json "$plain" --data "$work/shards" "${eval_args[@]}" train.precision=fp32 \
  >"$work/plain.eval.json" || fail "eval of the original"
python3 - "$work/r4.score.json" "$work/r4.eval.json" "$work/plain.eval.json" "$work/r4.out" <<'PY' \
  || fail "convert --score and rrt eval disagree"
import json, re, sys
score, conv, orig = (json.load(open(p)) for p in sys.argv[1:4])
text = open(sys.argv[4]).read()
assert score["tokens"] == conv["tokens"] == orig["tokens"] == 2 * 2 * 32, (score, conv, orig)
# The same evaluator on the same tokens and the same fp32 weights: equal to the last bit that
# JSON keeps (both go through the same double).
assert score["original"]["loss"] == orig["loss"], (score["original"], orig["loss"])
assert score["original"]["perplexity"] == orig["perplexity"]
assert len(score["converted"]["exits"]) == len(conv["exits"]) == 2, (score, conv)
for s, e in zip(score["converted"]["exits"], conv["exits"]):
    assert s["loop"] == e["loop"] and s["loss"] == e["loss"] and s["perplexity"] == e["perplexity"], (s, e)
# A lossy conversion scores worse than the original at the final exit.
assert conv["loss"] > orig["loss"], (conv["loss"], orig["loss"])
c = score["converted"]
assert abs(c["parameter_fraction"] - c["parameters"] / score["original"]["parameters"]) < 1e-12
assert c["loops"] == 2 and c["block_layers"] == 2 and score["original"]["layers"] == 4, score
# The printed lines carry the same numbers.
m = re.search(r"original: 4 layers, .* perplexity ([0-9.e+]+) \(loss ([0-9.]+)\)", text)
assert m and abs(float(m.group(2)) - orig["loss"]) < 1e-4, text
for e in conv["exits"]:
    m = re.search(rf"exit {e['loop']}( \(final\))?, {2 * e['loop']} layers: perplexity ([0-9.e+]+) "
                  r"\(loss ([0-9.]+)\)", text)
    assert m and abs(float(m.group(3)) - e["loss"]) < 1e-4, (e, text)
m = re.search(r"M parameters \(([0-9.]+)% of the original's\)", text)
assert m and abs(float(m.group(1)) - 100 * c["parameter_fraction"]) < 0.051, text
PY

# 2. Full rank with per-loop norms is exact: the converted final exit scores the original.
"$rrt" convert --from "$plain" --loops 2 --init average --lora-rank full --per-loop-norms \
  --out "$work/full.h5" --score "$work/shards" "${score[@]}" >"$work/full.out" 2>&1 \
  || { cat "$work/full.out"; fail "convert --score at full rank"; }
python3 - "$work/full.score.json" <<'PY' || fail "full-rank conversion does not score as the original"
import json, sys
s = json.load(open(sys.argv[1]))
orig, final = s["original"]["loss"], s["converted"]["exits"][-1]["loss"]
# fp32 rounding of W_b + B A against W_l: 1e-5 relative (tests/model/test_convert.cpp's logits
# tolerance is of the same order).
assert abs(final - orig) <= 1e-5 * orig, (final, orig)
assert s["converted"]["parameter_fraction"] > 1, s  # full-rank LoRA is larger than the original
PY

# 3. Text: tokenised with the model's tokenizer (byte here) into FILE.score_shards.
"$rrt" convert --from "$plain" --loops 2 --init average --lora-rank 4 --out "$work/t.h5" \
  --score "$work/text" "${score[@]}" >"$work/t.out" 2>&1 || { cat "$work/t.out"; fail "convert --score TEXT"; }
[[ -f "$work/t.score_shards/manifest.json" ]] || fail "no t.score_shards"
grep -q "^score: tokenised $work/text into $work/t.score_shards" "$work/t.out" || fail "no tokenised line"
python3 - "$work/t.score.json" "$work/r4.score.json" <<'PY' || fail "--score on text differs from on its shards"
import json, sys
t, r = (json.load(open(p)) for p in sys.argv[1:3])
assert t["original"] == r["original"] and t["converted"] == r["converted"], (t, r)
PY
# A rerun reuses the tokenised text.
"$rrt" convert --from "$plain" --loops 2 --init average --lora-rank 4 --out "$work/t.h5" \
  --score "$work/text" "${score[@]}" >"$work/t2.out" 2>&1 || fail "convert --score TEXT again"
! grep -q "^score: tokenised" "$work/t2.out" || fail "the rerun tokenised the text again"
echo "convert --score: all good"
