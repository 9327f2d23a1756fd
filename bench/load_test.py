#!/usr/bin/env python3
"""Load test of rrt serve: Poisson arrivals, mixed prompt and output lengths, per scheduler.

For each scheduler it starts `rrt serve CKPT --port 0 --scheduler S` on 127.0.0.1 (and nowhere
else), then for each arrival rate sends --requests streamed greedy completions whose arrival
times are a seeded Poisson process (exponential gaps) and whose prompt and output lengths are
uniform in the given ranges, each from its own thread (a client that waits for nothing else).
Per (scheduler, rate) it reports: completed requests, output tokens/s over the run (first
arrival to last token), mean loops per decoded token (the exit_loops the server reports), and
percentiles of time to first token (send to first streamed token), time per output token
(a request's (last - first token time) / (tokens - 1), vLLM's TPOT), inter-token latency (gaps
between streamed chunks, per token) and end-to-end latency. Output: a markdown table on stdout
(--json FILE: the results as JSON too), progress on stderr. A request the server refuses with
429 (its queue full: overload) counts as sent, not completed ("429" column).

Bounded: --requests per run, every run stops sending after --max-seconds and every request has
a timeout; the server is stopped with SIGTERM (SIGKILL after 10 s). Python 3 standard library
only. Usage:
  bench/load_test.py build/rrt runs/demo/exits_aggressive/step_00000100.h5 \
      --rates 4,8,16 --requests 32 --schedulers depth,sequence,static
"""
import argparse
import http.client
import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import load_targets  # noqa: E402  (bench/load_targets.py, beside this file)

# Prompt text: slices of this passage (any tokenizer encodes text).
PASSAGE = (
    "Once upon a time there was a little girl who lived in a village near the forest. "
    "Whenever she went out, the little girl wore a red riding cloak, so everyone in the village "
    "called her Little Red Riding Hood. One morning, she asked her mother if she could go to "
    "visit her grandmother as it had been a while since they had seen each other. The old man "
    "sat by the fire and told the children a story about the sea, the ships and the stars. "
)


def percentile(xs, p):
    if not xs:
        return float("nan")
    s = sorted(xs)
    k = (len(s) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def parse_range(s):
    a, _, b = s.partition("-")
    return int(a), int(b or a)


class Server:
    """rrt serve on 127.0.0.1 with any free port, read from its start line."""

    def __init__(self, rrt, ckpt, scheduler, max_batch, extra):
        cmd = [rrt, "serve", ckpt, "--host", "127.0.0.1", "--port", "0", "--scheduler",
               scheduler, "--max-batch", str(max_batch)] + extra
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     text=True)
        self.port = None
        deadline = time.time() + 120
        while time.time() < deadline:
            line = self.proc.stderr.readline()
            if not line:
                break
            m = re.search(r"on http://127\.0\.0\.1:(\d+)", line)
            if m:
                self.port = int(m.group(1))
                break
        if self.port is None:
            self.stop()
            raise RuntimeError("rrt serve did not print its port: " + " ".join(cmd))
        # Keep draining stderr so the server never blocks on a full pipe.
        threading.Thread(target=lambda: [None for _ in self.proc.stderr], daemon=True).start()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def one_request(port, body, timeout, t_send, rec):
    """Streams one completion; rec gets ttft, token times, tokens, loops (or error)."""
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        conn.request("POST", "/v1/completions", body=json.dumps(body),
                     headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        if resp.status != 200:
            rec["error"] = "HTTP %d %s" % (resp.status, resp.read()[:200])
            return
        times, loops = [], []
        for raw in resp:
            line = raw.decode("utf-8", "replace").strip()
            if not line.startswith("data: "):
                continue
            data = line[6:]
            if data == "[DONE]":
                break
            chunk = json.loads(data)
            if "error" in chunk:
                rec["error"] = str(chunk["error"])
                break
            now = time.time()
            c = chunk["choices"][0]
            n = len(c.get("token_ids", []))
            times += [now] * n
            loops += c.get("exit_loops", [])
        conn.close()
        rec["times"] = [t - t_send for t in times]
        rec["loops"] = loops
    except Exception as e:  # a timeout or a closed connection: counted as failed
        rec["error"] = repr(e)


def run_rate(port, rate, args, rng):
    plo, phi = parse_range(args.prompt_len)
    olo, ohi = parse_range(args.output_len)
    gaps, t = [], 0.0
    for _ in range(args.requests):
        t += rng.expovariate(rate)
        gaps.append(t)
    bodies = []
    for _ in range(args.requests):
        n = rng.randint(plo, phi)
        start = rng.randrange(len(PASSAGE) - n)
        bodies.append({"prompt": PASSAGE[start:start + n], "max_tokens": rng.randint(olo, ohi),
                       "temperature": 0, "stream": True, **args.exit_fields})
    recs = [dict() for _ in bodies]
    threads = []
    t0 = time.time()
    for i, (at, body) in enumerate(zip(gaps, bodies)):
        if at > args.max_seconds:
            break
        delay = t0 + at - time.time()
        if delay > 0:
            time.sleep(delay)
        recs[i]["send"] = time.time()
        th = threading.Thread(target=one_request,
                              args=(port, body, args.timeout, recs[i]["send"], recs[i]))
        th.start()
        threads.append(th)
    for th in threads:
        th.join(args.timeout + 5)
    sent = [r for r in recs if "send" in r]
    ok = [r for r in sent if "error" not in r and r.get("times")]
    ttft = [r["times"][0] for r in ok]
    e2e = [r["times"][-1] for r in ok]
    tpot = [(r["times"][-1] - r["times"][0]) / (len(r["times"]) - 1) for r in ok
            if len(r["times"]) > 1]
    itl = []
    for r in ok:  # a chunk's gap shared by the tokens it carries
        ts = r["times"]
        i = 1
        while i < len(ts):
            j = i
            while j < len(ts) and ts[j] == ts[i]:
                j += 1
            itl += [(ts[i] - ts[i - 1]) / (j - i)] * (j - i)
            i = j
    tokens = sum(len(r["times"]) for r in ok)
    decoded = [x for r in ok for x in r["loops"][1:]]
    span = max((r["send"] + r["times"][-1] for r in ok), default=t0) - t0
    return {
        "rate": rate, "sent": len(sent), "completed": len(ok),
        "rejected_429": sum(1 for r in sent if r.get("error", "").startswith("HTTP 429")),
        "errors": sorted({r["error"][:80] for r in sent if "error" in r}),
        "seconds": span, "output_tokens": tokens,
        "tokens_per_s": tokens / span if span > 0 else 0.0,
        "requests_per_s": len(ok) / span if span > 0 else 0.0,
        "mean_loops": sum(decoded) / len(decoded) if decoded else float("nan"),
        **{"ttft_p%d" % p: percentile(ttft, p) for p in (50, 90, 99)},
        **{"tpot_p%d" % p: percentile(tpot, p) for p in (50, 90, 99)},
        **{"itl_p%d" % p: percentile(itl, p) for p in (50, 99)},
        **{"e2e_p%d" % p: percentile(e2e, p) for p in (50, 99)},
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("rrt")
    ap.add_argument("checkpoint")
    ap.add_argument("--schedulers", default="depth,sequence,static")
    ap.add_argument("--rates", default="4,8,16", help="arrival rates, requests/s")
    ap.add_argument("--requests", type=int, default=32, help="requests per run (at most 1000)")
    ap.add_argument("--prompt-len", default="8-64", help="prompt characters, uniform")
    ap.add_argument("--output-len", default="16-96", help="max_tokens, uniform")
    ap.add_argument("--max-batch", type=int, default=8)
    ap.add_argument("--max-seconds", type=float, default=60, help="no arrivals after this")
    ap.add_argument("--timeout", type=float, default=120, help="per request, seconds")
    ap.add_argument("--exit", default="none", help="none, confidence:T, saturation:T or classifier:T (the "
                    "last with --serve-arg=--exit-classifier=FILE)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--serve-arg", action="append", default=[],
                    help="extra rrt serve argument (repeatable), e.g. --serve-arg=--kv=copy")
    ap.add_argument("--json", metavar="FILE", help="also write the results as JSON to FILE")
    ap.add_argument("--targets", metavar="MS,...",
                    help="TTFT p90 targets (ms): also print each scheduler's capacity at each "
                    "(bench/load_targets.py)")
    ap.add_argument("--theory", action="store_true",
                    help="with --targets: run rrt serve-bench (same checkpoint, exit rule, batch) "
                    "for the saturated theory beside them")
    ap.add_argument("--theory-arg", action="append", default=[],
                    help="extra rrt serve-bench argument (repeatable), e.g. --theory-arg=--data=DIR")
    args = ap.parse_args()
    if not 1 <= args.requests <= 1000:
        ap.error("--requests must be in 1..1000")
    rule, _, t = args.exit.partition(":")
    args.exit_fields = {"exit": rule}
    if t:
        args.exit_fields["threshold"] = float(t)
    rates = [float(x) for x in args.rates.split(",")]
    results = []
    schedulers = args.schedulers.split(",")
    # One server per scheduler, all started first (an idle server waits without using the CPU),
    # then each rate runs on every scheduler in turn: on a machine whose load drifts, the
    # schedulers compared at a rate ran minutes apart at most, not a whole sweep apart.
    servers = {}
    try:
        for sched in schedulers:
            servers[sched] = Server(args.rrt, args.checkpoint, sched, args.max_batch,
                                    args.serve_arg)
        for rate in rates:
            for sched in schedulers:
                rng = random.Random(args.seed * 1000 + int(rate * 10))  # same traffic per scheduler
                print("load_test: %s at %g requests/s ..." % (sched, rate), file=sys.stderr)
                r = run_rate(servers[sched].port, rate, args, rng)
                r["scheduler"] = sched
                results.append(r)
                print("load_test:   %d/%d completed, %.1f tokens/s" %
                      (r["completed"], r["sent"], r["tokens_per_s"]), file=sys.stderr)
    finally:
        for srv in servers.values():
            srv.stop()
    results.sort(key=lambda r: (schedulers.index(r["scheduler"]), r["rate"]))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"settings": vars(args), "results": results}, f, indent=1)
    ms = lambda x: "%.1f" % (1000 * x)
    print("| scheduler | rate (req/s) | done | 429 | tokens/s | mean loops | TTFT p50 / p90 / p99 ms "
          "| TPOT p50 / p90 / p99 ms | ITL p50 / p99 ms | latency p50 / p99 s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        print("| %s | %g | %d/%d | %d | %.1f | %.2f | %s / %s / %s | %s / %s / %s | %s / %s | %.2f / %.2f |"
              % (r["scheduler"], r["rate"], r["completed"], r["sent"], r["rejected_429"],
                 r["tokens_per_s"],
                 r["mean_loops"], ms(r["ttft_p50"]), ms(r["ttft_p90"]), ms(r["ttft_p99"]),
                 ms(r["tpot_p50"]), ms(r["tpot_p90"]), ms(r["tpot_p99"]), ms(r["itl_p50"]),
                 ms(r["itl_p99"]), r["e2e_p50"], r["e2e_p99"]))
        if r["errors"]:
            print("load_test: %s at %g: %s" % (r["scheduler"], r["rate"], "; ".join(r["errors"])),
                  file=sys.stderr)
    if args.targets:
        theory = None
        if args.theory:
            print("load_test: rrt serve-bench for the theory ...", file=sys.stderr)
            bench = load_targets.run_theory(args.rrt, args.checkpoint, args.exit, args.max_batch,
                                            min(args.requests, 64), args.theory_arg)
            theory = load_targets.theory_ratios(bench)
        print()
        print(load_targets.table(results, [float(x) for x in args.targets.split(",")], theory))


if __name__ == "__main__":
    main()
