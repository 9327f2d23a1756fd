#!/usr/bin/env python3
"""How fast a relaxed model's LoRA products move against the tied weights they correct.

    python3 tools/lora_update_ratio.py CHECKPOINT.h5 START.h5

CHECKPOINT is a training checkpoint of a relaxed model (values and AdamW moments), START the
weights it started from (rrt convert's output). For every projection kind, the median over
all unrolled positions (loop k, block layer b) of:

  tied moved    |W_b - W_b(start)| / |W_b(start)|
  LoRA moved    |B A - B A(start)| / |W_b(start)|
  tied step     |u(W_b)| / |W_b|                    u = m / (sqrt(v) + 1e-8): Adam's step per
  LoRA step     |u(B) A + B u(A)| / |W_b|           unit learning rate, to first order
  step ratio    LoRA step / tied step

Norms are Frobenius. The step columns use the moments as stored (bias correction is close to 1
after the first few hundred steps). Adam moves every element by about the learning rate
whatever its size, so with the paper's SVD split (all singular values in B) the B u(A) term
is large; `rrt convert --lora-init svd_balanced` splits them evenly (docs/method.md).
Needs numpy and h5py (pip); nothing in rrt's tests uses it.
"""
import argparse
import re

import h5py
import numpy as np

PROJ = {"q": "attn.q", "k": "attn.k", "v": "attn.v", "o": "attn.o",
        "gate": "mlp.gate", "up": "mlp.up", "down": "mlp.down"}


def adam_step(moments, name):
    return moments["m"][name][()] / (np.sqrt(moments["v"][name][()]) + 1e-8)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoint")
    ap.add_argument("start")
    args = ap.parse_args()
    with h5py.File(args.checkpoint, "r") as ck, h5py.File(args.start, "r") as st:
        now, start, moments = ck["params"], st["params"], ck["optim"]
        positions = sorted({tuple(int(x) for x in m.groups())
                            for m in (re.fullmatch(r"lora\.(\d+)\.(\d+)\.q\.A", n) for n in now)
                            if m})
        if not positions:
            raise SystemExit(f"{args.checkpoint}: no LoRA (lora.K.B.q.A): not a relaxed model")
        print(f"{len(positions)} positions; medians over them")
        print("| kind | tied moved | LoRA moved | tied step | LoRA step | step ratio |")
        print("|---|---:|---:|---:|---:|---:|")
        norm = np.linalg.norm
        for kind, path in PROJ.items():
            if f"lora.0.0.{kind}.A" not in now:
                continue
            rows = []
            for loop, b in positions:
                w_name, key = f"block.{b}.{path}.weight", f"lora.{loop}.{b}.{kind}"
                W0, W = start[w_name][()], now[w_name][()]
                A0, B0 = start[key + ".A"][()], start[key + ".B"][()]
                A, B = now[key + ".A"][()], now[key + ".B"][()]
                tied_step = norm(adam_step(moments, w_name)) / norm(W)
                lora_step = norm(adam_step(moments, key + ".B") @ A +
                                 B @ adam_step(moments, key + ".A")) / norm(W)
                rows.append((norm(W - W0) / norm(W0), norm(B @ A - B0 @ A0) / norm(W0),
                             tied_step, lora_step, lora_step / tied_step))
            med = np.median(np.array(rows), axis=0)
            print(f"| {kind} | " + " | ".join(f"{x:.3f}" for x in med[:4]) +
                  f" | {med[4]:.2f} |")


if __name__ == "__main__":
    main()
