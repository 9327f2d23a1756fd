#!/usr/bin/env python3
"""PyTorch's training step on bench_train_step's model, for comparing rrt with PyTorch 2.x.

The model is rrt's "bench" preset (model/presets.cpp, bench/train_step.cpp) written out in
PyTorch: embedding -> K loops x B block layers (one tied set of block weights, looped) ->
RMSNorm -> untied LM head, with a separate LoRA (A [r, in], B [out, r], scale alpha/r = 1) on
all seven projections (q, k, v, o, gate, up, down) at every unrolled position (loop, layer).
Pre-norm Llama layers: RMSNorm (eps 1e-5), GQA attention with rotate-half RoPE (theta 1e4),
SwiGLU MLP. Everything trains, as in bench_train_step: AdamW (lr 1e-4, betas 0.9/0.95, eps 1e-8,
weight decay 0.1 on matrices, none on norm weights, as rrt's registry flags them). Loss: mean
next-token cross-entropy over N x T random tokens.

One step = zero grads + forward + backward + AdamW, timed with perf_counter after warm-up, in
  fp32  eager fp32;
  bf16  torch.autocast('cpu', dtype=torch.bfloat16) around forward and loss (fp32 master weights,
        gradients and AdamW state, bf16 matrix products through oneDNN).
Each mode prints one machine-readable line (bench/compare_with_torch.sh reads it):
  RESULT torch_train_step mode=fp32 tokens_per_s=... step_s=... params=... loss=... threads=...

PyTorch is a benchmark-only dependency (tools/requirements-bench.txt); CI and the tests never
import it. Usage:
  tools/bench_torch_train_step.py [--modes fp32,bf16] [--warmup W] [--repeats R] [--small]
                                  [--threads N] [--adamw fused|foreach|loop] [--gemm N]
                                  [--print-isa]
"""

import argparse
import math
import os
import statistics
import subprocess
import sys
import time

import torch
import torch.nn.functional as F

PROJS = ("q", "k", "v", "o", "gate", "up", "down")


def bench_config(small):
    """model/presets.cpp bench(small)."""
    return dict(
        vocab=512 if small else 8192,
        d=128 if small else 512,
        heads=8,
        kv_heads=4,
        ffn=352 if small else 1408,
        seq=64 if small else 256,
        block_layers=4,
        loops=2,
        rank=8 if small else 32,
        batch=2 if small else 8,
        eps=1e-5,
        theta=10000.0,
    )


def proj_shapes(c):
    """[out, in] of each projection (model/config.h proj_shape)."""
    d, dh = c["d"], c["d"] // c["heads"]
    kv = c["kv_heads"] * dh
    return dict(q=(d, d), k=(kv, d), v=(kv, d), o=(d, d), gate=(c["ffn"], d), up=(c["ffn"], d),
                down=(d, c["ffn"]))


def rrt_param_count(c):
    """What rrt's ParamRegistry holds for this spec (model/registry.cpp), counted independently
    of the PyTorch module so that a mismatch in either shows."""
    shapes = proj_shapes(c)
    layer = sum(o * i for o, i in shapes.values()) + 2 * c["d"]
    lora = sum(min(c["rank"], o, i) * (o + i) for o, i in shapes.values())
    positions = c["loops"] * c["block_layers"]
    return (2 * c["vocab"] * c["d"] + c["block_layers"] * layer + positions * lora + c["d"])


def train_flops(c):
    """RecursiveModel::train_flops: 6 x (weights + LoRA + head) per token plus causal attention."""
    shapes = proj_shapes(c)
    positions = c["loops"] * c["block_layers"]
    per_token = positions * sum(o * i + c["rank"] * (o + i) for o, i in shapes.values())
    per_token += c["vocab"] * c["d"]
    attn = positions * 2.0 * c["d"] * (c["seq"] + 1) / 2.0
    return 6.0 * (per_token + attn) * c["batch"] * c["seq"]


class RecursiveLoRAModel(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        d, std = c["d"], 0.02
        shapes = proj_shapes(c)

        def mat(*shape):
            return torch.nn.Parameter(torch.randn(*shape) * std)

        self.embed = mat(c["vocab"], d)
        # The tied block: B layers, each run once per loop.
        self.blocks = torch.nn.ModuleList()
        for _ in range(c["block_layers"]):
            blk = torch.nn.ParameterDict({p: mat(*shapes[p]) for p in PROJS})
            blk["attn_norm"] = torch.nn.Parameter(torch.ones(d))
            blk["mlp_norm"] = torch.nn.Parameter(torch.ones(d))
            self.blocks.append(blk)
        # Per-position LoRA: lora[k * B + b][p + "_A" / "_B"]; B is non-zero (std 0.02) as in
        # bench_train_step (lora_b_zero = false), so every LoRA product is live.
        self.lora = torch.nn.ModuleList()
        # A is drawn with std 1/sqrt(in), as ParameterSet::init does.
        for _ in range(c["loops"] * c["block_layers"]):
            pd = torch.nn.ParameterDict()
            for p in PROJS:
                out, inp = shapes[p]
                r = min(c["rank"], out, inp)
                pd[p + "_A"] = torch.nn.Parameter(torch.randn(r, inp) / math.sqrt(inp))
                pd[p + "_B"] = mat(out, r)
            self.lora.append(pd)
        self.final_norm = torch.nn.Parameter(torch.ones(d))
        self.head = mat(c["vocab"], d)  # untied (ModelConfig::tied_head = false)
        dh = d // c["heads"]
        inv = 1.0 / (c["theta"] ** (torch.arange(0, dh // 2, dtype=torch.float64) * 2 / dh))
        ang = torch.arange(c["seq"], dtype=torch.float64)[:, None] * inv[None, :]
        self.register_buffer("cos", torch.cat([ang.cos(), ang.cos()], -1).float(), False)
        self.register_buffer("sin", torch.cat([ang.sin(), ang.sin()], -1).float(), False)

    def proj(self, x, blk, lora, p):
        # scale = alpha / r = 1 (LoraConfig::alpha = 0)
        return F.linear(x, blk[p]) + F.linear(F.linear(x, lora[p + "_A"]), lora[p + "_B"])

    def rope(self, x):  # x [N, H, T, Dh], rotate-half (ops/cpu/rope.cpp)
        h = x.shape[-1] // 2
        rot = torch.cat([-x[..., h:], x[..., :h]], -1)
        T = x.shape[2]
        return x * self.cos[:T] + rot * self.sin[:T]

    def layer(self, x, blk, lora):
        c = self.c
        N, T, d = x.shape
        H, Hkv = c["heads"], c["kv_heads"]
        dh = d // H
        h = F.rms_norm(x, (d,), blk["attn_norm"], c["eps"])
        q = self.proj(h, blk, lora, "q").view(N, T, H, dh).transpose(1, 2)
        k = self.proj(h, blk, lora, "k").view(N, T, Hkv, dh).transpose(1, 2)
        v = self.proj(h, blk, lora, "v").view(N, T, Hkv, dh).transpose(1, 2)
        a = F.scaled_dot_product_attention(self.rope(q), self.rope(k), v, is_causal=True,
                                           enable_gqa=True)
        x = x + self.proj(a.transpose(1, 2).reshape(N, T, d), blk, lora, "o")
        h = F.rms_norm(x, (d,), blk["mlp_norm"], c["eps"])
        g = F.silu(self.proj(h, blk, lora, "gate")) * self.proj(h, blk, lora, "up")
        return x + self.proj(g, blk, lora, "down")

    def forward(self, tokens, targets):
        c = self.c
        x = F.embedding(tokens, self.embed)
        for k in range(c["loops"]):
            for b in range(c["block_layers"]):
                x = self.layer(x, self.blocks[b], self.lora[k * c["block_layers"] + b])
        h = F.rms_norm(x, (c["d"],), self.final_norm, c["eps"])
        logits = F.linear(h, self.head)
        return F.cross_entropy(logits.reshape(-1, c["vocab"]).float(), targets.reshape(-1))


def make_optimizer(model, kind):
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]  # norm weights
    groups = [{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}]
    opts = {"fused": dict(fused=True), "foreach": dict(foreach=True), "loop": dict(foreach=False)}
    return torch.optim.AdamW(groups, lr=1e-4, betas=(0.9, 0.95), eps=1e-8, **opts[kind])


def run_mode(c, mode, warmup, repeats, adamw, seed):
    torch.manual_seed(seed)
    model = RecursiveLoRAModel(c)
    opt = make_optimizer(model, adamw)
    N, T = c["batch"], c["seq"]
    g = torch.Generator().manual_seed(3)
    tokens = torch.randint(0, c["vocab"], (N, T), generator=g)
    targets = torch.randint(0, c["vocab"], (N, T), generator=g)

    def step():
        opt.zero_grad(set_to_none=True)
        if mode == "bf16":
            with torch.autocast("cpu", dtype=torch.bfloat16):
                loss = model(tokens, targets)
        else:
            loss = model(tokens, targets)
        loss.backward()
        opt.step()
        return loss.item()

    for _ in range(warmup):
        step()
    times, loss = [], float("nan")
    for _ in range(repeats):
        t0 = time.perf_counter()
        loss = step()
        times.append(time.perf_counter() - t0)
    n_params = sum(p.numel() for p in model.parameters())
    return statistics.median(times), loss, n_params, times


def print_isa():
    """One fp32 and one bf16 linear in a child with ONEDNN_VERBOSE set (read when oneDNN
    initialises) and MKL's verbose mode on: the lines naming oneDNN's ISA and kernel, and MKL's
    version (fp32 products go to MKL's sgemm, bf16 ones under autocast to oneDNN)."""
    code = ("import torch\n"
            "a = torch.randn(256, 512); w = torch.randn(512, 512)\n"
            "with torch.backends.mkl.verbose(torch.backends.mkl.VERBOSE_ON):\n"
            "    torch.nn.functional.linear(a, w)\n"
            "with torch.autocast('cpu', dtype=torch.bfloat16):\n"
            "    torch.nn.functional.linear(a, w)\n")
    env = dict(os.environ, ONEDNN_VERBOSE="1")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    lines = (out.stdout + out.stderr).splitlines()
    isa = [l.split(",", 4)[-1] for l in lines if ",info,cpu,isa:" in l]
    prims = [",".join(l.split(",")[5:7]) for l in lines if ",exec,cpu," in l]
    mkl = [l for l in lines if l.startswith("MKL_VERBOSE") and "build" in l]
    gemm = [l.split("(")[0].split()[-1] for l in lines if l.startswith("MKL_VERBOSE") and "GEMM" in l]
    print("oneDNN ISA:", "; ".join(isa) or "(no oneDNN verbose output)")
    print("oneDNN bf16 linear:", "; ".join(prims[:1]) or "(no oneDNN primitive ran)")
    print("fp32 linear: MKL", "; ".join(gemm[:1]) or "(no MKL call seen)", "-",
          "; ".join(mkl).replace("MKL_VERBOSE ", "") or "(no MKL verbose output)")


def gemm_rates(n, repeats):
    """Median GFLOP/s of an n^3 product in fp32 (MKL) and bf16 (oneDNN), the ceilings the
    step's products run against."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    rates = {}
    for name, (x, y) in (("fp32", (a, b)), ("bf16", (a.bfloat16(), b.bfloat16()))):
        torch.mm(x, y)
        ts = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            torch.mm(x, y)
            ts.append(time.perf_counter() - t0)
        rates[name] = 2.0 * n**3 / statistics.median(ts) / 1e9
    return rates


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--modes", default="fp32,bf16")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--small", action="store_true", help="bench-small: a smoke run")
    ap.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    ap.add_argument("--adamw", choices=("fused", "foreach", "loop"), default="fused")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--gemm", type=int, default=0, metavar="N",
                    help="also time N^3 products in fp32 and bf16 (0: skip)")
    ap.add_argument("--print-isa", action="store_true",
                    help="print the oneDNN ISA and MKL code path, then exit")
    args = ap.parse_args()
    if args.print_isa:
        print_isa()
        return
    torch.set_num_threads(args.threads)
    c = bench_config(args.small)
    flops = train_flops(c)
    expect = rrt_param_count(c)
    print(f"PyTorch {torch.__version__}, {torch.get_num_threads()} threads, mkldnn "
          f"{torch.backends.mkldnn.is_available()}, CPU capability "
          f"{torch.backends.cpu.get_cpu_capability()}, AdamW {args.adamw}")
    print(f"config: d={c['d']} heads={c['heads']}/{c['kv_heads']} ffn={c['ffn']} "
          f"B={c['block_layers']} K={c['loops']} lora_r={c['rank']} vocab={c['vocab']} "
          f"T={c['seq']} N={c['batch']}")
    for mode in args.modes.split(","):
        if mode not in ("fp32", "bf16"):
            sys.exit(f"bench_torch_train_step: unknown mode '{mode}'; modes are fp32, bf16")
        t, loss, n_params, times = run_mode(c, mode, args.warmup, args.repeats, args.adamw,
                                            args.seed)
        if n_params != expect:
            sys.exit(f"bench_torch_train_step: the PyTorch model has {n_params} parameters but "
                     f"rrt's registry holds {expect}; the two models differ")
        tok = c["batch"] * c["seq"] / t
        print(f"{mode}: steps {' '.join(f'{x:.3f}' for x in times)} s, median {t:.3f} s, "
              f"{tok:.0f} tokens/s, {flops / t / 1e9:.1f} GFLOP/s, loss {loss:.4f}")
        print(f"RESULT torch_train_step mode={mode} tokens_per_s={tok:.1f} step_s={t:.4f} "
              f"params={n_params} rrt_params={expect} loss={loss:.4f} "
              f"threads={torch.get_num_threads()} torch={torch.__version__}", flush=True)
        if not math.isfinite(loss):
            sys.exit(f"bench_torch_train_step: {mode} loss is {loss}")
    if args.gemm:
        for dtype, rate in gemm_rates(args.gemm, args.repeats).items():
            print(f"RESULT torch_gemm dtype={dtype} n={args.gemm} gflops={rate:.1f}", flush=True)


if __name__ == "__main__":
    main()
