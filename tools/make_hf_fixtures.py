#!/usr/bin/env python3
"""Tiny Hugging Face LlamaForCausalLM checkpoints plus reference outputs for rrt's HF import.

Each fixture folder tests/fixtures/hf_<name>/ holds what save_pretrained writes (config.json and
model.safetensors, or shards plus model.safetensors.index.json) and reference.safetensors with:
  inputs  int32 [N, T]      token ids
  targets int32 [N, T]      next tokens, a few set to -1 (ignored)
  logits  F32 [N, T, V]     LlamaForCausalLM logits in float32
  loss    F32 [1]           cross entropy, ignore_index=-1, mean over the kept tokens
  grad.<rrt name>           d loss / d parameter for every parameter, under rrt registry names
Nothing is downloaded: the models are random (torch.manual_seed) from a LlamaConfig.

Usage: python3 tools/make_hf_fixtures.py [--out tests/fixtures]
"""
import argparse
import json
import os
import re
import shutil

import torch
import torch.nn.functional as F
import transformers
from safetensors.torch import save_file
from transformers import LlamaConfig, LlamaForCausalLM

N, T = 2, 13

# HF parameter name -> rrt registry name (model/registry.h).
_LAYER_MAP = {
    "input_layernorm.weight": "attn_norm.weight",
    "post_attention_layernorm.weight": "mlp_norm.weight",
    "self_attn.q_proj.weight": "attn.q.weight",
    "self_attn.k_proj.weight": "attn.k.weight",
    "self_attn.v_proj.weight": "attn.v.weight",
    "self_attn.o_proj.weight": "attn.o.weight",
    "mlp.gate_proj.weight": "mlp.gate.weight",
    "mlp.up_proj.weight": "mlp.up.weight",
    "mlp.down_proj.weight": "mlp.down.weight",
}


def rrt_name(hf):
    if hf == "model.embed_tokens.weight":
        return "embed.weight"
    if hf == "model.norm.weight":
        return "final_norm.weight"
    if hf == "lm_head.weight":
        return "head.weight"
    m = re.fullmatch(r"model\.layers\.(\d+)\.(.+)", hf)
    if m and m.group(2) in _LAYER_MAP:
        return f"block.{m.group(1)}.{_LAYER_MAP[m.group(2)]}"
    raise KeyError(f"no rrt name for HF parameter {hf}")


def make(out_dir, name, seed, cfg_kwargs, save_dtype=torch.float32, max_shard_size=None):
    torch.manual_seed(seed)
    cfg = LlamaConfig(**cfg_kwargs)
    model = LlamaForCausalLM(cfg).float().eval()
    model.config._attn_implementation = "eager"
    with torch.no_grad():
        # Make norms non-trivial so their gradients and scales are exercised.
        for n, p in model.named_parameters():
            if n.endswith("layernorm.weight") or n == "model.norm.weight":
                p.copy_(1.0 + 0.1 * torch.randn_like(p))
            elif p.dim() == 2:
                p.copy_(0.08 * torch.randn_like(p))
        if save_dtype != torch.float32:
            # The reference is computed by the fp32 model whose weights equal the stored ones.
            for p in model.parameters():
                p.copy_(p.to(save_dtype).to(torch.float32))

    heads = cfg_kwargs["num_attention_heads"]
    hd = cfg_kwargs.get("head_dim", cfg_kwargs["hidden_size"] // heads)
    assert model.model.layers[0].self_attn.q_proj.weight.shape[0] == heads * hd, "head_dim ignored"

    V = cfg_kwargs["vocab_size"]
    g = torch.Generator().manual_seed(seed + 1)
    inputs = torch.randint(0, V, (N, T), generator=g)
    targets = torch.randint(0, V, (N, T), generator=g)
    targets[0, 3] = -1
    targets[1, T - 1] = -1

    model.zero_grad()
    logits = model(input_ids=inputs).logits.float()
    loss = F.cross_entropy(logits.reshape(-1, V), targets.reshape(-1), ignore_index=-1,
                           reduction="mean")
    loss.backward()

    ref = {
        "inputs": inputs.to(torch.int32).contiguous(),
        "targets": targets.to(torch.int32).contiguous(),
        "logits": logits.detach().contiguous(),
        "loss": loss.detach().reshape(1).float(),
    }
    seen = set()
    for n, p in model.named_parameters():  # tied lm_head appears once (as embed_tokens)
        rn = rrt_name(n)
        assert rn not in seen
        seen.add(rn)
        ref["grad." + rn] = p.grad.detach().float().contiguous()

    folder = os.path.join(out_dir, f"hf_{name}")
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    save_model = model.to(save_dtype)
    kw = {"safe_serialization": True}
    if max_shard_size:
        kw["max_shard_size"] = max_shard_size
    save_model.save_pretrained(folder, **kw)
    gen = os.path.join(folder, "generation_config.json")
    if os.path.exists(gen):
        os.remove(gen)
    meta = {
        "transformers_version": transformers.__version__,
        "torch_version": torch.__version__,
        "generator": "tools/make_hf_fixtures.py",
        "config": json.dumps(cfg_kwargs),
        "save_dtype": str(save_dtype),
    }
    save_file(ref, os.path.join(folder, "reference.safetensors"), metadata=meta)
    size = sum(os.path.getsize(os.path.join(folder, f)) for f in os.listdir(folder))
    print(f"{folder}: {size} bytes, loss {loss.item():.6f}, files {sorted(os.listdir(folder))}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures"))
    args = ap.parse_args()
    torch.set_default_dtype(torch.float32)
    base = dict(vocab_size=256, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                rms_norm_eps=1e-5, tie_word_embeddings=False, rope_theta=5000.0)
    make(args.out, "llama_gqa", 11, base)
    mqa = dict(vocab_size=300, hidden_size=32, intermediate_size=80, num_hidden_layers=3,
               num_attention_heads=4, num_key_value_heads=1, head_dim=12,
               max_position_embeddings=64, rms_norm_eps=1e-6, tie_word_embeddings=True,
               rope_theta=10000.0)
    make(args.out, "llama_mqa_tied_bf16", 22, mqa, save_dtype=torch.bfloat16)
    make(args.out, "llama_sharded", 33, base, max_shard_size="30KB")


if __name__ == "__main__":
    main()
