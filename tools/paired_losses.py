#!/usr/bin/env python3
"""Two runs that saw the same batches, compared step by step.

    python3 tools/paired_losses.py RUN_A RUN_B [--key loss_ce] [--windows 10,100,300,600,1000]

RUN_A and RUN_B are run directories (or their metrics.jsonl). Runs of one config that differ
only in their starting weights or one hyperparameter see the same batch at step n (the data
order is the config's seed), so the difference of their training losses at equal steps is
paired: most of the batch-to-batch noise cancels. Prints the mean of A - B (negative: A
ahead) over windows of logged steps, how many of those steps A was ahead, and both runs'
monitor-split perplexity (val_ppl) where both evaluated.
"""
import argparse
import json
import os


def load(path):
    if os.path.isdir(path):
        path = os.path.join(path, "metrics.jsonl")
    rows = {}
    with open(path) as f:
        for line in f:
            try:
                r = json.loads(line)
            except json.JSONDecodeError:  # a line cut by a kill: the rest of the file is fine
                continue
            rows.setdefault(r["step"], {}).update(r)
    return rows


def paired(a, b, key="loss_ce", edges=(10, 100, 300, 600, 1000)):
    """[(first step, last step, mean of A - B, steps A was ahead, steps)] per window of logged
    steps (lo, hi] between consecutive edges; a and b are load()'s rows. Raises ValueError when
    no step logs `key` in both."""
    # A run without distillation logs no loss_ce: its loss is the cross-entropy.
    for rows in (a, b):
        for r in rows.values():
            if key == "loss_ce" and "loss_ce" not in r and "loss" in r and "loss_kd" not in r:
                r["loss_ce"] = r["loss"]
    steps = sorted(s for s in a.keys() & b.keys() if key in a[s] and key in b[s])
    if not steps:
        raise ValueError(f"no step logs '{key}' in both runs")
    out, lo = [], 0
    for hi in edges:
        window = [s for s in steps if lo < s <= hi]
        if window:
            d = [a[s][key] - b[s][key] for s in window]
            out.append((window[0], window[-1], sum(d) / len(d), sum(x < 0 for x in d), len(d)))
        lo = hi
    return out


def monitored(a, b):
    """The steps at which both runs scored the monitor split (val_ppl), in order."""
    return sorted(s for s in a.keys() & b.keys() if "val_ppl" in a[s] and "val_ppl" in b[s])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run_a")
    ap.add_argument("run_b")
    ap.add_argument("--key", default="loss_ce",
                    help="the logged value to pair (default loss_ce, the training cross-entropy)")
    ap.add_argument("--windows", default="10,100,300,600,1000",
                    help="window edges in steps: (10, 100], (100, 300], ...")
    args = ap.parse_args()
    a, b = load(args.run_a), load(args.run_b)
    try:
        windows = paired(a, b, args.key, [int(x) for x in args.windows.split(",")])
    except ValueError as e:
        raise SystemExit(str(e))
    print(f"A = {args.run_a}\nB = {args.run_b}\n{args.key}, A - B, over logged steps:")
    for first, last, mean, ahead, n in windows:
        print(f"  steps {first}-{last}: {mean:+.3f} (A ahead at {ahead} of {n})")
    for s in monitored(a, b):
        print(f"  monitor split at step {s}: {a[s]['val_ppl']:.1f} against {b[s]['val_ppl']:.1f}")


if __name__ == "__main__":
    main()
