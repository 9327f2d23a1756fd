#!/usr/bin/env bash
# rrt's training step beside PyTorch 2.x's on the same model and machine (issue 20): ROUNDS
# paired rounds, each running bench_train_step (fp32, and --precision bf16 where the binary has
# that flag) and tools/bench_torch_train_step.py (fp32 eager and bf16 autocast), the order
# alternating between rounds so that load drifts hit both alike. Prints every round and a table
# of median tokens/s and the medians of the per-round ratios rrt / PyTorch.
#
#   bench/compare_with_torch.sh [ROUNDS]          (default 5 rounds)
#
# Environment: RRT_BENCH (default build/bench/bench_train_step), PYTHON (default .venv-bench's
# python if present, else python3; it needs torch: tools/requirements-bench.txt), THREADS
# (default: the cores this process may use; OMP_NUM_THREADS and torch.set_num_threads get it),
# RRT_REPEATS / TORCH_REPEATS (timed steps per run, default 3; medians), TORCH_ADAMW
# (fused | foreach | loop, default fused), SMALL=1 (both sides on the bench-small model, a
# smoke run of this script). Not part of CI or the tests. docs/benchmarks.md
# records its output.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}
rrt=${RRT_BENCH:-build/bench/bench_train_step}
if [[ -z ${PYTHON:-} ]]; then
  if [[ -x .venv-bench/bin/python ]]; then PYTHON=.venv-bench/bin/python; else PYTHON=python3; fi
fi
threads=${THREADS:-$(nproc)}
export OMP_NUM_THREADS=$threads OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
rrt_repeats=${RRT_REPEATS:-3} torch_repeats=${TORCH_REPEATS:-3}
adamw=${TORCH_ADAMW:-fused}
small=()
[[ ${SMALL:-0} == 1 ]] && small=(--small)  # the bench-small model on both sides: a smoke run

[[ -x $rrt ]] || { echo "compare_with_torch: no $rrt; build it first (cmake --build build --target bench_train_step) or set RRT_BENCH" >&2; exit 1; }
"$PYTHON" -c 'import torch' 2>/dev/null || { echo "compare_with_torch: $PYTHON cannot import torch; install tools/requirements-bench.txt (see docs/benchmarks.md) or set PYTHON" >&2; exit 1; }

precisions=(fp32)
help=$("$rrt" --help 2>&1 || true)  # today's binary answers --help with its usage and status 2
if grep -q -- '--precision' <<<"$help"; then
  precisions+=(bf16)
else
  echo "note: $rrt has no --precision flag; rrt bf16 is skipped (PyTorch bf16 still runs)"
fi

log=$(mktemp -t compare_with_torch.XXXXXX)
trap 'rm -f "$log"' EXIT
run_rrt() {  # appends "RRT mode=... tokens_per_s=... params_m=..." for round $1
  local p out
  for p in "${precisions[@]}"; do
    if [[ $p == fp32 ]]; then
      out=$("$rrt" --repeats "$rrt_repeats" --warmup 1 "${small[@]}")
    else
      out=$("$rrt" --repeats "$rrt_repeats" --warmup 1 --precision bf16 "${small[@]}")
    fi
    local tok params loss gemm frac
    loss=$(sed -n 's/^step .* s   loss \([0-9.]*\).*/\1/p' <<<"$out")
    tok=$(sed -n 's/^throughput: \([0-9.]*\) tokens\/s.*/\1/p' <<<"$out")
    params=$(sed -n 's/^params: \([0-9.]*\) M.*/\1/p' <<<"$out")
    # The binary's own GEMM n^3 rate (sgemm in fp32, the bf16 GEMM in bf16), timed between its
    # steps, and its step's share of it (median of the paired runs).
    gemm=$(sed -n 's/^\(sgemm\|bf16 gemm\) \([0-9]*\)x[0-9x]*: \([0-9.]*\) GFLOP\/s.*/\2 \3/p' <<<"$out")
    frac=$(sed -n 's/^ratio step .*, \([0-9.]*\)% median of paired runs.*/\1/p' <<<"$out")
    [[ -n $tok ]] || { echo "compare_with_torch: no throughput line from $rrt ($p):" >&2; echo "$out" >&2; exit 1; }
    echo "RRT round=$1 mode=$p tokens_per_s=$tok params_m=$params loss=$loss" \
      "gemm_n=${gemm% *} gemm_gflops=${gemm#* } step_vs_gemm_pct=${frac:-nan}" >>"$log"
  done
}
run_torch() {
  "$PYTHON" tools/bench_torch_train_step.py --threads "$threads" --warmup 1 \
    --repeats "$torch_repeats" --adamw "$adamw" --gemm 2048 "${small[@]}" |
    sed -n "s/^RESULT /TORCH round=$1 /p" >>"$log"
}

echo "rrt: $rrt, precisions: ${precisions[*]}"
echo "PyTorch: $("$PYTHON" -c 'import torch; print(torch.__version__)') via $PYTHON, AdamW $adamw"
"$PYTHON" tools/bench_torch_train_step.py --print-isa
echo "threads: $threads  OMP_WAIT_POLICY=$OMP_WAIT_POLICY  rounds: $rounds"
echo "load before: $(uptime)"
for ((i = 1; i <= rounds; ++i)); do
  if ((i % 2)); then run_rrt "$i"; run_torch "$i"; else run_torch "$i"; run_rrt "$i"; fi
  echo "round $i done, load average $(cut -d' ' -f1-3 /proc/loadavg)"
  grep " round=$i " "$log" | sed 's/^/  /'
done
echo "load after: $(uptime)"

python3 - "$log" "${precisions[*]}" <<'PY'
import collections, statistics, sys
rows = collections.defaultdict(dict)  # round -> {key: value}
params, losses = {}, {}
for line in open(sys.argv[1]):
    who, *kv = line.split()
    f = dict(x.split("=", 1) for x in kv if "=" in x)
    r = int(f["round"])
    if who == "RRT":
        rows[r]["rrt " + f["mode"]] = float(f["tokens_per_s"])
        if f.get("gemm_gflops", ""):
            rows[r]["rrt gemm " + f["mode"]] = float(f["gemm_gflops"])
            rows[r]["rrt step/gemm " + f["mode"]] = float(f["step_vs_gemm_pct"])
            gemm_n = f["gemm_n"]
        losses["rrt " + f["mode"]] = f.get("loss")
        params["rrt"] = f["params_m"] + " M"
    elif f.get("dtype"):
        rows[r]["gemm " + f["dtype"]] = float(f["gflops"])
    else:
        rows[r]["torch " + f["mode"]] = float(f["tokens_per_s"])
        losses["PyTorch " + f["mode"]] = f.get("loss")
        params["torch"] = f"{int(f['params']) / 1e6:.2f} M ({f['params']}, rrt registry formula {f['rrt_params']})"
print(f"parameters: rrt {params.get('rrt')}, PyTorch {params.get('torch')}")
# Both sides take 1 warm-up + R timed steps on the same kind of batch (random tokens, the same
# init scale and AdamW settings), so the losses after them should agree to about 0.01.
print("loss after the last step:", ", ".join(f"{k} {v}" for k, v in sorted(losses.items())))
modes = sys.argv[2].split()
print()
print("| round | " + " | ".join(f"rrt {m} tok/s | PyTorch {m} tok/s | rrt/PyTorch {m}" for m in ("fp32", "bf16")) + " |")
print("|---:|" + "---:|" * 6)
ratios = collections.defaultdict(list)
def cell(v, fmt):
    return fmt.format(v) if v is not None else "—"
for r in sorted(rows):
    d, cells = rows[r], []
    for m in ("fp32", "bf16"):
        a, b = d.get("rrt " + m), d.get("torch " + m)
        q = a / b if a and b else None
        if q: ratios[m].append(q)
        cells += [cell(a, "{:.0f}"), cell(b, "{:.0f}"), cell(q, "{:.3f}")]
    print(f"| {r} | " + " | ".join(cells) + " |")
med = lambda k: statistics.median([d[k] for d in rows.values() if k in d]) if any(k in d for d in rows.values()) else None
cells = []
for m in ("fp32", "bf16"):
    q = statistics.median(ratios[m]) if ratios[m] else None
    cells += [cell(med("rrt " + m), "**{:.0f}**"), cell(med("torch " + m), "**{:.0f}**"), cell(q, "**{:.3f}**")]
print("| median | " + " | ".join(cells) + " |")
g32, g16 = med("gemm fp32"), med("gemm bf16")
print()
if g32:
    print(f"PyTorch 2048^3 products, medians over rounds: fp32 (MKL) {g32:.0f} GFLOP/s, bf16 (oneDNN) {g16:.0f} GFLOP/s")
for m, lib in (("fp32", "sgemm (OpenBLAS)"), ("bf16", "bf16 GEMM")):
    if med("rrt gemm " + m):
        print(f"rrt {m}: its {lib} {gemm_n}^3 {med('rrt gemm ' + m):.0f} GFLOP/s, the step at "
              f"{med('rrt step/gemm ' + m):.1f}% of it (medians over rounds)")
for m in ("fp32", "bf16"):
    if ratios[m]:
        print(f"rrt/PyTorch {m}: median of {len(ratios[m])} paired rounds {statistics.median(ratios[m]):.3f} (min {min(ratios[m]):.3f}, max {max(ratios[m]):.3f})")
if "bf16" not in modes:
    print("rrt bf16: not run (bench_train_step has no --precision flag yet)")
PY
