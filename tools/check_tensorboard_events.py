#!/usr/bin/env python3
"""Reads rrt's TensorBoard event files back with TensorBoard's own reader and compares them with
metrics.jsonl: every number of every line must be there, at its step, as a scalar.

    pip install tensorboard          # here, not in the test suite (ctest reads the records in C++)
    tools/check_tensorboard_events.py RUN_DIR [--rrt build/rrt]

Without an existing RUN_DIR holding events it first trains a tiny run there with the given rrt
binary (the byte tokenizer on a few KB of generated text), then deletes its last checkpoint and
resumes it, so that steps 7..12 are logged twice, in two event files: each (step, tag) must still
hold one value, the resumed one (the SessionLog START record rrt writes makes TensorBoard drop the
first file's points from the resumed step on). Exits 0 and prints "PASS" when every value
matches; 1 with the differences otherwise.
"""
import argparse
import glob
import json
import math
import os
import subprocess
import sys
import tempfile
import time


def train_tiny_run(rrt, run_dir):
    work = tempfile.mkdtemp(prefix="rrt_tb_check_")
    text = os.path.join(work, "text.txt")
    with open(text, "w") as f:
        for d in range(200):
            f.write(f"Document {d}: the loop runs the shared block again and again.\n")
    shards = os.path.join(work, "shards")
    subprocess.run([rrt, "prepare", "--out", shards, text], check=True)
    config = os.path.join(work, "tiny.yaml")
    with open(config, "w") as f:
        f.write(
            "model: {n_layers: 4, vocab: 257, d_model: 32, n_heads: 4, n_kv_heads: 2, ffn: 64, "
            "max_seq_len: 64}\nrecursion: {loops: 2}\nlora: {rank: 4}\n"
            f"data: {{path: {shards}, val_fraction: 0.1}}\n"
            f"train: {{steps: 12, micro_batch: 4, seq_len: 64, eval_every: 6, eval_batches: 2, "
            f"run_dir: {run_dir}}}\n"
            "checkpoint: {every: 6, keep_last: 3}\n"
            "early_exit: {exits: all}\nlog: {every: 3}\n")
    subprocess.run([rrt, "train", config], check=True)
    os.remove(os.path.join(run_dir, "step_00000012.h5"))
    time.sleep(1.1)  # event files are read in name order, and the name holds whole seconds
    subprocess.run([rrt, "train", config], check=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir")
    ap.add_argument("--rrt", default="build/rrt")
    args = ap.parse_args()
    try:
        from tensorboard.backend.event_processing import event_accumulator
    except ImportError:
        sys.exit("the tensorboard package is missing: pip install tensorboard")

    if not glob.glob(os.path.join(args.run_dir, "events.out.tfevents.*")):
        train_tiny_run(args.rrt, args.run_dir)

    acc = event_accumulator.EventAccumulator(args.run_dir, size_guidance={"scalars": 0})
    acc.Reload()
    tags = acc.Tags()["scalars"]
    got = {}
    errors = []
    for tag in tags:
        for e in acc.Scalars(tag):
            if (e.step, tag) in got:
                errors.append(f"{tag} at step {e.step} twice: {got[(e.step, tag)]}, {e.value}")
            got[(e.step, tag)] = e.value

    expected = 0
    with open(os.path.join(args.run_dir, "metrics.jsonl")) as f:
        for line in f:
            j = json.loads(line)
            step = j["step"]
            for key, value in j.items():
                if key == "step" or not isinstance(value, (int, float)):
                    continue
                tag = "val/" + key[4:] if key.startswith("val_") else "train/" + key
                expected += 1
                if (step, tag) not in got:
                    errors.append(f"missing {tag} at step {step}")
                elif not math.isclose(got[(step, tag)], value, rel_tol=1e-6, abs_tol=1e-30):
                    errors.append(f"{tag} at step {step}: {got[(step, tag)]} != {value}")
    if expected == 0:
        errors.append("metrics.jsonl holds no values")
    for e in errors:
        print(e)
    print(f"{len(tags)} tags, {expected} values compared with metrics.jsonl: "
          + ("PASS" if not errors else "FAIL"))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
