#!/usr/bin/env python3
"""Write a random TinyLlama-1.1B-shaped Hugging Face checkpoint (issue #4, "Scale").

The result is what `save_pretrained` writes for LlamaForCausalLM in bf16: config.json, two
safetensors shards and model.safetensors.index.json (about 2.2 GB in all). It exercises
`rrt convert` at 1.1B-parameter scale without downloading anything; the weights are random
(normal, std 0.02; RMSNorm weights are ones), so the model itself is meaningless.

Only numpy is needed: the safetensors format is written by hand (8-byte little-endian header
length, JSON header with dtype / shape / data_offsets, then the raw little-endian data), one
tensor at a time, so peak memory stays around one fp32 tensor (the embedding, ~260 MB).

    python3 tools/make_tinyllama_checkpoint.py --out /tmp/tinyllama-random
"""
import argparse
import json
import os
import sys

import numpy as np

CONFIG = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 2048,
    "intermediate_size": 5632,
    "num_hidden_layers": 22,
    "num_attention_heads": 32,
    "num_key_value_heads": 4,
    "vocab_size": 32000,
    "max_position_embeddings": 2048,
    "rms_norm_eps": 1e-5,
    "rope_theta": 10000.0,
    "rope_scaling": None,
    "hidden_act": "silu",
    "attention_bias": False,
    "mlp_bias": False,
    "tie_word_embeddings": False,
    "initializer_range": 0.02,
    "bos_token_id": 1,
    "eos_token_id": 2,
    "torch_dtype": "bfloat16",
}


def tensor_list(c):
    """(name, shape, kind) in save_pretrained order; kind is 'normal' or 'ones'."""
    d, f, v = c["hidden_size"], c["intermediate_size"], c["vocab_size"]
    hd = d // c["num_attention_heads"]
    kv = c["num_key_value_heads"] * hd
    out = [("model.embed_tokens.weight", (v, d), "normal")]
    for l in range(c["num_hidden_layers"]):
        p = f"model.layers.{l}."
        out += [
            (p + "self_attn.q_proj.weight", (d, d), "normal"),
            (p + "self_attn.k_proj.weight", (kv, d), "normal"),
            (p + "self_attn.v_proj.weight", (kv, d), "normal"),
            (p + "self_attn.o_proj.weight", (d, d), "normal"),
            (p + "mlp.gate_proj.weight", (f, d), "normal"),
            (p + "mlp.up_proj.weight", (f, d), "normal"),
            (p + "mlp.down_proj.weight", (d, f), "normal"),
            (p + "input_layernorm.weight", (d,), "ones"),
            (p + "post_attention_layernorm.weight", (d,), "ones"),
        ]
    out += [("model.norm.weight", (d,), "ones"), ("lm_head.weight", (v, d), "normal")]
    return out


def to_bf16_bytes(x):
    """float32 array -> bf16 bytes (round to nearest even on the upper 16 bits)."""
    bits = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    bits = bits + (np.uint32(0x7FFF) + ((bits >> np.uint32(16)) & np.uint32(1)))
    return (bits >> np.uint32(16)).astype("<u2").tobytes()


def make_tensor(rng, shape, kind, std):
    if kind == "ones":
        return np.ones(shape, dtype=np.float32)
    x = rng.standard_normal(shape, dtype=np.float32)
    x *= np.float32(std)
    return x


def write_shard(path, tensors, rng, std):
    header, offset = {}, 0
    for name, shape, _ in tensors:
        nbytes = 2 * int(np.prod(shape))
        header[name] = {"dtype": "BF16", "shape": list(shape), "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    header["__metadata__"] = {"format": "pt"}
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)  # align the data section to 8 bytes, as safetensors does
    with open(path, "wb") as fh:
        fh.write(len(h).to_bytes(8, "little"))
        fh.write(h)
        for name, shape, kind in tensors:
            fh.write(to_bf16_bytes(make_tensor(rng, shape, kind, std)))
    return offset


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="/tmp/tinyllama-random", help="output directory")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--std", type=float, default=0.02)
    args = ap.parse_args()

    out = os.path.abspath(args.out)
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if out == repo or out.startswith(repo + os.sep):
        sys.exit(f"refusing to write a 2.2 GB checkpoint inside the repository ({out})")
    os.makedirs(out, exist_ok=True)

    tensors = tensor_list(CONFIG)
    # Two shards of roughly equal size, split at a tensor boundary.
    sizes = [2 * int(np.prod(s)) for _, s, _ in tensors]
    half, acc, cut = sum(sizes) / 2, 0, len(tensors)
    for i, n in enumerate(sizes):
        acc += n
        if acc >= half:
            cut = i + 1
            break
    shards = [tensors[:cut], tensors[cut:]]
    names = [f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors" for i in range(len(shards))]

    rng = np.random.default_rng(args.seed)
    total = 0
    weight_map = {}
    for fname, part in zip(names, shards):
        total += write_shard(os.path.join(out, fname), part, rng, args.std)
        for name, _, _ in part:
            weight_map[name] = fname
        print(f"wrote {fname}: {len(part)} tensors", flush=True)

    with open(os.path.join(out, "model.safetensors.index.json"), "w") as fh:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, fh, indent=2)
    with open(os.path.join(out, "config.json"), "w") as fh:
        json.dump(CONFIG, fh, indent=2)
    n_params = total // 2
    print(f"{out}: {n_params:,} parameters, {total / 1e9:.2f} GB of bf16 weights")


if __name__ == "__main__":
    main()
