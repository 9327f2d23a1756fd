#!/usr/bin/env python3
"""Step time of data-parallel training against the number of GPUs (docs/distributed.md).

    tools/step_time_model.py [--mfu 0.45] [--tokens-per-gpu 16384] [--grad-bytes 2] ...

A model, not a measurement: per-GPU compute time from the FLOPs of a step at a stated MFU, plus
the exposed part of a ring all-reduce of the gradient bytes,

    t_allreduce = 2 (p - 1) / p * bytes / bus_bw + 2 (p - 1) * latency,

with the NVLink bandwidth inside a node (p <= gpus_per_node) and the network bandwidth per GPU
across nodes (a hierarchical all-reduce is bounded by its slowest link: the inter-node one).

Overlap is where recursion differs from a plain model: a bucket can only be sent once all of
its gradients are final, and the tied block's gradients are final only after the first loop's
backward, the last 1/K of backward. So the LoRA, head and norm gradients (final early) hide
behind backward, while the tied block's bytes can overlap only the first loop's backward plus
nothing else; the plain model's layers become final one by one over the whole backward.
Backward is taken as 2/3 of the step's compute (forward : backward = 1 : 2).
"""
import argparse


def tinyllama_shapes(rank, loops):
    """Parameter counts of TinyLlama 1.1B (22 layers) folded into 22 / loops shared layers."""
    d, f, kv, vocab, layers = 2048, 5632, 256, 32000, 22
    projections = [(d, d), (kv, d), (kv, d), (d, d), (f, d), (f, d), (d, f)]  # (out, in)
    layer = sum(o * i for o, i in projections)
    lora_per_position = sum(rank * (o + i) for o, i in projections)
    return {
        "block": layer * layers // loops,          # tied weights (final after loop 1)
        "lora": lora_per_position * layers if loops > 1 else 0,
        "embed_head": 2 * vocab * d,
        "flops_params": layer * layers + vocab * d + (lora_per_position * layers if loops > 1 else 0),
    }


def step_time(p, shapes, args, loops):
    # Compute: 6 FLOPs per weight per token (+ causal attention), at the stated MFU.
    # QK^T and PV over (T + 1) / 2 keys on average, q_dim 2048, all 22 unrolled positions.
    attn_flops = 6 * 22 * 2 * 2048 * (args.seq + 1) / 2  # per token
    flops = (6 * shapes["flops_params"] + attn_flops) * args.tokens_per_gpu
    compute = flops / (args.peak_tflops * 1e12 * args.mfu)
    backward = compute * 2 / 3
    bus = args.nvlink_gbs if p <= args.gpus_per_node else args.net_gbs
    def ring(n_bytes):
        if p == 1:
            return 0.0
        return 2 * (p - 1) / p * n_bytes / (bus * 1e9) + 2 * (p - 1) * args.latency_us * 1e-6
    early = (shapes["lora"] + shapes["embed_head"]) * args.grad_bytes
    block = shapes["block"] * args.grad_bytes
    if loops > 1:
        # Early-final gradients overlap the backward of loops 2..K; the tied block the first's.
        window_early = backward * (loops - 1) / loops
        window_block = backward / loops
        exposed = max(0.0, ring(early) - window_early) + max(0.0, ring(block) - window_block)
    else:
        # Plain model: layer gradients become final evenly over backward; the last bucket
        # (the first layers and the embedding) is exposed at least.
        total = ring(early + block)
        exposed = max(total - backward, total / 22)
    return compute, ring(early + block), exposed


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mfu", type=float, default=0.45, help="achieved fraction of peak")
    ap.add_argument("--peak-tflops", type=float, default=989.0, help="bf16 dense peak (H100 SXM)")
    ap.add_argument("--tokens-per-gpu", type=int, default=16384, help="tokens per GPU per step")
    ap.add_argument("--seq", type=int, default=2048)
    ap.add_argument("--grad-bytes", type=int, default=2, help="bytes per gradient (bf16: 2)")
    ap.add_argument("--nvlink-gbs", type=float, default=360.0,
                    help="all-reduce bus bandwidth inside a node, GB/s (NVLink 4, 8 GPUs)")
    ap.add_argument("--net-gbs", type=float, default=45.0,
                    help="bus bandwidth per GPU across nodes, GB/s (400 Gb/s InfiniBand)")
    ap.add_argument("--latency-us", type=float, default=5.0, help="per ring hop")
    ap.add_argument("--gpus-per-node", type=int, default=8)
    ap.add_argument("--rank", type=int, default=64, help="LoRA rank of the relaxed model")
    args = ap.parse_args()

    models = [("TinyLlama 1.1B (plain)", 1), (f"relaxed K=2, r={args.rank}", 2)]
    print(f"Inputs: MFU {args.mfu}, peak {args.peak_tflops} TFLOP/s, {args.tokens_per_gpu} "
          f"tokens/GPU/step, T={args.seq}, {args.grad_bytes}-byte gradients, NVLink "
          f"{args.nvlink_gbs} GB/s (<= {args.gpus_per_node} GPUs), network {args.net_gbs} GB/s, "
          f"{args.latency_us} us/hop\n")
    for name, loops in models:
        shapes = tinyllama_shapes(args.rank, loops)
        n = shapes["block"] + shapes["lora"] + shapes["embed_head"]
        print(f"### {name}: {n / 1e6:.0f}M parameters, {n * args.grad_bytes / 1e9:.2f} GB of "
              f"gradients\n")
        print("| GPUs | compute s | all-reduce s | exposed s | step s | tokens/s | scaling efficiency |")
        print("|---|---|---|---|---|---|---|")
        base = None
        for p in [1, 8, 16, 32, 64, 128, 256]:
            compute, allreduce, exposed = step_time(p, shapes, args, loops)
            step = compute + exposed
            tok = p * args.tokens_per_gpu / step
            base = base or tok
            print(f"| {p} | {compute:.3f} | {allreduce:.3f} | {exposed:.3f} | {step:.3f} | "
                  f"{tok:,.0f} | {tok / (p * base):.1%} |")
        print()


if __name__ == "__main__":
    main()
