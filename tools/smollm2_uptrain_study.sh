#!/usr/bin/env bash
# The SmolLM2-135M uptraining study (issue 22; docs/results.md): SmolLM2-135M-Instruct converted
# into recursive and relaxed models, uptrained on English documentation text from Debian
# (tools/make_study_corpus.py) with distillation from the original, the same tokens for every
# arm (configs/sweeps/smollm2/arms.yaml), then arm 2 post-trained with early exits.
#
# Usage: tools/smollm2_uptrain_study.sh [--background | --stop | --status] [OUT_DIR]
#                                                        (default runs/smollm2_uptrain_study)
#   --background  run detached (nohup, its own process group); output in OUT_DIR/study.log
#   --stop        SIGTERM to a background study: the run in training finishes its step and
#                 writes a checkpoint, nothing further starts; rerun to continue. Waits for it
#                 to end, then copies the stopped arm's training log into the record
#   --status      where it stands: the stages done, each sweep's runs, the evaluations so far
#                 (a resumed study first evaluates the arms' points already written)
# Environment:
#   RRT=build/rrt (unset and not built yet: built into build/ beside the corpus)
#   TOKENS_PER_ARM=2000000 (rounded to whole quarters of steps of 2,048 tokens)
#   STEPS (overrides TOKENS_PER_ARM)   LR_STEPS (default STEPS / 5)
#   LR (skip the lr sweep; remembered in lr/given.txt and the record for later invocations)
#   POST_STEPS (early-exit post-training, default STEPS / 4)   POST_LR (default LR / 2)
#   EVAL_BATCHES=16  EVAL_MICRO_BATCH=8  EVAL_SEQ=256 (32,768 tokens per evaluation)
#   EVAL_PRECISION=bf16
#   CORPUS_DIR (an existing make_study_corpus.py output)   CORPUS_CACHE (its .deb cache)
#   CORPUS_PACKAGES ("a b c": only these packages, for a quick try)
#   SWEEP_ARGS (extra key=value for every run, e.g. train.threads=2)
#   SERVE_REQUESTS=32  SERVE_ARGS (more rrt serve-bench flags)
#   ARMS ("vanilla relaxed_svd_ce": train only these arms now, e.g. what fits in the hours a
#        machine has; the default is every arm not yet in the record)
#   RECORD_DIR (default docs/results/smollm2_uptrain; empty: none): the record, below
# A quick end-to-end try (minutes, not hours): STEPS=4 LR_STEPS=4 POST_STEPS=4 EVAL_BATCHES=1
#   EVAL_MICRO_BATCH=1 EVAL_SEQ=32 SWEEP_ARGS="train.micro_batch=1 train.seq_len=32"
#   SERVE_REQUESTS=2 SERVE_ARGS="--prompt-len 4 --output-len 4 --repeats 1"
#   CORPUS_PACKAGES="python3.11-doc debian-reference-en" RECORD_DIR=  (a record of its own, or
#   none: the default record refuses a study of other settings)
#
# Resumable: every stage leaves a file that says it is done (the corpus's manifest.json, the
# shards' manifest.json, init/*.h5, each run's final checkpoint, evals/*.json), and rrt sweep
# resumes an interrupted run from its newest checkpoint and skips finished ones. Stop it with
# --stop (or SIGTERM to the script's process group) and run the same command again.
#
# The record (RECORD_DIR, committed with the repository): the study's small results, which must
# outlive the machine (a checkpoint of arm 2 is 1 GB; a machine that is lent for a few hours
# and then replaced keeps none): every evaluation, the learning rate, each finished arm's
# metrics.jsonl, the tables and the figures. A study started on a new machine restores them,
# skips every arm whose ten evaluations are recorded, and retrains only what is not (arm 2
# again if its post-training is not recorded: that needs its checkpoint).
#
# Stages, in OUT_DIR:
#   model/       the GGUF (tools/fetch_smollm2.sh)
#   corpus/      train.jsonl, heldout.jsonl, manifest.json (tools/make_study_corpus.py)
#   data/        train_shards, heldout_shards (in-domain, never trained on), ood_shards (Debian
#                fortunes, tools/make_heldout_text.py: the conversion study's held-out text)
#   init/        the starting weights: original, recursive (K = 3 stepwise), relaxed_svd and
#                relaxed_zero (K = 3 average, LoRA r = 64), vanilla (the first 15 layers),
#                relaxed_svd_stepwise (K = 3 stepwise, SVD LoRA r = 64: arm 7),
#                relaxed_zero_stepwise (K = 3 stepwise, zero LoRA r = 64: arm 8);
#                relaxed_svd.score.json: rrt convert --score of the conversion
#   lr/          the learning-rate sweep on arm 2 (lr.txt: the choice)
#   arms/        the six arms and arms 7, 8 (rrt sweep; summary.md, loss.png)
#   early_exit/  arm 2 post-trained: control, aggressive(0.1) + SD, uniform + SD
#   evals/       rrt eval --json of every checkpoint scored, in-domain and out-of-domain
#   results.md, results.jsonl, loss_curves.png: tools/smollm2_uptrain_summary.py; the post-trained
#                models' trade-offs: evals/post_*.plots/confidence.png, one figure of the three
#                evals/post_tradeoff.png (rrt plot-exits); all in the record too
set -euo pipefail
# The whole script is one block, read before any of it runs: bash reads a script as it goes, so
# a study running for days would otherwise execute whatever an edit or a `git pull` moved to the
# offset it had reached (it happened: "optim.warmup_steps=9: command not found").
{
here="$(cd "$(dirname "$0")/.." && pwd)"
mode=""
case "${1:-}" in --background | --stop | --status) mode="$1"; shift ;; esac
out="${1:-runs/smollm2_uptrain_study}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"

if [[ "$mode" == "--background" ]]; then
  RRT_STUDY_DETACHED=1 nohup setsid "$0" "$out" >>"$out/study.log" 2>&1 </dev/null &
  echo "study running in the background (pid $!); log: $out/study.log; stop: $0 --stop $out"
  exit 0
fi
if [[ "$mode" == "--stop" ]]; then
  [[ -f "$out/study.pid" ]] || { echo "no study.pid in $out: nothing to stop" >&2; exit 1; }
  pid="$(cat "$out/study.pid")"
  kill -0 "$pid" 2>/dev/null || { echo "the study (pid $pid) is not running" >&2; exit 1; }
  # The script's process group: bash and rrt sweep, which passes the signal on once to the run
  # in training (its own group); that run checkpoints after its step and exits 3.
  kill -TERM -- "-$(ps -o pgid= "$pid" | tr -d ' ')"
  echo "sent SIGTERM to the study (pid $pid); it stops after the current step's checkpoint"
  # Waits for every process of it (they hold study.lock; the run in training checkpoints its
  # step first, seconds), then records below what the stopped arm logged: a machine replaced
  # before the next run would keep nothing of it.
  flock -w 600 "$out/study.lock" true ||
    { echo "the study still holds $out/study.lock after 600 s" >&2; exit 1; }
fi

export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}"
rrt="${RRT:-$here/build/rrt}"
[[ "$rrt" == /* ]] || rrt="$here/$rrt"
sweeps="$here/configs/sweeps/smollm2"
tokens_per_step=$((8 * 256))  # train.micro_batch x train.seq_len of base.yaml
if [[ -n "${STEPS:-}" ]]; then
  steps="$STEPS"
else
  steps=$(( (${TOKENS_PER_ARM:-2000000} + 4 * tokens_per_step - 1) / (4 * tokens_per_step) * 4 ))
fi
(( steps % 4 == 0 )) || { echo "STEPS must be a multiple of 4 (the 25/50/75/100% points)" >&2; exit 2; }
quarter=$((steps / 4))
lr_steps="${LR_STEPS:-$(( steps / 5 > 4 ? steps / 5 : 4 ))}"
post_steps="${POST_STEPS:-$(( quarter > 4 ? quarter : 4 ))}"
eval_batches="${EVAL_BATCHES:-16}"
eval_n="${EVAL_MICRO_BATCH:-8}"
eval_t="${EVAL_SEQ:-256}"
eval_precision="${EVAL_PRECISION:-bf16}"
read -r -a extra <<<"${SWEEP_ARGS:-}"
record="${RECORD_DIR-$here/docs/results/smollm2_uptrain}"
[[ -z "$record" || "$record" == /* ]] || record="$here/$record"
all_arms=(recursive relaxed_svd relaxed_zero vanilla relaxed_svd_ce original relaxed_svd_stepwise
  relaxed_zero_stepwise)
cd "$out"
log() { echo "[$(date '+%F %T')] $*"; }
# to_record FILE...: copies study files (paths relative to the study) into the record.
to_record() {
  [[ -n "$record" ]] || return 0
  local f
  for f in "$@"; do
    mkdir -p "$record/$(dirname "$f")"
    cp "$f" "$record/$f.part" && mv "$record/$f.part" "$record/$f"
  done
}
# recorded ARM: its ten evaluations (0-100%, both sets) and its metrics are in the study.
recorded() {
  local p set
  for p in 000 025 050 075 100; do
    for set in in ood; do [[ -f "evals/$1_$p.$set.json" ]] || return 1; done
  done
  [[ -f "arms/$1/metrics.jsonl" || -f "$record/arms/$1/metrics.jsonl" ]]
}
step_file() { printf "%s/step_%08d.h5" "$1" "$2"; }
# record_partial_metrics: the training log of every arm this machine started and has not
# finished, into the record, unless the record holds that arm finished or a longer log of it.
# A stopped arm resumes only on the machine that has its checkpoints; its logged losses are what
# outlives a replaced machine (the summary pairs them with the other arms' step by step). A
# finished arm's log is recorded at stage 6 and replaces a partial one.
record_partial_metrics() {
  [[ -n "$record" ]] || return 0
  local arm f
  for arm in "${all_arms[@]}"; do
    f="arms/$arm/metrics.jsonl"
    [[ -f "$f" && ! -f "$(step_file "arms/$arm" "$steps")" ]] || continue
    recorded "$arm" && continue  # a rerun of a recorded arm (arm 2 for its post-training)
    [[ -f "$record/$f" && $(wc -l <"$record/$f") -ge $(wc -l <"$f") ]] && continue
    to_record "$f"
    log "recorded the training log of the unfinished arm $arm ($(wc -l <"$f") lines)"
  done
}
if [[ "$mode" == "--stop" ]]; then
  record_partial_metrics
  exit 0
fi

if [[ "$mode" == "--status" ]]; then
  [[ -n "$record" ]] && echo "record    $record ($(find "$record" -name '*.json' 2>/dev/null | wc -l) files)"
  for f in corpus/manifest.json data/train_shards/manifest.json data/heldout_shards/manifest.json \
      data/ood_shards/manifest.json init/original.h5 init/recursive.h5 init/relaxed_svd.h5 \
      init/relaxed_zero.h5 init/vanilla.h5 init/relaxed_svd_stepwise.h5 \
      init/relaxed_zero_stepwise.h5 lr/lr.txt results.md; do
    [[ -e "$f" ]] && echo "done      $f" || echo "not done  $f"
  done
  for s in lr arms early_exit; do
    [[ -f "$s/sweep.json" ]] && "$rrt" sweep summary "$s" 2>/dev/null | tail -n +1
  done
  # The evaluations so far (evals/NAME.SET.json): the final exit's perplexity of each (the
  # file's first "perplexity").
  for f in evals/*.json; do
    [[ -f "$f" ]] || continue
    printf "eval      %-28s %s\n" "$(basename "$f" .json)" \
      "$(grep -o '"perplexity":[0-9.e+-]*' "$f" | head -1 | cut -d: -f2)"
  done
  exit 0
fi

# One study per directory at a time.
exec 9>"$out/study.lock"
flock -n 9 || { echo "another study runs in $out (study.lock is held)" >&2; exit 1; }
echo $$ >"$out/study.pid"
# Linux's autogroup scheduling shares the CPU between sessions first and applies nice values
# only inside a session, so a detached study (its own session, setsid above) would take a full
# share whatever `nice -n 15` said. Its session gets the script's niceness instead, so it yields
# to builds and tests as intended. Raising one's own autogroup's nice needs no privilege.
if [[ -n "${RRT_STUDY_DETACHED:-}" && -w /proc/self/autogroup ]]; then
  echo "$(nice)" >/proc/self/autogroup 2>/dev/null || true
fi
# One record, one study: its settings are written with its first results, and a study of other
# settings (a quick try, another budget) is refused rather than mixed into its tables.
if [[ -n "$record" ]]; then
  settings="steps=$steps tokens_per_step=$tokens_per_step eval=${eval_batches}x${eval_n}x${eval_t}"
  settings+=" eval_precision=$eval_precision corpus_packages=${CORPUS_PACKAGES:-all}"
  settings+=" sweep_args=${SWEEP_ARGS:-none}"
  if [[ -f "$record/settings.txt" && "$(cat "$record/settings.txt")" != "$settings" ]]; then
    echo "the record $record holds a study with other settings:" >&2
    echo "  there: $(cat "$record/settings.txt")" >&2
    echo "  here:  $settings" >&2
    echo "give this study a record of its own (RECORD_DIR=DIR) or none (RECORD_DIR=)" >&2
    exit 2
  fi
  mkdir -p "$record"
  [[ -f "$record/settings.txt" ]] || echo "$settings" >"$record/settings.txt"
fi
# What the record holds and this machine does not: the evaluations, the learning rate, the
# scores of the conversion (the arms' metrics stay in the record: restored into arms/, they
# would look like started runs to rrt sweep).
if [[ -n "$record" && -d "$record" ]]; then
  while IFS= read -r f; do
    [[ -f "$f" ]] && continue
    mkdir -p "$(dirname "$f")"
    cp "$record/$f" "$f"
    restored=$((${restored:-0} + 1))
  done < <(cd "$record" && find evals lr init -type f ! -name '*.part' 2>/dev/null)
  [[ -n "${restored:-}" ]] && log "restored $restored files from the record $record"
fi
log "study in $out: $steps steps per arm ($((steps * tokens_per_step)) tokens at base.yaml's 2,048 a step), lr sweep $lr_steps steps, post-training $post_steps steps"

# 0. rrt itself, on a machine that has not built it (RRT unset): configured and built beside the
# corpus, which does not need it (tools/setup.sh installs what the build needs).
build_pid=""
if [[ -z "${RRT:-}" && ! -x "$rrt" ]]; then
  log "building $rrt beside the corpus (log: $out/build.log)"
  (cmake -S "$here" -B "$here/build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DRRT_CUDA=OFF &&
    cmake --build "$here/build" -j "$(nproc)" --target rrt_cli) >"$out/build.log" 2>&1 &
  build_pid=$!
fi

# 1. The model.
mkdir -p model
gguf="$out/model/SmolLM2-135M-Instruct.Q4_1.gguf"
[[ -f "$gguf" ]] || ln -sf "$("$here/tools/fetch_smollm2.sh")" "$gguf"

# 2. The corpus and the held-out sets, tokenised with SmolLM2's own tokenizer.
corpus="${CORPUS_DIR:-$out/corpus}"
if [[ ! -f "$corpus/manifest.json" ]]; then
  log "corpus: Debian documentation -> $corpus"
  args=(--out "$corpus")
  [[ -n "${CORPUS_CACHE:-}" ]] && args+=(--cache "$CORPUS_CACHE")
  if [[ -n "${CORPUS_PACKAGES:-}" ]]; then
    read -r -a packages <<<"$CORPUS_PACKAGES"
    args+=(--packages "${packages[@]}")
  fi
  python3 "$here/tools/make_study_corpus.py" "${args[@]}"
fi
if [[ -n "$build_pid" ]]; then
  wait "$build_pid" || { echo "building rrt failed: see $out/build.log" >&2; exit 1; }
  log "built $rrt"
fi
prepare() {  # prepare NAME INPUT: data/NAME tokenised from INPUT, once
  [[ -f "data/$1/manifest.json" ]] && return
  rm -rf "data/$1"  # an interrupted prepare (INCOMPLETE)
  log "tokenising $2 -> data/$1"
  local t0=$SECONDS
  "$rrt" prepare --quiet --tokenizer "$gguf" --out "data/$1" "$2"
  log "data/$1 in $((SECONDS - t0)) s"
}
mkdir -p data
prepare train_shards "$corpus/train.jsonl"
prepare heldout_shards "$corpus/heldout.jsonl"
if [[ ! -f data/ood/heldout.jsonl ]]; then
  [[ -d /usr/share/games/fortunes ]] || apt-get install -y -q fortunes >/dev/null
  python3 "$here/tools/make_heldout_text.py" --out data/ood/heldout.jsonl
fi
prepare ood_shards data/ood/heldout.jsonl
to_record data/{train,heldout,ood}_shards/manifest.json
[[ "$corpus" == "$out/corpus" ]] && to_record corpus/manifest.json corpus/manifest.md

# 3. The starting weights (rrt convert writes atomically; a file present is complete).
mkdir -p init
convert() {  # convert NAME FLAGS...
  local name="$1"
  shift
  [[ -f "init/$name.h5" ]] && return
  log "converting init/$name.h5: $*"
  if [[ -f "init/$name.convert.log" ]]; then  # restored from the record: that one stays
    "$rrt" convert --from "$gguf" "$@" --out "init/$name.h5"
  else
    "$rrt" convert --from "$gguf" "$@" --out "init/$name.h5" | tee "init/$name.convert.log"
    to_record "init/$name.convert.log"
    [[ -f "init/$name.score.json" ]] && to_record "init/$name.score.json"
  fi
  return 0
}
convert original --loops 1
convert recursive --loops 3 --init stepwise --lora-rank 0
# The conversion's score (the original and arm 2's start on the same tokens, minutes in fp32)
# once: a new machine has it from the record.
score=(--score data/heldout_shards --score-batches "$eval_batches" --score-micro-batch "$eval_n"
  --score-seq-len "$eval_t")
[[ -f init/relaxed_svd.score.json ]] && score=()
convert relaxed_svd --loops 3 --init average --lora-rank 64 --lora-init svd "${score[@]}"
convert relaxed_zero --loops 3 --init average --lora-rank 64 --lora-init zero
# Vanilla: SmolLM2's first 15 layers. Converted as a block of the lower 15 layers (K = 2, no
# LoRA), whose tensors are those of a plain 15-layer model (the arm's config says so).
convert vanilla --loops 2 --init lower --lora-rank 0
# Arm 7, not one of the paper's: arm 2 from the stepwise start (docs/results.md, the bug hunt).
convert relaxed_svd_stepwise --loops 3 --init stepwise --lora-rank 64 --lora-init svd
# Arm 8, not the paper's either: arm 7 with zero LoRA, which starts as arm 1's function (the bug
# hunt: arm 7's SVD start, not the relaxation, is what trails arm 1).
convert relaxed_zero_stepwise --loops 3 --init stepwise --lora-rank 64 --lora-init zero

# The same tokens score every model: the last half of each held-out set, EVAL_BATCHES x
# EVAL_MICRO_BATCH x EVAL_SEQ tokens.
mkdir -p evals
evaluate() {  # evaluate NAME CHECKPOINT [overrides...]: evals/NAME.{in,ood}.json
  local name="$1" ckpt="$2" set
  shift 2
  for set in in ood; do
    local f="evals/$name.$set.json"
    [[ -f "$f" ]] && continue
    local data=data/heldout_shards
    [[ $set == ood ]] && data=data/ood_shards
    "$rrt" eval --json "$ckpt" --data "$data" --batches "$eval_batches" train.seq_len="$eval_t" \
      train.micro_batch="$eval_n" data.val_fraction=0.5 train.precision="$eval_precision" "$@" >"$f.part"
    mv "$f.part" "$f"
    to_record "$f"
    log "$name ($set): $(grep -o '"perplexity":[0-9.e+-]*' "$f" | head -1)"
  done
}
common=(train.eval_batches=4 "${extra[@]}")

# 4. The learning rate: a short sweep on arm 2, the lowest in-domain held-out loss wins.
# A rate given (LR) is kept in lr/given.txt (and the record), so that the next invocation, on
# this machine or a new one, goes on with it instead of sweeping.
if [[ -n "${LR:-}" ]]; then
  lr="$LR"
  if [[ ! -f lr/lr.txt && "$(cat lr/given.txt 2>/dev/null)" != "$lr" ]]; then
    mkdir -p lr
    echo "$lr" >lr/given.txt
    to_record lr/given.txt
  fi
elif [[ -f lr/lr.txt ]]; then
  lr="$(cat lr/lr.txt)"
elif [[ -f lr/given.txt ]]; then
  lr="$(cat lr/given.txt)"
  log "learning rate $lr: given to an earlier invocation (lr/given.txt)"
else
  log "learning-rate sweep: $lr_steps steps per run"
  "$rrt" sweep "$sweeps/lr.yaml" --out lr --launch local train.steps="$lr_steps" \
    train.eval_every="$lr_steps" checkpoint.every="$lr_steps" \
    optim.warmup_steps=$(( lr_steps / 20 > 1 ? lr_steps / 20 : 1 )) "${common[@]}"
  for run in lr/lr-*/; do
    run="${run%/}"
    evaluate "lr_${run#lr/}" "$(step_file "$run" "$lr_steps")"
  done
  python3 - "$lr_steps" >lr/lr.txt.part <<'PY'
import glob, json, re, sys
best = min((json.load(open(f))["loss"], f) for f in glob.glob("evals/lr_lr-*.in.json"))
print(re.search(r"lr_lr-([^/]*)\.in\.json", best[1]).group(1))
PY
  mv lr/lr.txt.part lr/lr.txt
  to_record lr/lr.txt
  lr="$(cat lr/lr.txt)"
  log "learning rate: $lr"
fi

# Every arm at 0, 25, 50, 75 and 100% of its budget, on both held-out sets: the points whose
# checkpoints this machine has (an arm in the record has its points there already).
evaluate_arms() {  # evaluate_arms ARM...
  local arm init q ckpt set
  for arm in "$@"; do
    case $arm in
      relaxed_svd_ce)
        init=init/relaxed_svd.h5
        # Arm 2's starting weights, so arm 2's start scores (the same file, bit for bit).
        for set in in ood; do
          [[ -f "evals/${arm}_000.$set.json" || ! -f "evals/relaxed_svd_000.$set.json" ]] && continue
          cp "evals/relaxed_svd_000.$set.json" "evals/${arm}_000.$set.json"
          to_record "evals/${arm}_000.$set.json"
        done
        ;;
      *) init="init/$arm.h5" ;;
    esac
    if [[ $arm == vanilla ]]; then
      evaluate "${arm}_000" "$init" model.n_layers=15 recursion.loops=1
    else
      evaluate "${arm}_000" "$init"
    fi
    for q in 1 2 3 4; do
      ckpt="$(step_file "arms/$arm" $((q * quarter)))"
      [[ -f "$ckpt" ]] || continue
      evaluate "${arm}_$(printf %03d $((q * 25)))" "$ckpt"
    done
  done
}
# Early-exit post-training (step 7) needs arm 2's final checkpoint. One run of it is recorded
# when both its evaluations and its confidence-exit plots are; all of it when the three runs
# and the serving benchmark are.
post_run_recorded() {
  [[ -f "evals/post_$1.in.json" && -f "evals/post_$1.ood.json" &&
     -f "evals/post_$1.plots/confidence.png" ]]
}
post_recorded() {
  post_run_recorded control && post_run_recorded aggressive && post_run_recorded uniform &&
    [[ -f evals/serve_bench.md ]]
}

# 5. The arms, the same tokens and budget each: those asked for (ARMS, default all) that the
# record does not hold, arm 2 also when its post-training is still to come.
read -r -a wanted <<<"${ARMS:-${all_arms[*]}}"
todo=()
for arm in "${wanted[@]}"; do
  [[ " ${all_arms[*]} " == *" $arm "* ]] ||
    { echo "ARMS: no arm '$arm' (the arms: ${all_arms[*]})" >&2; exit 2; }
  if recorded "$arm"; then
    # Recorded: done, unless it is arm 2, its post-training is still to come and this machine
    # lacks its final checkpoint.
    [[ $arm == relaxed_svd && ! -f "$(step_file arms/$arm "$steps")" ]] && ! post_recorded ||
      continue
  fi
  todo+=("$arm")
done
# Their starting points first (and the points of a stopped run), so that a stopped study
# reports what it has so far.
evaluate_arms "${todo[@]}"
record_partial_metrics
if ((${#todo[@]})); then
  log "arms: ${todo[*]}: $steps steps each at lr $lr"
  only=$(IFS=,; echo "${todo[*]}")
  "$rrt" sweep "$sweeps/arms.yaml" --out arms --launch local --only "$only" optim.lr="$lr" \
    train.steps="$steps" train.eval_every="$quarter" checkpoint.every="$quarter" \
    optim.warmup_steps=$(( steps / 20 > 1 ? steps / 20 : 1 )) "${common[@]}"
fi

# 6. Every arm at 0, 25, 50, 75 and 100% of its budget, on both held-out sets, and each finished
# arm's metrics into the record.
evaluate_arms "${all_arms[@]}"
for arm in "${all_arms[@]}"; do
  [[ -f "$(step_file "arms/$arm" "$steps")" ]] && to_record "arms/$arm/metrics.jsonl"
done
record_partial_metrics
left=()
for arm in "${all_arms[@]}"; do recorded "$arm" || left+=("$arm"); done

# 7. Early-exit post-training of arm 2, then every exit, the oracle and the confidence exits.
# One run at a time, each evaluated and recorded as soon as it finishes: a machine replaced
# during the third run keeps the first two in the record (it happened: control and aggressive
# were lost with uniform at step 150/245). A new machine trains only the runs not recorded (and
# aggressive again while the serving benchmark, which needs its checkpoint, is still to come),
# from arm 2 retrained: the same checkpoint only if that training is deterministic across
# machines, so its final point is scored again first and the study stops on any difference
# rather than mix post-training runs of two different starts.
arm2_final="$(step_file arms/relaxed_svd "$steps")"
if ! post_recorded && [[ -f "$arm2_final" ]]; then
  if compgen -G "evals/post_*.in.json" >/dev/null; then
    evaluate relaxed_svd_100_again "$arm2_final"
    for set in in ood; do
      cmp -s "evals/relaxed_svd_100.$set.json" "evals/relaxed_svd_100_again.$set.json" && continue
      echo "arm 2's final checkpoint here scores differently from the one the recorded" \
        "post-training started from (evals/relaxed_svd_100{,_again}.$set.json): move" \
        "evals/post_* out of the record and out of $out/evals to post-train all three" \
        "runs from this one" >&2
      exit 1
    done
  fi
  ln -sf "../$arm2_final" init/relaxed_svd_uptrained.h5
  post_lr="${POST_LR:-$(python3 -c "print(f'{$lr / 2:g}')")}"
  for run in control aggressive uniform; do
    ckpt="$(step_file "early_exit/$run" "$post_steps")"
    if post_run_recorded "$run"; then
      [[ $run == aggressive && ! -f evals/serve_bench.md && ! -f "$ckpt" ]] || continue
    fi
    log "early-exit post-training, $run: $post_steps steps at lr $post_lr"
    "$rrt" sweep "$sweeps/early_exit.yaml" --out early_exit --launch local --only "$run" \
      optim.lr="$post_lr" train.steps="$post_steps" train.eval_every="$post_steps" \
      checkpoint.every="$post_steps" \
      optim.warmup_steps=$(( post_steps / 20 > 1 ? post_steps / 20 : 1 )) "${common[@]}"
    evaluate "post_$run" "$ckpt"
    if [[ ! -f "evals/post_$run.plots/confidence.png" ]]; then
      "$rrt" eval "$ckpt" --data data/heldout_shards \
        --batches "$eval_batches" train.seq_len="$eval_t" train.micro_batch="$eval_n" \
        data.val_fraction=0.5 train.precision="$eval_precision" --plot "evals/post_$run.plots" \
        >/dev/null
    fi
    to_record "early_exit/$run/metrics.jsonl" evals/post_$run.plots/*.png
  done
  # The three trade-offs on one figure: the weightings compared (rrt plot-exits).
  if [[ ! -f evals/post_tradeoff.png ]]; then
    "$rrt" plot-exits evals/post_aggressive.in.json evals/post_uniform.in.json \
      evals/post_control.in.json --out evals/post_tradeoff.png \
      --labels "aggressive(0.1) + self-distillation,uniform + self-distillation,control (final exit only)" \
      --title "arm 2 post-trained with early exits: confidence exits, in-domain held-out" >/dev/null
    to_record evals/post_tradeoff.png
  fi

  # 8. Serving with confidence exits: depth-wise batching against static and sequence-wise.
  if [[ ! -f evals/serve_bench.md ]]; then
    log "serve-bench of the aggressive post-trained model"
    "$rrt" serve-bench "$(step_file early_exit/aggressive "$post_steps")" \
      --data data/heldout_shards --precision "$eval_precision" \
      --requests "${SERVE_REQUESTS:-32}" --exits none,oracle,confidence:0.9,confidence:0.6 \
      ${SERVE_ARGS:-} >evals/serve_bench.md.part
    mv evals/serve_bench.md.part evals/serve_bench.md
    to_record evals/serve_bench.md
  fi
elif ! post_recorded; then
  log "early-exit post-training waits for arm 2 (relaxed_svd) to finish"
fi

# 9. The table and the figures, from this machine's runs and the record's.
curves=()
for arm in "${all_arms[@]}"; do
  if [[ -f "arms/$arm/metrics.jsonl" ]]; then
    curves+=("arms/$arm")
  elif [[ -n "$record" && -f "$record/arms/$arm/metrics.jsonl" ]]; then
    curves+=("$record/arms/$arm")
  fi
done
if ((${#curves[@]})); then
  "$rrt" plot "${curves[@]}" --out loss_curves.png --x tokens \
    --title "SmolLM2-135M uptraining, $steps steps per arm"
  to_record loss_curves.png
fi
python3 "$here/tools/smollm2_uptrain_summary.py" "$out" "$record"
((${#left[@]})) && log "arms still to train: ${left[*]} (rerun; ARMS= picks which)"
log "done: $out/results.md"
exit
}
