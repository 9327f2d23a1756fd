#!/usr/bin/env python3
"""Generate the distillation / early-exit parity fixtures for rrt's C++ tests.

The models are built by tools/make_fixtures.py (imported, not copied): a
student Relaxed Recursive Transformer (B=2 shared layers x K=3 loops, cycle
sharing, LoRA r=2) and a teacher, a plain 3-layer model of another width
(D=24 against the student's 16) with a tied head. The loss is the one of
ops/exit_loss.h and docs/distillation.md, written here independently with
autograd in float64:

    z_k   = head(final_norm(residual after loop k)),  k = 1, 2, 3 (all exits)
    CE_k  = cross_entropy(z_k, targets)                (ignore index -1)
    KD_k  = tau^2 * Dv(softmax(z_t / tau), softmax(z_k / tau))
    SD_k  = KL(stopgrad(softmax(z_K)) || softmax(z_k)),  k < K
    loss  = sum_k w_k [(1 - alpha) CE_k + alpha KD_k + SD_k],  w = aggressive(0.1)

with tau = 2, alpha = 0.3, each term averaged over the rows whose target is
not ignored, for the three divergences (forward_kl, reverse_kl, tv), and once
more (case head_lora, forward_kl) with a rank-2 LoRA on the head of each
intermediate exit: z_k = h W^T + (h A_k^T) B_k^T, exit.{k}.head_lora.{A,B}.

Files (tests/fixtures/):
  kd_teacher.safetensors   the teacher's parameters and its config (the same
                           layout as make_fixtures.py's, so load_fixture reads it)
  kd_student.safetensors   the student's parameters (and the head adapters of
                           case head_lora), inputs, targets, the KD settings in
                           the config, and per case <case> (forward_kl,
                           reverse_kl, tv, head_lora): <case>.loss [1],
                           <case>.ce / .kd / .sd [3] (per exit),
                           <case>.grad.<param> for every parameter of its model

    python3 tools/make_kd_fixtures.py              # writes tests/fixtures/kd_*
    python3 tools/make_kd_fixtures.py --out /tmp/fx
"""

import argparse
import json
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_fixtures as mf  # noqa: E402

COMMON = dict(vocab=64, norm_eps=1e-5, rope_theta=10000.0, batch=2, seq_len=9)
STUDENT = dict(COMMON, d_model=16, n_heads=2, n_kv_heads=1, head_dim=8, ffn=32,
               block_layers=2, loops=3, sharing="cycle", lora_rank=2,
               lora_alpha=4.0, tied_head=False, seed=21)
TEACHER = dict(COMMON, d_model=24, n_heads=3, n_kv_heads=1, head_dim=8, ffn=40,
               block_layers=3, loops=1, sharing="cycle", lora_rank=0,
               lora_alpha=0.0, tied_head=True, seed=22)
KD = dict(temperature=2.0, alpha=0.3, exits=[1, 2, 3], weights=[0.1, 0.1, 1.0],
          weights_rule="aggressive(0.1)", self_distill=True)
DIVERGENCES = ("forward_kl", "reverse_kl", "tv")
# case -> (divergence, with head adapters on the intermediate exits)
CASES = {"forward_kl": ("forward_kl", False), "reverse_kl": ("reverse_kl", False),
         "tv": ("tv", False), "head_lora": ("forward_kl", True)}
HEAD_LORA_RANK = 2


def exit_logits(cfg, p, inputs, exits):
    """Logits [N, T, V] of each exit: the final norm and head after loop k, plus the exit's
    head adapter (scale 1) where p has one."""
    stream = mf.residual_stream(cfg, p, inputs)
    head = p["embed.weight"] if cfg["tied_head"] else p["head.weight"]
    B = cfg["block_layers"]
    out = []
    for k in exits:
        h = mf.rmsnorm(stream[k * B - 1], p["final_norm.weight"], cfg["norm_eps"])
        z = h @ head.T
        if f"exit.{k}.head_lora.A" in p:
            z = z + (h @ p[f"exit.{k}.head_lora.A"].T) @ p[f"exit.{k}.head_lora.B"].T
        out.append(z)
    return out


def head_adapters():
    """exit.{k}.head_lora.{A,B} for the intermediate exits, B non-zero so that they matter."""
    g = torch.Generator().manual_seed(23)
    D, V, R = STUDENT["d_model"], STUDENT["vocab"], HEAD_LORA_RANK
    p = {}
    for k in KD["exits"][:-1]:
        p[f"exit.{k}.head_lora.A"] = torch.randn(R, D, generator=g, dtype=torch.float64) / D ** 0.5
        p[f"exit.{k}.head_lora.B"] = torch.randn(V, R, generator=g, dtype=torch.float64) * 0.5
    return {n: t.float().double() for n, t in p.items()}


def divergence(name, lp, lq):
    """Per-row Dv(p, q) from log-probabilities [rows, V]."""
    p, q = lp.exp(), lq.exp()
    if name == "forward_kl":
        return (p * (lp - lq)).sum(-1)
    if name == "reverse_kl":
        return (q * (lq - lp)).sum(-1)
    if name == "tv":
        return 0.5 * (p - q).abs().sum(-1)
    raise ValueError(name)


def kd_loss(p, teacher_logits, inputs, targets, div):
    """(total, [CE_k], [KD_k], [SD_k]) for the student parameters p."""
    tau, alpha = KD["temperature"], KD["alpha"]
    valid = (targets != mf.IGNORE_INDEX).reshape(-1)
    V = STUDENT["vocab"]
    rows = lambda z: z.reshape(-1, V)[valid]
    zs = [rows(z) for z in exit_logits(STUDENT, p, inputs, KD["exits"])]
    t = targets.reshape(-1)[valid]
    lp = F.log_softmax(rows(teacher_logits) / tau, -1)
    final = F.log_softmax(zs[-1], -1).detach()
    ce, kd, sd = [], [], []
    for k, z in enumerate(zs):
        ce.append(F.cross_entropy(z, t))
        kd.append(tau * tau * divergence(div, lp, F.log_softmax(z / tau, -1)).mean())
        if KD["self_distill"] and k < len(zs) - 1:
            sd.append(divergence("forward_kl", final, F.log_softmax(z, -1)).mean())
        else:
            sd.append(torch.zeros((), dtype=torch.float64))
    total = sum(w * ((1 - alpha) * c + alpha * d + s)
                for w, c, d, s in zip(KD["weights"], ce, kd, sd))
    return total, ce, kd, sd


def model_config(cfg):
    keys = ("vocab", "d_model", "n_heads", "n_kv_heads", "head_dim", "ffn", "norm_eps",
            "rope_theta", "tied_head", "block_layers", "loops", "sharing", "lora_rank",
            "lora_alpha", "batch", "seq_len", "seed")
    c = {k: cfg[k] for k in keys}
    # What tests/model/fixture.h reads besides the model (no optimizer steps here).
    c.update(ignore_index=mf.IGNORE_INDEX, adamw=dict(mf.ADAMW), steps=0)
    return c


def build():
    teacher = mf.init_params(TEACHER)
    student = mf.init_params(STUDENT)
    inputs, targets = mf.make_batch(STUDENT)  # drawn after the student's parameters
    f32 = lambda x: x.detach().to(torch.float32).numpy()

    with torch.no_grad():
        teacher_logits = mf.forward(TEACHER, teacher, inputs)
    t_tensors = {n: f32(v) for n, v in teacher.items()}
    t_meta = {"config": json.dumps(model_config(TEACHER), sort_keys=True)}

    adapters = head_adapters()
    s_tensors = {n: f32(v) for n, v in student.items()}
    s_tensors.update({n: f32(v) for n, v in adapters.items()})
    s_tensors["inputs"] = inputs.to(torch.int32).numpy()
    s_tensors["targets"] = targets.to(torch.int32).numpy()
    summary = {}
    for case, (div, with_adapters) in CASES.items():
        params = dict(student, **adapters) if with_adapters else student
        p = {n: v.clone().requires_grad_(True) for n, v in params.items()}
        total, ce, kd, sd = kd_loss(p, teacher_logits, inputs, targets, div)
        total.backward()
        s_tensors[f"{case}.loss"] = np.array([total.item()], dtype=np.float32)
        for name, terms in (("ce", ce), ("kd", kd), ("sd", sd)):
            s_tensors[f"{case}.{name}"] = np.array([x.item() for x in terms], dtype=np.float32)
        for n, v in p.items():
            s_tensors[f"{case}.grad.{n}"] = f32(v.grad)
        summary[case] = total.item()
    config = model_config(STUDENT)
    config["kd"] = dict(KD, divergences=list(DIVERGENCES), head_lora_rank=HEAD_LORA_RANK)
    s_meta = {"config": json.dumps(config, sort_keys=True)}
    return (t_tensors, t_meta), (s_tensors, s_meta), summary


def self_check(teacher_path, student_path):
    """Reload both files: the stored losses come back, and every gradient is finite, non-zero."""
    t, _ = mf.read_safetensors(teacher_path)
    s, _ = mf.read_safetensors(student_path)
    d64 = lambda a: torch.from_numpy(a.astype(np.float64))
    tp = {n: d64(a) for n, a in t.items()}
    every = {n: d64(a) for n, a in s.items() if "." in n and n.split(".")[0] not in CASES}
    inputs = torch.from_numpy(s["inputs"].astype(np.int64))
    targets = torch.from_numpy(s["targets"].astype(np.int64))
    teacher_logits = mf.forward(TEACHER, tp, inputs)
    for case, (div, with_adapters) in CASES.items():
        sp = {n: v for n, v in every.items() if with_adapters or not n.startswith("exit.")}
        total = kd_loss(sp, teacher_logits, inputs, targets, div)[0].item()
        stored = float(s[f"{case}.loss"][0])
        assert abs(total - stored) <= 1e-6 * abs(stored), f"{case}: {total} vs {stored}"
        for n in sp:
            g = s[f"{case}.grad.{n}"]
            assert np.all(np.isfinite(g)) and np.any(g != 0), f"{case}.grad.{n}"
        assert f"{case}.grad.exit.1.head_lora.A" in s or not with_adapters, case
        assert np.all(s[f"{case}.kd"] > 0) and s[f"{case}.sd"][-1] == 0, case


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join("tests", "fixtures"),
                    help="output directory (default: tests/fixtures)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    os.makedirs(args.out, exist_ok=True)
    (tt, tm), (st, sm), summary = build()
    tpath = os.path.join(args.out, "kd_teacher.safetensors")
    spath = os.path.join(args.out, "kd_student.safetensors")
    mf.write_safetensors(tpath, tt, tm)
    mf.write_safetensors(spath, st, sm)
    self_check(tpath, spath)
    for path in (tpath, spath):
        print(f"{path}: {os.path.getsize(path)} bytes")
    for div, loss in summary.items():
        print(f"{div}: loss {loss:.6f}")


if __name__ == "__main__":
    main()
