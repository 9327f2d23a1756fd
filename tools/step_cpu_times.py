#!/usr/bin/env python3
"""Runs `rrt train ...` and records the CPU seconds each training step used.

Usage: tools/step_cpu_times.py OUT.jsonl [--perf PERF.data [PERF_ARGS]] -- rrt train CONFIG ...

--perf: `perf record PERF_ARGS -p <pid> -o PERF.data` attached when step 1's progress line
appears and stopped at the last step's, so the profile holds steps 2..N and nothing of the
start (loading, conversions) or the end (the checkpoint). PERF_ARGS: one string, split on spaces
(default "-F 250").

The command's output passes through unchanged. At each progress line ("step N/M | ...", one a
step with log.every=1; rrt flushes each) the process's user + system CPU time (all its threads,
/proc/<pid>/stat) and the wall clock are read, and OUT.jsonl gets {"step", "wall_s", "cpu_s"}
(both since the command started); a last line {"maxrss_gib", "cpu_s", "wall_s", "rc"} follows
at exit. On a machine shared with other processes a step's CPU seconds move much less with
their load than its wall time does: time slices taken by others are not counted, while the
step's own work, OpenMP waits in passive mode excepted, is.
"""
import json
import os
import re
import resource
import signal
import subprocess
import sys
import time

STEP = re.compile(rb"^step\s+(\d+)/\d+ \|")


def cpu_seconds(pid, tick):
    with open(f"/proc/{pid}/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / tick  # utime, stime (fields 14, 15)


def main():
    args = sys.argv[1:]
    if "--" not in args or args.index("--") < 1:
        sys.exit(__doc__)
    sep = args.index("--")
    opts, cmd = args[1:sep], args[sep + 1:]
    perf_out = perf_args = None
    if opts[:1] == ["--perf"]:
        perf_out = opts[1]
        perf_args = (opts[2] if len(opts) > 2 else "-F 250").split()
    elif opts:
        sys.exit(__doc__)
    total = None
    if perf_out:  # the step count, to stop perf at the last step's line
        for a in cmd:
            if a.startswith("train.steps="):
                total = int(a.split("=", 1)[1])
    tick = os.sysconf("SC_CLK_TCK")
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE)
    perf = None
    with open(sys.argv[1], "w") as out:
        for line in proc.stdout:
            m = STEP.match(line)
            if m and perf and int(m.group(1)) == total:
                perf.send_signal(signal.SIGINT)
                perf.wait()
                perf = None
            if m and perf_out and int(m.group(1)) == 1 and total and total > 1:
                perf = subprocess.Popen(["perf", "record", "-q", *perf_args, "-o", perf_out,
                                         "-p", str(proc.pid)])
                perf_out = None
            if m:
                try:
                    cpu = cpu_seconds(proc.pid, tick)
                except OSError:
                    cpu = None
                out.write(json.dumps({"step": int(m.group(1)), "wall_s": time.monotonic() - t0,
                                      "cpu_s": cpu}) + "\n")
                out.flush()
            sys.stdout.buffer.write(line)
            sys.stdout.buffer.flush()
        rc = proc.wait()
        if perf:
            perf.send_signal(signal.SIGINT)
            perf.wait()
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        out.write(json.dumps({"maxrss_gib": usage.ru_maxrss / 2**20,
                              "cpu_s": usage.ru_utime + usage.ru_stime,
                              "wall_s": time.monotonic() - t0, "rc": rc}) + "\n")
    sys.exit(rc)


if __name__ == "__main__":
    main()
