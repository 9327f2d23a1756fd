#!/usr/bin/env python3
"""Tiny Hugging Face checkpoints plus reference outputs for rrt's HF import (model/hf_import.h).

Families: LlamaForCausalLM, GemmaForCausalLM (Gemma 1) and GPTNeoXForCausalLM.
Each fixture folder tests/fixtures/hf_<name>/ holds what save_pretrained writes (config.json and
model.safetensors, or shards plus model.safetensors.index.json) and reference.safetensors with:
  inputs  int32 [N, T]      token ids
  targets int32 [N, T]      next tokens, a few set to -1 (ignored)
  logits  F32 [N, T, V]     the model's logits in float32
  loss    F32 [1]           cross entropy, ignore_index=-1, mean over the kept tokens
  grad.<rrt name>           d loss / d parameter for every parameter, under rrt registry names
Nothing is downloaded: the models are random (torch.manual_seed) from a config. Checkpoints saved
in bf16/fp16 come with a reference computed by the fp32 model whose weights equal the stored ones.

What transformers 5.24 computes, read from its source (models/gemma, models/gpt_neox,
activations.py), which rrt's layer must match:
  Gemma  RMSNorm x * rsqrt(mean(x^2) + eps) * (1 + w), in fp32; embeddings times
         sqrt(hidden_size) (cast to the weight dtype); attention scale head_dim^-0.5 with
         head_dim independent of hidden_size; MLP down(act(gate(x)) * up(x)) with
         hidden_act gelu_pytorch_tanh (GemmaConfig rewrites the legacy hidden_act "gelu" of the
         official releases to gelu_pytorch_tanh; there is no hidden_activation field any more);
         tied head (lm_head shares embed_tokens).
  NeoX   LayerNorm with bias; fused query_key_value [3*H*Dh, D] (+ bias) whose output is viewed
         as [.., H, 3*Dh] and chunked into q, k, v, i.e. per-head interleaved rows; attention
         scale head_size^-0.5 with head_size = hidden_size / heads; rotary on the first
         rot = int(head_size * partial_rotary_factor) dims of each head with rotate_half over
         those dims and inv_freq = theta^(-arange(0, rot, 2) / rot), the rest passes through;
         hidden_act "gelu" is the exact (erf) GELU (nn.functional.gelu); parallel residual
         x + attn(ln1(x)) + mlp(ln2(x)), sequential x' = x + attn(ln1(x)), x' + mlp(ln2(x'));
         the head is the module lm_head, saved as embed_out.weight (a conversion_mapping rename).
  GPTNeoXConfig takes rotary_pct / rotary_emb_base as constructor keywords and writes them to
  config.json as rope_parameters {partial_rotary_factor, rope_theta, rope_type}.

Regenerating gives the same tensors, but the safetensors metadata header may list its keys in
another order, so reference.safetensors need not be byte-identical: keep committed fixtures
unless their content changes.

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
from transformers import (GemmaConfig, GemmaForCausalLM, GPTNeoXConfig, GPTNeoXForCausalLM,
                          LlamaConfig, LlamaForCausalLM)

N, T = 2, 13

# Llama and Gemma HF parameter name -> rrt registry name (model/registry.h).
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

# GPT-NeoX per-layer module -> rrt name (without .weight/.bias); query_key_value is split.
_NEOX_LAYER_MAP = {
    "input_layernorm": "attn_norm",
    "post_attention_layernorm": "mlp_norm",
    "attention.dense": "attn.o",
    "mlp.dense_h_to_4h": "mlp.up",
    "mlp.dense_4h_to_h": "mlp.down",
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


def llama_grads(model):
    """grad.<rrt name> for a Llama or Gemma model (a tied lm_head appears once, as embed)."""
    out = {}
    for n, p in model.named_parameters():
        rn = rrt_name(n)
        assert "grad." + rn not in out
        out["grad." + rn] = p.grad.detach().float().contiguous()
    return out


def neox_split_qkv(t, heads):
    """Rows of a fused query_key_value weight [H*3*Dh, D] or bias [H*3*Dh] -> (q, k, v), each
    [H*Dh, ...]: transformers views the output as [.., H, 3*Dh] and chunks the last dim."""
    rest = t.shape[1:]
    per_head = t.reshape(heads, 3, t.shape[0] // (3 * heads), *rest)
    return [per_head[:, j].reshape(-1, *rest).contiguous() for j in range(3)]


def neox_grads(model):
    heads = model.config.num_attention_heads
    out = {}
    for n, p in model.named_parameters():
        g = p.grad.detach().float().contiguous()
        if n == "gpt_neox.embed_in.weight":
            out["grad.embed.weight"] = g
            continue
        if n == "lm_head.weight":
            out["grad.head.weight"] = g
            continue
        m = re.fullmatch(r"gpt_neox\.final_layer_norm\.(weight|bias)", n)
        if m:
            out[f"grad.final_norm.{m.group(1)}"] = g
            continue
        m = re.fullmatch(r"gpt_neox\.layers\.(\d+)\.(.+)\.(weight|bias)", n)
        assert m, f"no rrt name for HF parameter {n}"
        layer, module, kind = m.groups()
        if module == "attention.query_key_value":
            for proj, part in zip("qkv", neox_split_qkv(g, heads)):
                out[f"grad.block.{layer}.attn.{proj}.{kind}"] = part
        else:
            out[f"grad.block.{layer}.{_NEOX_LAYER_MAP[module]}.{kind}"] = g
    return out


def check_neox_split(model):
    """The de-interleave reproduces the query/key/value states transformers computes."""
    attn = model.gpt_neox.layers[0].attention
    heads, hs = model.config.num_attention_heads, attn.head_size
    x = torch.randn(3, model.config.hidden_size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        fused = attn.query_key_value(x).view(3, heads, 3 * hs).chunk(3, dim=-1)
        ws = neox_split_qkv(attn.query_key_value.weight, heads)
        bs = neox_split_qkv(attn.query_key_value.bias, heads)
        for j in range(3):
            mine = F.linear(x, ws[j], bs[j]).view(3, heads, hs)
            assert torch.allclose(mine, fused[j], atol=1e-6), "qkv de-interleave is wrong"


def init_llama(model):
    # Make norms non-trivial so their gradients and scales are exercised.
    for n, p in model.named_parameters():
        if n.endswith("layernorm.weight") or n == "model.norm.weight":
            p.copy_(1.0 + 0.1 * torch.randn_like(p))
        elif p.dim() == 2:
            p.copy_(0.08 * torch.randn_like(p))


def init_gemma(model):
    # Gemma norms scale by (1 + w) and start at w = 0: random w around 0 exercises them.
    for n, p in model.named_parameters():
        if n.endswith("layernorm.weight") or n == "model.norm.weight":
            p.copy_(0.1 * torch.randn_like(p))
        elif p.dim() == 2:
            p.copy_(0.08 * torch.randn_like(p))


def init_neox(model):
    # Non-zero biases (projections and LayerNorms) so that each one changes the outputs.
    for n, p in model.named_parameters():
        if "layernorm.weight" in n or "layer_norm.weight" in n:
            p.copy_(1.0 + 0.1 * torch.randn_like(p))
        elif p.dim() == 2:
            p.copy_(0.08 * torch.randn_like(p))
        else:
            p.copy_(0.1 * torch.randn_like(p))


FAMILIES = {
    "llama": (LlamaConfig, LlamaForCausalLM, init_llama, llama_grads),
    "gemma": (GemmaConfig, GemmaForCausalLM, init_gemma, llama_grads),
    "neox": (GPTNeoXConfig, GPTNeoXForCausalLM, init_neox, neox_grads),
}


def check_shapes(family, model, cfg_kwargs):
    heads = cfg_kwargs["num_attention_heads"]
    if family == "neox":
        hs = cfg_kwargs["hidden_size"] // heads
        assert model.gpt_neox.layers[0].attention.rotary_ndims % 2 == 0, "odd rotary dims"
        assert model.gpt_neox.layers[0].attention.query_key_value.weight.shape[0] == 3 * heads * hs
        check_neox_split(model)
    else:
        hd = cfg_kwargs.get("head_dim", cfg_kwargs["hidden_size"] // heads)
        assert model.model.layers[0].self_attn.q_proj.weight.shape[0] == heads * hd, "head_dim ignored"


def make(out_dir, name, seed, cfg_kwargs, save_dtype=torch.float32, max_shard_size=None,
         family="llama"):
    config_cls, model_cls, init, grads = FAMILIES[family]
    torch.manual_seed(seed)
    cfg = config_cls(**cfg_kwargs)
    model = model_cls(cfg).float().eval()
    model.config._attn_implementation = "eager"
    with torch.no_grad():
        init(model)
        if save_dtype != torch.float32:
            # The reference is computed by the fp32 model whose weights equal the stored ones.
            for p in model.parameters():
                p.copy_(p.to(save_dtype).to(torch.float32))
    check_shapes(family, model, cfg_kwargs)

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
    ref.update(grads(model))

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
    if family != "llama":  # keeps the Llama fixtures byte-identical to their first version
        meta["architecture"] = model_cls.__name__
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

    # Gemma 1: MQA, head_dim 12 != 32 / 4, tied head (GemmaConfig's default), tanh GELU.
    gemma = dict(vocab_size=300, hidden_size=32, intermediate_size=80, num_hidden_layers=3,
                 num_attention_heads=4, num_key_value_heads=1, head_dim=12,
                 max_position_embeddings=64, rms_norm_eps=1e-6,
                 hidden_act="gelu_pytorch_tanh", rope_theta=10000.0)
    make(args.out, "gemma_mqa_bf16", 44, gemma, save_dtype=torch.bfloat16, family="gemma")
    # GPT-NeoX: head_size 16, 25% rotary -> 4 rotary dims; exact GELU; untied head (embed_out).
    neox = dict(vocab_size=256, hidden_size=32, intermediate_size=96, num_hidden_layers=2,
                num_attention_heads=2, max_position_embeddings=64, layer_norm_eps=1e-5,
                rotary_pct=0.25, rotary_emb_base=10000, use_parallel_residual=True,
                hidden_act="gelu", tie_word_embeddings=False)
    make(args.out, "neox_parallel", 55, neox, family="neox")
    # Sequential residual, head_size 8 with 50% rotary (4 dims: not the family default), fp16,
    # several shards.
    neox_seq = dict(vocab_size=256, hidden_size=32, intermediate_size=64, num_hidden_layers=3,
                    num_attention_heads=4, max_position_embeddings=64, layer_norm_eps=1e-6,
                    rotary_pct=0.5, rotary_emb_base=5000, use_parallel_residual=False,
                    hidden_act="gelu", tie_word_embeddings=False)
    make(args.out, "neox_sequential_fp16_sharded", 66, neox_seq, save_dtype=torch.float16,
         max_shard_size="30KB", family="neox")


if __name__ == "__main__":
    main()
