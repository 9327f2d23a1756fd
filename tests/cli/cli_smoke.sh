#!/usr/bin/env bash
# End-to-end through the real `rrt` binary: prepare -> config show -> train -> resume -> eval,
# plus the bad-input paths a user meets first. Usage: cli_smoke.sh RRT_BINARY SOURCE_DIR
set -euo pipefail
source "$(dirname "$0")/cli_lib.sh"  # rrt, src, work, fail, expect_error, make_hf_llama_300

"$rrt" --help | grep -q "train" || fail "rrt --help lists no train"
for cmd in train eval prepare config demo; do
  "$rrt" "$cmd" --help >/dev/null || fail "rrt $cmd --help"
done

mkdir -p "$work/text"
for i in 1 2 3; do
  for j in $(seq 1 60); do echo "Text $i, line $j: a block that loops over itself."; done > "$work/text/doc$i.txt"
done
"$rrt" prepare --quiet --out "$work/shards" "$work/text" | grep -q "3 documents" || fail prepare

cfg="$src/configs/tiny.yaml"
common=(data.path="$work/shards" train.run_dir="$work/run" train.steps=6 train.micro_batch=2
        train.seq_len=32 train.eval_every=3 train.eval_batches=2 checkpoint.every=3 log.every=3
        optim.warmup_steps=2)
"$rrt" config show "$cfg" "${common[@]}" | grep -q "steps: 6" || fail "config show"
expect_error "did you mean" "$rrt" config show "$cfg" optim.lerning_rate=1
expect_error "expected" "$rrt" config show "$cfg" optim.lr=fast
expect_error "recursion.loops" "$rrt" config show "$cfg" recursion.loops=3

"$rrt" train "$cfg" "${common[@]}" train.steps=3 >"$work/train1" || fail "train (first half)"
[[ -f "$work/run/step_00000003.h5" ]] || fail "no checkpoint at step 3"
# Lengthening a cosine schedule changes every later learning rate: refused unless allowed.
expect_error "train.steps: 3 in the checkpoint, 6 now" "$rrt" train "$cfg" "${common[@]}"
"$rrt" train "$cfg" "${common[@]}" checkpoint.allow_config_change=train.steps >"$work/train2" ||
  fail "train (resume)"
grep -q "resuming from" "$work/train2" || fail "the second train did not resume"
[[ -f "$work/run/config.yaml" && -f "$work/run/metrics.jsonl" ]] || fail "run directory incomplete"
# One TensorBoard event file per invocation; --profile writes a Chrome trace of the steps.
[[ $(ls "$work/run"/events.out.tfevents.* | wc -l) -eq 2 ]] || fail "not one event file per train"
"$rrt" train "$cfg" "${common[@]}" train.run_dir="$work/prof" --profile=2 >"$work/prof.log" \
  || fail "train --profile"
python3 -c 'import json, sys
d = json.load(open(sys.argv[1]))
steps = [e["args"]["step"] for e in d["traceEvents"] if e.get("name") == "step"]
assert steps == [2, 3], steps' "$work/prof/profile_rank0.json" || fail "no profile of steps 2..3"
# The memory check, against a fake 64 MiB cgroup (RRT_MEMORY_ROOT), and a bounded count.
mkdir -p "$work/fake/proc/self" "$work/fake/sys/fs/cgroup/job"
echo "0::/job" >"$work/fake/proc/self/cgroup"
echo "MemAvailable: 1048576 kB" >"$work/fake/proc/meminfo"
echo $((64 << 20)) >"$work/fake/sys/fs/cgroup/job/memory.max"
echo 0 >"$work/fake/sys/fs/cgroup/job/memory.current"
RRT_MEMORY_ROOT="$work/fake" expect_error "free in cgroup" "$rrt" train "$cfg" "${common[@]}" \
  train.run_dir="$work/mem" train.micro_batch=1024
expect_error "train.eval_batches" "$rrt" train "$cfg" "${common[@]}" train.eval_batches=1e9
"$rrt" eval --json "$work/run/step_00000006.h5" | grep -q '"perplexity"' || fail eval
# Every validation sequence once, with the run config adjusted: 1 x 16-token micro-batches.
"$rrt" eval --all "$work/run/step_00000006.h5" train.micro_batch=1 train.seq_len=16 \
  data.val_fraction=0.5 | grep -q "validation loss" || fail "eval --all with overrides"
expect_error "train.micro_batch" "$rrt" eval --all "$work/run/step_00000006.h5" train.micro_batch=100000
# Per exit, the exit rules, a multiple-choice task and the plots (docs/evaluation.md).
"$rrt" eval --json "$work/run/step_00000006.h5" --thresholds 0.5,0.9 --plot "$work/plots" \
  --choices "$src/tests/fixtures/multiple_choice/sample.jsonl" >"$work/eval.json" 2>/dev/null || fail "eval per exit"
for key in '"exits"' '"oracle"' '"confidence"' '"choices"' '"acc_norm"' '"threshold":0.9'; do
  grep -qF "$key" "$work/eval.json" || fail "eval --json lacks $key"
done
[[ -s "$work/plots/exits.png" && -s "$work/plots/confidence.png" ]] || fail "eval --plot"
# Reports compared on one figure (rrt plot-exits), read back from the JSON eval wrote.
"$rrt" eval --json "$work/run/step_00000003.h5" --thresholds 0.5,0.9 >"$work/eval3.json" 2>/dev/null \
  || fail "eval of step 3"
"$rrt" plot-exits "$work/eval3.json" "$work/eval.json" --labels "step 3,step 6" \
  --out "$work/exits_compared.png" | grep -q "wrote .*exits_compared.png (2 reports)" || fail plot-exits
[[ -s "$work/exits_compared.png" ]] || fail "plot-exits wrote no PNG"
"$rrt" eval --json "$work/run/step_00000003.h5" --batches 1 >"$work/eval_short.json" 2>/dev/null \
  || fail "eval of one batch"
"$rrt" plot-exits "$work/eval_short.json" "$work/eval.json" --out "$work/mixed.png" 2>&1 >/dev/null \
  | grep -q "scored .* tokens, eval_short" || fail "plot-exits said nothing of different token counts"
expect_error "is not valid JSON" "$rrt" plot-exits "$cfg" --out "$work/x.png"
echo '{"checkpoint": "x.h5", "loops": 2, "exits": []}' >"$work/broken.json"
expect_error "tokens" "$rrt" plot-exits "$work/broken.json" --out "$work/x.png"
[[ ! -e "$work/x.png" ]] || fail "plot-exits wrote a PNG of a bad report"
"$rrt" eval --no-validation --choices "$src/tests/fixtures/multiple_choice/sample.jsonl" \
  "$work/run/step_00000006.h5" | grep -q "acc_norm" || fail "eval --choices alone"
expect_error "nothing to evaluate" "$rrt" eval --no-validation "$work/run/step_00000006.h5"

# HF checkpoint -> relaxed model -> a few training steps from it -> eval.
"$rrt" convert --from "$src/tests/fixtures/hf_llama_mqa_tied_bf16" --loops 3 --init average \
  --lora-rank 4 --out "$work/conv/init.h5" >/dev/null || fail convert
[[ -f "$work/conv/init.yaml" ]] || fail "convert wrote no init.yaml"
# Each stage's seconds on stderr; stdout keeps its lines (scripts read "wrote ... in").
"$rrt" convert --from "$src/tests/fixtures/hf_llama_mqa_tied_bf16" --loops 3 --lora-rank 4 \
  --out "$work/conv_progress.h5" >"$work/conv_progress.out" 2>"$work/conv_progress.err" \
  || fail "convert (progress)"
for stage in "read the source in" "converted in" "wrote the checkpoint in"; do
  grep -q "^convert: $stage [0-9.]* s$" "$work/conv_progress.err" || fail "convert: no '$stage' line"
done
grep -q "^wrote .*conv_progress.h5 (" "$work/conv_progress.out" || fail "convert's stdout changed"
! grep -q "^convert:" "$work/conv_progress.out" || fail "convert progress went to stdout"
# Per block layer and per position's SVDs with RRT_PROGRESS_SECONDS=0 (3 layers, K = 3: one
# block layer, then 3 positions), in order, on stderr only.
RRT_PROGRESS_SECONDS=0 "$rrt" convert --from "$src/tests/fixtures/hf_llama_mqa_tied_bf16" \
  --loops 3 --lora-rank 4 --out "$work/conv_layers.h5" >"$work/conv_layers.out" \
  2>"$work/conv_layers.err" || fail "convert (per-layer progress)"
grep -q "^convert: 1/4 (block layer 0 from layer 0), .* s, ETA " "$work/conv_layers.err" \
  || fail "convert: no block-layer progress line: $(cat "$work/conv_layers.err")"
for l in 0 1 2; do
  grep -q "^convert: $((l + 2))/4 (LoRA SVD of layer $l: block layer 0, loop $((l + 1))), " \
    "$work/conv_layers.err" || fail "convert: no progress line for the SVD of layer $l"
done
[[ "$(grep -c '^convert: [0-9]*/4 ' "$work/conv_layers.err")" == 4 ]] || fail "convert: not 4 progress lines"
! grep -q "/4 (" "$work/conv_layers.out" || fail "convert progress went to stdout"
"$rrt" train "$work/conv/init.yaml" data.path="$work/shards" train.run_dir="$work/conv/run" \
  train.steps=2 train.micro_batch=2 train.seq_len=8 train.eval_batches=1 >/dev/null || fail "train from convert"
"$rrt" eval "$work/conv/run/step_00000002.h5" | grep -q "validation loss" || fail "eval of converted"
"$rrt" export "$work/conv/run/step_00000002.h5" --out "$work/exported" >/dev/null || fail export
[[ -f "$work/exported/config.json" && -f "$work/exported/model.safetensors" ]] || fail "export files"
expect_error "--force" "$rrt" export "$work/conv/run/step_00000002.h5" --out "$work/exported"
expect_error "must divide" "$rrt" convert --from "$src/tests/fixtures/hf_llama_gqa" --loops 3 --out "$work/x.h5"
expect_error "expected a rank" "$rrt" convert --from "$src/tests/fixtures/hf_llama_gqa" --loops 2 \
  --lora-rank lots --out "$work/x.h5"
# Full rank with per-loop norms, and the tokenizer files beside the source travel to the export
# (convert records tokenizer.model as data.tokenizer; its content is not read on this path).
mkdir -p "$work/hf_tok"
cp "$src/tests/fixtures/hf_llama_gqa/config.json" "$src/tests/fixtures/hf_llama_gqa/model.safetensors" "$work/hf_tok/"
echo "stand-in sentencepiece model" >"$work/hf_tok/tokenizer.model"
echo '{"model_max_length": 64}' >"$work/hf_tok/tokenizer_config.json"
"$rrt" convert --from "$work/hf_tok" --loops 2 --lora-rank full --per-loop-norms \
  --out "$work/full/init.h5" >"$work/conv_full" || fail "convert --lora-rank full"
grep -q "LoRA rank 32/32" "$work/conv_full" || fail "full rank is not 32: $(cat "$work/conv_full")"
"$rrt" export "$work/full/init.h5" --out "$work/full_hf" >"$work/export_full" || fail "export full"
cmp -s "$work/hf_tok/tokenizer.model" "$work/full_hf/tokenizer.model" || fail "tokenizer.model not copied"
[[ -f "$work/full_hf/tokenizer_config.json" ]] || fail "tokenizer_config.json not copied"
# A GGUF file converts like an HF directory; its tokenizer stays inside it on export.
"$rrt" convert --from "$src/tests/fixtures/gguf/llama_untied.gguf" --loops 2 --lora-rank 2 \
  --out "$work/gguf/init.h5" >"$work/conv_gguf" || fail "convert --from .gguf"
grep -q "tokenizer: .*llama_untied.gguf" "$work/gguf/init.yaml" || fail "GGUF tokenizer not recorded"
"$rrt" export "$work/gguf/init.h5" --out "$work/gguf_hf" | grep -q "tokenizer not copied" \
  || fail "export of a GGUF-converted model"
# A SentencePiece GGUF vocabulary (Gemma's) is read at convert time and recorded.
"$rrt" convert --from "$src/tests/fixtures/gguf/gemma_tied.gguf" --loops 1 --lora-rank 0 \
  --out "$work/gguf_spm/init.h5" >"$work/conv_gguf_spm" || fail "convert --from a Gemma .gguf"
grep -q "tokenizer: .*gemma_tied.gguf (40 tokens, EOS 1)" "$work/conv_gguf_spm" \
  || fail "Gemma GGUF tokenizer not read: $(cat "$work/conv_gguf_spm")"
grep -q "tokenizer: .*gemma_tied.gguf" "$work/gguf_spm/init.yaml" || fail "Gemma GGUF tokenizer not recorded"
# ... and its SentencePiece vocabulary is written out as tokenizer.json on an HF export.
"$rrt" export "$work/gguf_spm/init.h5" --out "$work/gguf_spm_hf" >"$work/export_gguf_spm" \
  || fail "export of a Gemma-GGUF-converted model"
grep -q "wrote $work/gguf_spm_hf/tokenizer.json" "$work/export_gguf_spm" \
  || fail "no tokenizer.json from a SentencePiece GGUF: $(cat "$work/export_gguf_spm")"
[[ -f "$work/gguf_spm_hf/tokenizer_config.json" ]] || fail "no tokenizer_config.json from a SentencePiece GGUF"
# ... and exports back to GGUF (bf16) with its tokenizer keys, which convert reads again.
"$rrt" export "$work/gguf/init.h5" --out "$work/back.gguf" --format gguf --dtype bf16 >/dev/null \
  || fail "export --format gguf"
"$rrt" convert --from "$work/back.gguf" --loops 1 --out "$work/back/init.h5" >/dev/null \
  || fail "convert of rrt's own GGUF export"
expect_error "exists" "$rrt" export "$work/gguf/init.h5" --out "$work/back.gguf" --format gguf

# An rrt checkpoint of a plain model converts too; its data and training settings carry over,
# its run directory does not; a looped checkpoint is refused.
"$rrt" train "$cfg" "${common[@]}" recursion.loops=1 lora.rank=0 train.steps=2 \
  train.run_dir="$work/plain" >/dev/null || fail "train plain"
"$rrt" convert --from "$work/plain/step_00000002.h5" --loops 2 --init average --lora-rank 2 \
  --out "$work/from_rrt/init.h5" >/dev/null || fail "convert --from an rrt checkpoint"
grep -q "path: $work/shards" "$work/from_rrt/init.yaml" || fail "convert dropped data.path"
grep -q "run_dir: runs/default" "$work/from_rrt/init.yaml" || fail "convert kept the run_dir"
"$rrt" eval "$work/from_rrt/init.h5" | grep -q "validation loss" || fail "eval of rrt-converted"
expect_error "plain" "$rrt" convert --from "$work/run/step_00000006.h5" --loops 2 --out "$work/x.h5"

echo "garbage" > "$work/bad.h5"
expect_error "not an HDF5 file" "$rrt" eval "$work/bad.h5"
expect_error "shard" "$rrt" train "$cfg" "${common[@]}" data.path="$work/nowhere" train.run_dir="$work/run2"
echo "cli smoke: all good"
