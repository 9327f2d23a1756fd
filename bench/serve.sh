#!/usr/bin/env bash
# The early-exit serving tables of docs/benchmarks.md: rrt serve-bench on the demo's early-exit
# model (offline, and with Poisson arrivals) and on the early-exit post-trained SmolLM2 relaxed
# model (CPU, one thread). Usage:
#   bench/serve.sh [RRT_BINARY] [OUT_DIR]      (default build/rrt, bench_out/serve)
# Needs the runs on disk: tools/demo_seeds.sh (seed 1) and tools/smollm2_uptrain.sh.
set -euo pipefail
rrt="${1:-build/rrt}"
out="${2:-bench_out/serve}"
mkdir -p "$out"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}" OMP_WAIT_POLICY=passive
uptime | tee "$out/load.txt"
"$rrt" serve-bench runs/demo_seeds/seed_1/exits_aggressive/step_00000100.h5 \
  --requests 48 --prompt-len 8-32 --output-len 32-128 --max-batch 8 --repeats 15 \
  --exits none,oracle,confidence:0.5,confidence:0.3 --verbose | tee "$out/demo.md"
"$rrt" serve-bench runs/smollm2_kd/posttrain/step_00000007.h5 --data runs/smollm2_kd/heldout_shards \
  --requests 12 --prompt-len 8-16 --output-len 24-48 --max-batch 8 --repeats 3 \
  --exits none,oracle,confidence:0.5,confidence:0.3 --verbose | tee "$out/smollm2.md"
"$rrt" serve-bench runs/demo_seeds/seed_1/exits_aggressive/step_00000100.h5 \
  --requests 48 --prompt-len 8-32 --output-len 32-128 --max-batch 8 --repeats 5 \
  --exits none,oracle,confidence:0.5,confidence:0.3 --arrival-rate 40 --verbose | tee "$out/demo_arrivals.md"
uptime | tee -a "$out/load.txt"
