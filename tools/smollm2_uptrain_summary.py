#!/usr/bin/env python3
"""The table of the SmolLM2 uptraining study (tools/smollm2_uptrain_study.sh, docs/results.md).

Reads a study directory (evals/*.json from `rrt eval --json`, the arms' metrics.jsonl, the
conversion logs, the shard manifests) and writes

    OUT/results.md      the tables: perplexity per arm at 0/25/50/75/100% of the budget on the
                        in-domain held-out set and the out-of-domain one (fortunes); the paper's
                        orderings, each "holds" or "does not hold" with its numbers, and
                        each on the same batches (the two arms' training cross-entropy paired
                        step by step, by quarter: tools/paired_losses.py); the share of
                        its conversion gap each arm recovered, to the original and to the
                        ceiling arm (the original trained on the same tokens); the
                        early-exit post-training per exit, the oracle exits and the
                        confidence-exit trade-off; the learning-rate sweep; tokens/s per arm
    OUT/results.jsonl   one object per arm and point, per post-trained model, per lr run

With RECORD_DIR (the study's record, committed: the results of earlier machines), what the
study directory lacks is read from the record, and both files are written there too, with
RECORD_DIR/arms/summary.csv: the arms' rows of `rrt sweep summary`, this machine's runs
replacing the record's.

Usage: python3 tools/smollm2_uptrain_summary.py OUT_DIR [RECORD_DIR]
"""
import csv
import glob
import json
import math
import os
import re
import statistics
import sys

from paired_losses import load as load_metrics, monitored, paired

ARMS = [
    ("recursive", "1 recursive: K = 3, stepwise, no LoRA"),
    ("relaxed_svd", "2 relaxed: K = 3, average, SVD LoRA r = 64"),
    ("relaxed_zero", "3 relaxed: K = 3, average, zero LoRA r = 64"),
    ("vanilla", "4 vanilla: the first 15 layers"),
    ("relaxed_svd_ce", "5 arm 2 without distillation"),
    ("original", "6 original, 30 layers (ceiling)"),
    ("relaxed_svd_stepwise", "7 arm 2 from the stepwise init (not the paper's)"),
    ("relaxed_zero_stepwise", "8 arm 7 with zero LoRA (not the paper's)"),
]
POINTS = ["000", "025", "050", "075", "100"]
SETS = [("in", "in-domain held-out (Debian documentation)"),
        ("ood", "out-of-domain (fortunes, the conversion study's text)")]


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def ppl(x):
    if x is None:
        return "-"
    if not math.isfinite(x) or x >= 1e5:
        return f"{x:.3g}"
    return f"{x:.2f}"


def tokens_per_s(run_dir):
    rates = []
    try:
        with open(os.path.join(run_dir, "metrics.jsonl")) as f:
            for line in f:
                r = json.loads(line)
                if "tokens_per_s" in r and r.get("step", 0) > 1:
                    rates.append(r["tokens_per_s"])
    except OSError:
        return None
    return statistics.median(rates) if rates else None


def read_csv(path):
    """(columns, {run name: {column: value}}) of a `rrt sweep summary` CSV, or ([], {})."""
    if not os.path.exists(path):
        return [], {}
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), {r["run"]: r for r in reader}


def merged_columns(first, second):
    """first's columns, with each of second's that first lacks placed after its neighbour."""
    cols = list(first)
    for i, c in enumerate(second):
        if c not in cols:
            before = second[i - 1] if i else None
            cols.insert(cols.index(before) + 1 if before in cols else len(cols), c)
    return cols


def arms_summary(out, record):
    """The arms' summary rows: this machine's runs (those with metrics), else the record's.
    Merged by column name: arms summarised on different machines may have different columns
    (a distilled arm has a "train ppl exit 3" that arm 5 lacks); a missing value is empty."""
    head, rows = read_csv(os.path.join(record, "arms", "summary.csv")) if record else ([], {})
    local_head, local = read_csv(os.path.join(out, "arms", "summary.csv"))
    for arm, row in local.items():
        if os.path.exists(os.path.join(out, "arms", arm, "metrics.jsonl")):
            rows[arm] = row
    head = merged_columns(local_head, head)
    if record and head:
        os.makedirs(os.path.join(record, "arms"), exist_ok=True)
        with open(os.path.join(record, "arms", "summary.csv"), "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=head, restval="", lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows[a] for a, _ in ARMS if a in rows)
    return rows


def params_of(rows, arm):
    # The run's model size: its row of the arms' summary.csv.
    n = rows.get(arm, {}).get("params") or "-"
    return f"{int(n) / 1e6:.2f} M" if n.isdigit() else n


def first_of(*paths):
    return next((p for p in paths if p and os.path.exists(p)), paths[0])


def main():
    out = sys.argv[1]
    record = sys.argv[2] if len(sys.argv) > 2 and sys.argv[2] else None

    def path(*parts):  # the study's file, else the record's
        return first_of(os.path.join(out, *parts), record and os.path.join(record, *parts))

    ev = {}
    for d in [out] + ([record] if record else []):
        for f in glob.glob(os.path.join(d, "evals", "*.json")):
            ev.setdefault(os.path.basename(f)[:-5], load(f))
    summary = arms_summary(out, record)
    rows, md = [], []
    corpus = load(path("corpus", "manifest.json")) or {}
    shards = {n: load(path("data", n, "manifest.json")) or {}
              for n in ("train_shards", "heldout_shards", "ood_shards")}
    md.append("## Data\n")
    md.append(f"- training tokens: {shards['train_shards'].get('tokens', '-')} "
              f"({shards['train_shards'].get('documents', '-')} documents); in-domain held-out "
              f"{shards['heldout_shards'].get('tokens', '-')} tokens "
              f"({shards['heldout_shards'].get('documents', '-')} documents); out-of-domain "
              f"{shards['ood_shards'].get('tokens', '-')} tokens")
    if corpus:
        md.append(f"- {len(corpus.get('packages', []))} Debian packages "
                  "(corpus/manifest.md lists each with version and licences)")
    some = next((e for e in ev.values() if e), None)
    if some:
        md.append(f"- every evaluation scores the same {some['tokens']} tokens of each held-out "
                  f"set (rrt eval, {some.get('device', '')})")

    for key, title in SETS:
        md.append(f"\n## Perplexity, {title}\n")
        md.append("| arm | parameters | " + " | ".join(f"{int(p)}%" for p in POINTS) + " |")
        md.append("|---|---:|" + "---:|" * len(POINTS))
        for arm, name in ARMS:
            cells = []
            for p in POINTS:
                e = ev.get(f"{arm}_{p}.{key}")
                cells.append(ppl(e["perplexity"]) if e else "-")
                if e:
                    rows.append({"arm": arm, "point": int(p), "set": key, "loss": e["loss"],
                                 "perplexity": e["perplexity"], "tokens": e["tokens"],
                                 "exits": e.get("exits")})
            md.append(f"| {name} | {params_of(summary, arm)} | " + " | ".join(cells) + " |")

    def final(arm, key="in"):
        e = ev.get(f"{arm}_100.{key}")
        return e["loss"] if e else None

    md.append("\n## The paper's orderings (final checkpoints, in-domain loss; lower is better)\n")
    checks = [("relaxed < recursive", "relaxed_svd", "recursive"),
              ("relaxed < vanilla of the same size", "relaxed_svd", "vanilla"),
              ("SVD < zero LoRA init", "relaxed_svd", "relaxed_zero"),
              ("distillation < plain CE", "relaxed_svd", "relaxed_svd_ce"),
              # Arm 7: the relaxation from the start that leads at this budget.
              ("relaxed (stepwise start) < recursive", "relaxed_svd_stepwise", "recursive"),
              ("relaxed (stepwise start) < vanilla", "relaxed_svd_stepwise", "vanilla"),
              # Arm 8: the same from the stepwise start with zero LoRA, and the paper's SVD
              # against zero from that start.
              ("relaxed (stepwise, zero LoRA) < recursive", "relaxed_zero_stepwise", "recursive"),
              ("relaxed (stepwise, zero LoRA) < vanilla", "relaxed_zero_stepwise", "vanilla"),
              ("SVD < zero LoRA init (stepwise start)", "relaxed_svd_stepwise",
               "relaxed_zero_stepwise")]
    for key, _ in SETS:
        for what, a, b in checks:
            la, lb = final(a, key), final(b, key)
            if la is None or lb is None:
                md.append(f"- {what} ({key}): not measured yet")
                continue
            verdict = "holds" if la < lb else "does not hold"
            md.append(f"- {what} ({key}): **{verdict}**: {ppl(math.exp(la))} against "
                      f"{ppl(math.exp(lb))} (loss {la:.4f} vs {lb:.4f})")
        orig0, ceil = ev.get(f"original_000.{key}"), final("original", key)
        # Every converted arm against its own start: how much of what its conversion lost
        # (in loss, i.e. log-perplexity) the uptraining won back.
        for arm, name in ARMS:
            conv, up = ev.get(f"{arm}_000.{key}"), final(arm, key)
            if arm == "original" or not conv or up is None or not orig0:
                continue
            gap = conv["loss"] - orig0["loss"]
            rec = (conv["loss"] - up) / gap if gap > 0 else float("nan")
            # The ceiling arm (the original trained on the same tokens) is what the same
            # uptraining makes of the unconverted model: the fair end point, lower in-domain
            # than the original itself, so the gap to it is the one that measures the method.
            to_ceiling = ""
            if ceil is not None and conv["loss"] > ceil:
                rec_ceil = (conv["loss"] - up) / (conv["loss"] - ceil)
                to_ceiling = (f", the ceiling arm at {ppl(math.exp(ceil))}: {up - ceil:.3f} nats "
                              f"behind it, {100 * rec_ceil:.1f}% of the gap from the conversion "
                              f"to the ceiling recovered")
            md.append(f"- conversion gap recovered, arm {name} ({key}): {100 * rec:.1f}% of the "
                      f"{gap:.3f} nats between its conversion ({ppl(conv['perplexity'])}) and the "
                      f"original ({ppl(orig0['perplexity'])}); it ends at {ppl(math.exp(up))}" +
                      to_ceiling)

    # The investigation an ordering that fails calls for starts here: the arms saw the same
    # batch at every step, so their training losses pair up and the quarter-by-quarter gap says
    # whether it is closing (tools/paired_losses.py prints finer windows).
    md.append("\n## The orderings on the same batches (training cross-entropy, first arm minus "
              "second, mean over each quarter's logged steps; negative: the first ahead)\n")
    for what, a, b in checks:
        pa, pb = path("arms", a, "metrics.jsonl"), path("arms", b, "metrics.jsonl")
        if not (pa and os.path.exists(pa) and pb and os.path.exists(pb)):
            md.append(f"- {what}: not measured yet")
            continue
        ma, mb = load_metrics(pa), load_metrics(pb)
        try:  # a run that has just started may have logged nothing yet
            last = min(max(ma), max(mb))
            windows = paired(ma, mb, "loss_ce", [round(last * q / 4) for q in (1, 2, 3, 4)])
        except ValueError:
            md.append(f"- {what}: no training cross-entropy logged by both")
            continue
        cells = ", ".join(f"{mean:+.3f} (steps {lo}-{hi}, ahead at {ahead} of {n})"
                          for lo, hi, mean, ahead, n in windows)
        val = monitored(ma, mb)
        monitor = (f"; monitor split at step {val[-1]}: {ma[val[-1]]['val_ppl']:.1f} against "
                   f"{mb[val[-1]]['val_ppl']:.1f}" if val else "")
        md.append(f"- {what}: {cells}{monitor}")
        rows.append({"paired": [a, b], "key": "loss_ce",
                     "windows": [dict(zip(("first", "last", "mean", "ahead", "steps"), w))
                                 for w in windows]})

    md.append("\n## Early-exit post-training of arm 2 (in-domain held-out)\n")
    md.append("| model | " + " | ".join(f"exit {k}" for k in (1, 2, 3)) +
              " | oracle mean loops | oracle fractions |")
    md.append("|---|---:|---:|---:|---:|---|")
    for name, label in [("relaxed_svd_100", "arm 2 before post-training"),
                        ("post_control", "control (final exit only)"),
                        ("post_aggressive", "aggressive(0.1) + self-distillation"),
                        ("post_uniform", "uniform + self-distillation")]:
        e = ev.get(f"{name}.in")
        if not e:
            md.append(f"| {label} | - | - | - | - | - |")
            continue
        exits = [ppl(x["perplexity"]) for x in e["exits"]]
        o = e["oracle"]
        md.append(f"| {label} | " + " | ".join(exits) + f" | {o['mean_loops']:.2f} | "
                  + ", ".join(f"{f:.2f}" for f in o["fractions"]) + " |")
        rows.append({"post": name, "set": "in", "exits": e["exits"], "oracle": o,
                     "confidence": e.get("confidence")})
    if os.path.exists(path("evals", "post_tradeoff.png")):
        md.append("\nThe confidence-exit trade-offs compared: evals/post_tradeoff.png "
                  "(rrt plot-exits)")
    for name in ("post_aggressive", "post_uniform"):
        e = ev.get(f"{name}.in")
        if not e or not e.get("confidence"):
            continue
        md.append(f"\nConfidence exits, {name[5:]}: threshold -> mean loops, perplexity, "
                  "agreement with the final exit\n")
        md.append("| threshold | mean loops | perplexity | agreement |")
        md.append("|---:|---:|---:|---:|")
        for c in e["confidence"]:
            md.append(f"| {c['threshold']} | {c['mean_loops']:.2f} | {ppl(c['perplexity'])} | "
                      f"{c['agreement']:.3f} |")

    md.append("\n## Learning-rate sweep (arm 2, in-domain held-out)\n")
    lr_choice = open(path("lr", "lr.txt")).read().strip() if os.path.exists(path("lr", "lr.txt")) \
        else "-"
    swept = sorted(k for k in ev if re.fullmatch(r"lr_lr-.*\.in", k))
    given = path("lr", "given.txt")
    if not swept and os.path.exists(given):
        # A rate given (LR=) because the sweep's evaluations are not here: say so rather than
        # leave the section empty as if no sweep had run.
        md.append(f"- no sweep in this study's files: the rate {open(given).read().strip()} was "
                  "given (LR=, lr/given.txt); a sweep that ran before the record existed is "
                  "quoted in docs/results.md")
    for name in swept:
        lr = name[len("lr_lr-"):-len(".in")]
        e = ev[name]
        md.append(f"- lr {lr}: perplexity {ppl(e['perplexity'])}" +
                  (" (chosen)" if lr == lr_choice else ""))
        rows.append({"lr": lr, "loss": e["loss"], "perplexity": e["perplexity"]})

    md.append("\n## Throughput (median tokens/s of each arm's logged steps; the teacher's "
              "forward included where the arm distils)\n")
    for arm, name in ARMS:
        r = tokens_per_s(os.path.dirname(path("arms", arm, "metrics.jsonl")))
        md.append(f"- {name}: {r:.0f} tokens/s" if r else f"- {name}: -")
        if r:
            rows.append({"arm": arm, "tokens_per_s": r})
    serve = path("evals", "serve_bench.md")
    if os.path.exists(serve):
        md.append("\n## Serving with confidence exits (rrt serve-bench, aggressive post-trained)\n")
        md.append(open(serve).read())

    for d in [out] + ([record] if record else []):
        with open(os.path.join(d, "results.md"), "w") as f:
            f.write("# SmolLM2-135M uptraining study\n\n" + "\n".join(md) + "\n")
        with open(os.path.join(d, "results.jsonl"), "w") as f:
            for r in rows:
                f.write(json.dumps(r) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
