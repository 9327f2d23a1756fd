#!/usr/bin/env python3
"""The Markdown tables of bench/smollm2_bf16.sh's runs (docs/benchmarks.md, issue 20).

Usage: tools/smollm2_bf16_summary.py OUT_DIR [--top N]

Reads OUT_DIR/train/r<round>_<precision>.{metrics.jsonl,time}, OUT_DIR/serve/r<round>_<p>.json
and OUT_DIR/profile/<p>.{perf.txt,trace.json,metrics.jsonl}; prints whichever exist.
"""
import glob
import json
import os
import re
import statistics
import sys

PRECISIONS = ("fp32", "bf16")


def median(xs):
    return statistics.median(xs) if xs else float("nan")


def rows(path):
    with open(path) as f:
        return [json.loads(l) for l in f if l.strip()]


def time_v(path):
    """Maximum resident set (GiB), user + system CPU seconds and wall seconds (/usr/bin/time -v)."""
    text = open(path).read()
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", text).group(1))
    user = float(re.search(r"User time \(seconds\): ([\d.]+)", text).group(1))
    sys_ = float(re.search(r"System time \(seconds\): ([\d.]+)", text).group(1))
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", text).group(1)
    secs = 0.0
    for part in wall.split(":"):
        secs = secs * 60 + float(part)
    return rss / 2**20, user + sys_, secs


def train_run(base):
    steps = [r for r in rows(base + ".metrics.jsonl") if "tokens_per_s" in r]
    first, last = steps[0], steps[-1]
    timed_tokens = last["tokens"] - first["tokens"]
    timed_s = last["elapsed_s"] - first["elapsed_s"]
    run = {
        "tok_s": timed_tokens / timed_s,  # steps 2..N: the first step warms caches and pools
        "step_s": timed_s / (len(steps) - 1),
        "peak_gib": max(r["peak_rss_gib"] for r in steps),
        "losses": [r["loss"] for r in steps],
        "kd": [r.get("loss_kd") for r in steps],
        "ce": [r.get("loss_ce") for r in steps],
        "tokens_per_step": first["tokens"],
    }
    if os.path.exists(base + ".steps.jsonl"):  # tools/step_cpu_times.py
        marks = rows(base + ".steps.jsonl")
        at = {r["step"]: r["cpu_s"] for r in marks if "step" in r}
        n = max(at)
        run["cpu_step_s"] = (at[n] - at[1]) / (n - 1)
        run["maxrss_gib"] = marks[-1]["maxrss_gib"]
    elif os.path.exists(base + ".time"):  # /usr/bin/time -v (whole runs only)
        run["maxrss_gib"] = time_v(base + ".time")[0]
    return run


def train_table(out):
    runs = {}
    for path in sorted(glob.glob(os.path.join(out, "train", "r*_*.metrics.jsonl"))):
        m = re.search(r"r(\d+)_(\w+)\.metrics\.jsonl$", path)
        runs.setdefault(int(m.group(1)), {})[m.group(2)] = train_run(path[: -len(".metrics.jsonl")])
    paired = {r: v for r, v in sorted(runs.items()) if all(p in v for p in PRECISIONS)}
    if not paired:
        return
    any_run = next(iter(paired.values()))["fp32"]
    n_steps = len(any_run["losses"])
    print(f"### Training step, {any_run['tokens_per_step']} tokens a step, steps 2-{n_steps} timed\n")
    print("| round | order | fp32 tok/s | bf16 tok/s | bf16 / fp32 | fp32 CPU s/step |"
          " bf16 CPU s/step | fp32 / bf16 CPU |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|")
    ratios, cpu_ratios = [], []
    nan = float("nan")

    def cell(x):
        return "—" if x != x else f"{x:.1f}"

    for r, v in paired.items():
        f, b = v["fp32"], v["bf16"]
        ratios.append(b["tok_s"] / f["tok_s"])
        cf, cb = f.get("cpu_step_s", nan), b.get("cpu_step_s", nan)
        last_cpu = None
        if cf == cf and cb == cb:
            cpu_ratios.append(cf / cb)
            last_cpu = r
        order = "fp32, bf16" if r % 2 else "bf16, fp32"
        print(f"| {r} | {order} | {f['tok_s']:.1f} | {b['tok_s']:.1f} | {ratios[-1]:.2f} | "
              f"{cell(cf)} | {cell(cb)} | {f'{cf / cb:.2f}' if cpu_ratios and r == last_cpu else '—'} |")
    med = {p: median([v[p]["tok_s"] for v in paired.values()]) for p in PRECISIONS}
    cpu = {p: median([v[p]["cpu_step_s"] for v in paired.values() if "cpu_step_s" in v[p]])
           for p in PRECISIONS}
    print(f"| **median** | | **{med['fp32']:.1f}** | **{med['bf16']:.1f}** | "
          f"**{median(ratios):.2f}** | **{cell(cpu['fp32'])}** | **{cell(cpu['bf16'])}** | "
          f"**{median(cpu_ratios):.2f}** |\n")

    print("| precision | peak RSS, progress line (GiB) | max RSS of the process (GiB) |")
    print("|---|---:|---:|")
    for p in PRECISIONS:
        peak = max(v[p]["peak_gib"] for v in paired.values())
        rss = max(v[p].get("maxrss_gib", float("nan")) for v in paired.values())
        print(f"| {p} | {peak:.2f} | {rss:.2f} |")
    print()

    print("Loss at every step (round 1; `spread` = largest difference between rounds of the "
          "same precision):\n")
    print("| step | fp32 loss (ce / kd) | bf16 loss (ce / kd) | bf16 - fp32 | fp32 spread |"
          " bf16 spread |")
    print("|---:|---|---|---:|---:|---:|")
    first = paired[min(paired)]
    for i in range(n_steps):
        f, b = first["fp32"], first["bf16"]
        spread = {p: max(v[p]["losses"][i] for v in paired.values()) -
                  min(v[p]["losses"][i] for v in paired.values()) for p in PRECISIONS}
        print(f"| {i + 1} | {f['losses'][i]:.4f} ({f['ce'][i]:.3f} / {f['kd'][i]:.3f}) | "
              f"{b['losses'][i]:.4f} ({b['ce'][i]:.3f} / {b['kd'][i]:.3f}) | "
              f"{b['losses'][i] - f['losses'][i]:+.4f} | {spread['fp32']:.1e} | "
              f"{spread['bf16']:.1e} |")
    print()


def serve_table(out):
    runs = {}
    for path in sorted(glob.glob(os.path.join(out, "serve", "r*_*.json"))):
        m = re.search(r"r(\d+)_(\w+)\.json$", path)
        runs.setdefault(m.group(2), []).append(json.load(open(path)))
    if not runs:
        return
    print("### serve-bench (medians over invocations; gains are medians of each invocation's "
          "ratio)\n")
    any_run = next(iter(runs.values()))[0]
    print(f"Workload: {any_run['workload']}; max batch {any_run['max_batch']}, "
          f"{len(next(iter(runs.values())))} invocations per precision.\n")
    print("| precision | exit | scheduler | tokens/s | depth-wise x this | block s |"
          " depth-wise x this, block s (theory) | mean loops | agreement | bf16 / fp32 |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|")
    tok = {}
    for p in PRECISIONS:
        for run in runs.get(p, []):
            for e in run["results"]:
                for s in e["schedulers"]:
                    tok.setdefault((p, e["exit"], s["scheduler"]), []).append(s)
    for p in PRECISIONS:
        if p not in runs:
            continue
        for e in runs[p][0]["results"]:
            for s in e["schedulers"]:
                key = (p, e["exit"], s["scheduler"])
                here, depth = tok[key], tok[(p, e["exit"], "depth")]
                xs = [x["tokens_per_second"] for x in here]
                gain = median([d["tokens_per_second"] / x["tokens_per_second"]
                               for d, x in zip(depth, here)])
                bgain = median([x["block_seconds"] / d["block_seconds"]
                                for d, x in zip(depth, here)])
                tgain = median([x["theory_block_seconds"] / d["theory_block_seconds"]
                                for d, x in zip(depth, here)])
                vs = tok.get(("fp32", e["exit"], s["scheduler"]))
                ratio = ""
                if p == "bf16" and vs:
                    ratio = f"{median(xs) / median([x['tokens_per_second'] for x in vs]):.2f}"
                gains = ("", "") if s["scheduler"] == "depth" else (
                    f"{gain:.2f}", f"{bgain:.2f} ({tgain:.2f})")
                print(f"| {p} | {e['exit']} | {s['scheduler']} | {median(xs):.1f} | {gains[0]} | "
                      f"{median([x['block_seconds'] for x in here]):.2f} | {gains[1]} | "
                      f"{median([x['mean_loops'] for x in here]):.2f} | "
                      f"{median([x['agreement'] for x in here]):.3f} | {ratio} |")
    print()


# perf symbol -> category, first match wins (regexes over "object symbol"). In a bf16 run every
# fp32 GEMM (OpenBLAS) and every double exp / log belongs to the head losses: the bf16 backend
# scores them with the fp32 ops (ops/cpu_bf16/head_loss.cpp -> ops/cpu/exit_loss.cpp).
CATEGORIES = [
    ("bf16 GEMMs (oneDNN brgemm JIT kernels, packing)", r"\[JIT\]|jit_|libdnnl"),
    ("fp32 GEMMs (OpenBLAS)", r"libopenblas"),
    ("head losses: double exp / log (libm)", r"libm\S* \[\.\] (__ieee754_exp|exp@@|__exp1|__ieee754_log|log@@)"),
    ("head losses: the rest (softmax, KL, gradient loops)", r"exit_loss|cross_entropy|lm_head"),
    ("attention (without its expf)", r"attention"),
    ("float expf (attention softmax, SwiGLU sigmoid)", r"expf"),
    ("element-wise: SwiGLU, norms, RoPE, adds, embedding", r"swiglu|geglu|gelu|norm|rope|add\b|"
     r"::add\(|embedding|parallel_lanes"),
    ("bf16 <-> fp32 conversions, compute-copy refresh", r"to_float|widen|upload_bf16|refresh|"
     r"convert|to_bf16"),
    ("AdamW, gradient norm", r"adamw|grad_norm|AdamW"),
    ("OpenMP runtime", r"libgomp"),
    ("memcpy / memset", r"memcpy|memset|memmove"),
    ("kernel (scheduling, yields, page faults)", r"\[k\]"),
]


def profile_tables(out, top):
    per_step = {}  # precision -> (CPU s a step, {category: share %})
    for p in PRECISIONS:
        path = os.path.join(out, "profile", p + ".perf.txt")
        if not os.path.exists(path):
            continue
        syms = []
        for line in open(path):
            m = re.match(r"\s+([\d.]+)%\s+(.+?)\s+(\[[.k]\])\s+(.*)$", line)
            if m:
                dso = re.sub(r"^\[JIT\] tid \d+", "[JIT]", m.group(2))  # one line per kernel kind
                sym = m.group(3) + " " + m.group(4).strip()
                for i, (pct, d, s_) in enumerate(syms):
                    if (d, s_) == (dso, sym):
                        syms[i] = (pct + float(m.group(1)), d, s_)
                        break
                else:
                    syms.append((float(m.group(1)), dso, sym))
        syms.sort(key=lambda x: -x[0])
        cats = {}
        for pct, dso, sym in syms:
            name = "other"
            for cat, rx in CATEGORIES:
                if re.search(rx, dso + " " + sym):
                    name = cat
                    break
            cats[name] = cats.get(name, 0.0) + pct
        steps = os.path.join(out, "profile", p + ".steps.jsonl")
        where = "steps 2-N"
        cpu_step = float("nan")
        if os.path.exists(steps):
            at = {r["step"]: r for r in rows(steps) if "step" in r}
            n = max(at)
            cpu_step = (at[n]["cpu_s"] - at[1]["cpu_s"]) / (n - 1)
            where = (f"steps 2-{n}: {(at[n]['wall_s'] - at[1]['wall_s']) / (n - 1):.1f} s wall, "
                     f"{(at[n]['cpu_s'] - at[1]['cpu_s']) / (n - 1):.1f} CPU s a step")
        per_step[p] = (cpu_step, cats)
        print(f"### perf, {p} run ({where}; self time, all threads)\n")
        print("| share | category |")
        print("|---:|---|")
        for name, pct in sorted(cats.items(), key=lambda x: -x[1]):
            print(f"| {pct:.1f}% | {name} |")
        print()
        print("| share | object | symbol |")
        print("|---:|---|---|")
        for pct, dso, sym in syms[:top]:
            print(f"| {pct:.2f}% | {dso} | `{sym[4:94]}` |")
        print()
        trace = os.path.join(out, "profile", p + ".trace.json")
        if os.path.exists(trace):
            events = json.load(open(trace))["traceEvents"]
            total = {}
            for e in events:
                if e.get("ph") == "X":
                    total[e["name"]] = total.get(e["name"], 0.0) + e["dur"] / 1e6
            print(f"Chrome trace (rrt train --profile), {p}, seconds summed over the profiled "
                  "steps: " + ", ".join(f"{k} {v:.2f}" for k, v in
                                        sorted(total.items(), key=lambda x: -x[1])) + "\n")
    return per_step


def combined_profile(per_step):
    """CPU seconds a step per category, both precisions side by side."""
    if len(per_step) < 2:
        return
    names = [c for c, _ in CATEGORIES] + ["other"]
    print("### CPU seconds a step by category (perf share x the run's CPU s a step)\n")
    print("| category | fp32 | bf16 | fp32 / bf16 |")
    print("|---|---:|---:|---:|")
    tot = {p: 0.0 for p in PRECISIONS}
    for name in names:
        v = {p: per_step[p][0] * per_step[p][1].get(name, 0.0) / 100 for p in PRECISIONS}
        if max(v.values()) < 0.05:
            continue
        for p in PRECISIONS:
            tot[p] += v[p]
        ratio = f"{v['fp32'] / v['bf16']:.2f}" if min(v.values()) >= 0.05 else ""
        print(f"| {name} | {v['fp32']:.2f} | {v['bf16']:.2f} | {ratio} |")
    print(f"| **step** | **{per_step['fp32'][0]:.2f}** | **{per_step['bf16'][0]:.2f}** | "
          f"**{per_step['fp32'][0] / per_step['bf16'][0]:.2f}** |\n")


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    out = sys.argv[1]
    top = int(sys.argv[sys.argv.index("--top") + 1]) if "--top" in sys.argv else 25
    train_table(out)
    serve_table(out)
    combined_profile(profile_tables(out, top))


if __name__ == "__main__":
    main()
