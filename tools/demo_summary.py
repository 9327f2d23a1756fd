#!/usr/bin/env python3
"""Aggregates the results.json of several `rrt demo` runs (one per seed) into markdown:
the table as mean +- sample standard deviation over the seeds, and the paper's three findings
with their per-seed differences and how many seeds they hold in.

    python3 tools/demo_summary.py runs/demo_seeds/seed_1 runs/demo_seeds/seed_2 ...
"""
import json
import math
import os
import statistics
import sys


def mean_sd(values):
    m = statistics.fmean(values)
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return m, sd


def fmt(values):
    if not values:
        return "-"
    m, sd = mean_sd(values)
    return f"{m:.2f} ± {sd:.2f}"


def main(dirs):
    runs = [json.load(open(os.path.join(d, "results.json"))) for d in dirs]
    loops = runs[0]["loops"]
    seeds = [r["seed"] for r in runs]
    keys = [row["key"] for row in runs[0]["rows"]]
    rows = {k: [next(x for x in r["rows"] if x["key"] == k) for r in runs] for k in keys}

    out = []
    out.append(f"Validation perplexity per exit, mean ± standard deviation over seeds "
               f"{', '.join(map(str, seeds))} ({runs[0]['tokens']} validation tokens each):\n")
    head = "| model | parameters | converted |" + "".join(
        f" exit {k}{' (final)' if k == loops else ''} |" for k in range(1, loops + 1))
    out.append(head)
    out.append("|---|---:|---:|" + "---:|" * loops)
    for k in keys:
        per_seed = rows[k]
        first = per_seed[0]
        conv = [x["converted"] for x in per_seed if x["converted"] is not None]
        cells = []
        missing = loops - len(first["exits"])
        for i in range(loops):
            cells.append("-" if i < missing else fmt([x["exits"][i - missing] for x in per_seed]))
        out.append(f"| {first['label']} | {first['params'] / 1e6:.3f} M | {fmt(conv)} | "
                   + " | ".join(cells) + " |")

    def final(key):
        return [x["exits"][-1] for x in rows[key]]

    def finding(name, diffs, holds):
        n = sum(holds)
        m, sd = mean_sd(diffs)
        per = ", ".join(f"{d:+.2f}" for d in diffs)
        out.append(f"| {name} | {per} | {m:+.2f} ± {sd:.2f} | {n} of {len(holds)} |")

    out.append("\nThe paper's findings (differences of final-exit perplexity, per seed):\n")
    out.append("| finding | per seed | mean ± sd | holds in |")
    out.append("|---|---|---|---|")
    rec, scratch = final("recursive"), final("scratch")
    finding("recursive − from scratch (< 0: recursive better)",
            [a - b for a, b in zip(rec, scratch)], [a < b for a, b in zip(rec, scratch)])
    relaxed = sorted((k for k in keys if k.startswith("relaxed_r") and not k.endswith("_zero")),
                     key=lambda k: int(k[len("relaxed_r"):]))
    for k in relaxed:
        rel = final(k)
        finding(f"relaxed r={k[len('relaxed_r'):]} − recursive (< 0: relaxed better)",
                [a - b for a, b in zip(rel, rec)], [a < b for a, b in zip(rel, rec)])
    zero = next(k for k in keys if k.endswith("_zero"))
    svd = final(zero[: -len("_zero")])
    z = final(zero)
    finding(f"SVD − zero LoRA init, r={zero[len('relaxed_r'):-len('_zero')]} (< 0: SVD better)",
            [a - b for a, b in zip(svd, z)], [a < b for a, b in zip(svd, z)])
    before = final(runs[0]["post_trained"])
    agg, uni = final("exits_aggressive"), final("exits_uniform")
    # The paper's finding: aggressive weighting protects the final exit. Signed change over
    # post-training (after − before): aggressive loses less or gains more when it is lower.
    sa = [a - b for a, b in zip(agg, before)]
    su = [u - b for u, b in zip(uni, before)]
    finding("final exit's change over post-training, aggressive − uniform "
            "(< 0: aggressive protects it better)",
            [a - b for a, b in zip(sa, su)], [a < b for a, b in zip(sa, su)])
    # The literal reading, |after − before|, penalises improving more: kept to show both.
    da = [abs(a) for a in sa]
    du = [abs(u) for u in su]
    finding("final exit's absolute distance from before post-training, aggressive − uniform "
            "(< 0: aggressive closer)",
            [a - b for a, b in zip(da, du)], [a < b for a, b in zip(da, du)])
    control = final("exits_none")
    ca = [abs(a - c) for a, c in zip(agg, control)]
    cu = [abs(u - c) for u, c in zip(uni, control)]
    finding("final exit's distance from the control without exits, aggressive − uniform "
            "(< 0: aggressive closer)",
            [a - b for a, b in zip(ca, cu)], [a < b for a, b in zip(ca, cu)])
    out.append("")
    out.append("Final exit per seed: before post-training → the control without exits / "
               "aggressive / uniform: "
               + "; ".join(f"{b:.2f} → {c:.2f} / {a:.2f} / {u:.2f}"
                           for b, c, a, u in zip(before, control, agg, uni)))
    print("\n".join(out))


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1:])
