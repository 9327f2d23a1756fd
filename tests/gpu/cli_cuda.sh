#!/usr/bin/env bash
# rrt generate and rrt serve-bench with --device cuda on a real early-exit checkpoint, against
# --device cpu on the same machine: the GPU engine through the command line (checkpoint loading,
# the engine factory, every scheduler), run by tests/gpu/run.sh when the bundle holds rrt and a
# checkpoint (tools/bundle_cuda_build.sh puts the demo's early-exit model there).
#   tests/gpu/cli_cuda.sh RRT_BINARY CHECKPOINT LOG_DIR [DATA_DIR]
# serve-bench runs docs/benchmarks.md's CPU workload for the demo's model (48 requests, prompts of
# 8-32 tokens from DATA_DIR's validation split, or random ids without it, outputs of 32-128, max
# batch 8; 5 repeats instead of 15) on the GPU, so its table sits beside the CPU one.
# Prints one RESULT line (the summary shows it) and exits 1 if a command failed or the GPU's
# greedy full-depth tokens follow the CPU's for less than 75% of the positions (counted up to each
# prompt's first difference: bf16 may flip a near-tie, and greedy decoding then diverges).
set -uo pipefail
rrt=$1
ckpt=$2
logs=$3
data=${4:-}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() {
  echo "RESULT cli_cuda \"generate / serve-bench --device cuda\" FAILED: $*"
  exit 1
}
printf '%s\n' "The program" "A hacker is" "Once upon a time" "In the beginning" \
  "The computer said" "An error" "When the system" "Every user" >"$work/prompts.txt"
for dev in cpu cuda; do
  "$rrt" generate "$ckpt" --prompts "$work/prompts.txt" --max-new-tokens 48 --max-batch 8 \
    --json --device "$dev" >"$work/gen.$dev.json" \
    2>"$logs/generate.$dev.log" || fail "rrt generate --device $dev (see generate.$dev.log)"
done
agreement=$(python3 - "$work/gen.cpu.json" "$work/gen.cuda.json" <<'PY'
import json, sys
cpu = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
gpu = [json.loads(l) for l in open(sys.argv[2]) if l.strip()]
same = total = identical = 0
for c, g in zip(cpu, gpu):
    total += len(c["tokens"])
    prefix = 0
    while prefix < min(len(c["tokens"]), len(g["tokens"])) and c["tokens"][prefix] == g["tokens"][prefix]:
        prefix += 1
    same += prefix
    identical += c["tokens"] == g["tokens"]
print(same, total, identical)
PY
) || fail "comparing the outputs"
read -r same total identical <<<"$agreement"
echo "generate, full depth: $same of $total tokens as on the CPU before a first difference" \
  "($identical of 8 prompts identical)"
prompts=(--random-prompts)
[[ -n $data ]] && prompts=(--data "$data")
"$rrt" serve-bench "$ckpt" --device cuda "${prompts[@]}" --requests 48 --prompt-len 8-32 \
  --output-len 32-128 --max-batch 8 --repeats 5 --exits none,oracle,confidence:0.5,confidence:0.3 \
  >"$logs/serve_cli_cuda.md" 2>"$logs/serve_cli_cuda.log" ||
  fail "rrt serve-bench --device cuda (see serve_cli_cuda.log)"
echo "--- rrt serve-bench --device cuda"
cat "$logs/serve_cli_cuda.md"
((total > 0 && same * 4 >= total * 3)) ||
  fail "the GPU's tokens follow the CPU's for only $same of $total positions"
echo "RESULT cli_cuda \"generate / serve-bench --device cuda\" tokens_as_cpu=$same/$total" \
  "identical_prompts=$identical/8 serve=ok"
