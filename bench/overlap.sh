#!/usr/bin/env bash
# Step time of data-parallel training with and without overlapping the gradient all-reduce
# with backward (distributed.overlap), at RANKS ranks (default 2), through the real binary.
#   bench/overlap.sh [RRT] [RANKS] [REPEATS] [key=value ...]
# Runs alternate (on, off, on, off, ...) so that drift in the machine's load hits both alike;
# each run's step time is the median over its steps after the first 3, and the figure of each
# setting is the median over its runs. The default model is communication-heavy for a CPU
# (d_model 512, 8 layers folded into 4 x 2 with rank-32 LoRA, 64 tokens per rank per step:
# ~30 MB of fp32 gradients), so that the all-reduce is a visible part of the step.
set -euo pipefail
src="$(cd "$(dirname "$0")/.." && pwd)"
rrt="${1:-$src/build/rrt}"
ranks="${2:-2}"
repeats="${3:-3}"
shift $(( $# < 3 ? $# : 3 ))
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}" OMP_WAIT_POLICY=passive
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

mkdir -p "$work/text"
for i in $(seq 1 40); do echo "Line $i of a text that loops over itself, again and again."; done \
  >"$work/text/doc.txt"
"$rrt" prepare --quiet --out "$work/shards" "$work/text" >/dev/null

model=(model.d_model=512 model.n_heads=8 model.n_kv_heads=4 model.ffn=1408 model.n_layers=8
       recursion.loops=2 lora.rank=32 train.seq_len=32 train.micro_batch=2 train.steps=15
       train.eval_every=1000 data.val_fraction=0 checkpoint.every=1000 log.every=1 train.threads=0)

run() {  # run NAME OVERLAP [key=value ...]: prints "median step ms,median exposed comm ms"
  local dir="$work/$1" overlap="$2"
  shift 2
  mpirun --oversubscribe --bind-to none -np "$ranks" -x OMP_NUM_THREADS -x OMP_WAIT_POLICY \
    "$rrt" train "$src/configs/tiny.yaml" data.path="$work/shards" train.run_dir="$dir" \
    "${model[@]}" distributed.overlap="$overlap" "$@" >"$dir.log" 2>&1 \
    || { cat "$dir.log" >&2; exit 1; }
  python3 - "$dir/metrics.jsonl" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
late = [r for r in rows if "tokens_per_s" in r and r["step"] > 3]
per_step = rows[0]["tokens"] / rows[0]["step"] if rows else 0
step = statistics.median(per_step / r["tokens_per_s"] for r in late) * 1e3
comm = statistics.median(r["comm_wait_ms"] for r in late)
print(f"{step:.2f},{comm:.2f}")
PY
}

on=() off=()
for r in $(seq 1 "$repeats"); do
  on+=("$(run "on$r" true "$@")")
  off+=("$(run "off$r" false "$@")")
done
grep -m1 "data parallel" "$work/on1.log" || true
python3 - "${on[*]}" "${off[*]}" "$ranks" <<'PY'
import statistics, sys
def parse(arg):  # "step,comm step,comm ..." -> ([step...], [comm...])
    pairs = [tuple(float(v) for v in x.split(",")) for x in arg.split()]
    return [p[0] for p in pairs], [p[1] for p in pairs]
on, on_comm = parse(sys.argv[1])
off, off_comm = parse(sys.argv[2])
m_on, m_off = statistics.median(on), statistics.median(off)
c_on, c_off = statistics.median(on_comm), statistics.median(off_comm)
print(f"ranks {sys.argv[3]}: step time with overlap {m_on:.2f} ms (runs {on}), "
      f"without {m_off:.2f} ms (runs {off}); without / with = {m_off / m_on:.3f}")
# Exposed communication: rank 0's wait in the all-reduce after backward (metrics comm_wait_ms).
print(f"exposed all-reduce wait per step: with overlap {c_on:.2f} ms (runs {on_comm}), "
      f"without {c_off:.2f} ms (runs {off_comm}); hidden by overlap: {c_off - c_on:.2f} ms "
      f"({(c_off - c_on) / m_off * 100:.1f}% of the step without overlap)")
PY
