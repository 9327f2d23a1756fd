#!/usr/bin/env python3
"""Equal-latency comparison of rrt serve's schedulers, beside the serve-bench theory.

Used by bench/load_test.py (--targets, --theory); runnable alone on its --json output:
  bench/load_targets.py RESULTS.json --targets 100,300,1000 [--theory SERVE_BENCH.json]

A scheduler meets a time-to-first-token target at a rate when every request of that run
completed (no 429, no error) and its TTFT p90 is within the target. Its capacity at the target
is the highest tested rate up to which it met it at every rate, with that run's output tokens/s; the table gives the
ratios of depth-wise batching's capacity to static and sequence-wise batching's. The load test
sends the same traffic to each scheduler at a rate, so below capacity the three deliver the same
tokens/s and differ in latency only: what separates them is how far the rate can rise before
queueing breaks the target. With discrete rates the capacity is known to the grid's spacing.

The theory (`rrt serve-bench --json`, docs/inference.md) is the saturated case: every request
waiting at the start, block time per scheduler from the measured exit distribution and the
fitted per-call cost c(n) = a + b n. Its ratio is what the capacity ratio approaches as the
target loosens (then only throughput limits the rate); under tight targets queueing dominates.
"""
import argparse
import json
import subprocess


def capacity(results, scheduler, target_s):
    """(rate, tokens/s) of the highest rate up to which `scheduler` met the TTFT p90 target at
    every tested rate: a rate that met it above one that failed is noise, not capacity."""
    best = None
    for r in sorted((r for r in results if r["scheduler"] == scheduler), key=lambda r: r["rate"]):
        if r["completed"] != r["sent"] or r["errors"] or not r["ttft_p90"] <= target_s:
            break
        best = (r["rate"], r["tokens_per_s"])
    return best


def theory_ratios(serve_bench):
    """{exit setting: (static / depth, sequence / depth)} of serve-bench's theoretical block times."""
    out = {}
    for setting in serve_bench["results"]:
        block = {s["scheduler"]: s["theory_block_seconds"] for s in setting["schedulers"]}
        if {"static", "sequence", "depth"} <= block.keys() and block["depth"] > 0:
            out[setting["exit"]] = (block["static"] / block["depth"],
                                    block["sequence"] / block["depth"])
    return out


def run_theory(rrt, checkpoint, exit_rule, max_batch, requests, extra):
    """rrt serve-bench on the same checkpoint, exit rule and batch: the saturated theory."""
    cmd = [rrt, "serve-bench", checkpoint, "--exits", exit_rule, "--max-batch", str(max_batch),
           "--requests", str(requests), "--schedulers", "static,sequence,depth", "--json"] + extra
    return json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)


def table(results, targets_ms, theory=None):
    """Markdown: per TTFT p90 target, each scheduler's capacity and depth-wise's ratios."""
    fmt = lambda c: "%g req/s, %.1f tok/s" % c if c else "none met it"
    ratio = lambda a, b: "%.2fx" % (a[0] / b[0]) if a and b else "-"
    lines = ["| TTFT p90 target | depth | sequence | static | depth / static (rate) "
             "| depth / sequence (rate) | theory: depth / static, depth / sequence (saturated) |",
             "|---:|---|---|---|---:|---:|---|"]
    th = "-"
    if theory:
        th = "; ".join("%s: %.2fx, %.2fx" % (k, s, q) for k, (s, q) in theory.items())
    for t in targets_ms:
        c = {s: capacity(results, s, t / 1000.0) for s in ("depth", "sequence", "static")}
        lines.append("| %g ms | %s | %s | %s | %s | %s | %s |" % (
            t, fmt(c["depth"]), fmt(c["sequence"]), fmt(c["static"]),
            ratio(c["depth"], c["static"]), ratio(c["depth"], c["sequence"]), th))
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("results", help="bench/load_test.py --json output")
    ap.add_argument("--targets", default="100,300,1000", help="TTFT p90 targets, ms")
    ap.add_argument("--theory", metavar="FILE", help="rrt serve-bench --json output")
    args = ap.parse_args()
    with open(args.results) as f:
        results = json.load(f)["results"]
    theory = None
    if args.theory:
        with open(args.theory) as f:
            theory = theory_ratios(json.load(f))
    print(table(results, [float(x) for x in args.targets.split(",")], theory))


if __name__ == "__main__":
    main()
