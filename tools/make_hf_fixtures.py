#!/usr/bin/env python3
"""Tiny Hugging Face checkpoints plus reference outputs for rrt's HF import (model/hf_import.h).

Families: LlamaForCausalLM (with and without rope_scaling: linear, dynamic, llama3),
GemmaForCausalLM (Gemma 1), GPTNeoXForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM,
Gemma3ForCausalLM (Gemma 3 text) and Gemma2ForCausalLM.
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
  Llama 3 RoPE scaling (modeling_rope_utils): inv_freq of the plain RoPE, then llama3 divides
         the frequencies whose wavelength 2 pi / inv_freq exceeds original_max_position_embeddings
         / low_freq_factor by factor, keeps those below original / high_freq_factor and blends
         between; linear divides every one by factor; dynamic keeps them up to
         max_position_embeddings (its original_max_seq_len) and rescales the base with the
         sequence length past it (the fixture's sequences stay within, as rrt's do).
  Qwen2  Llama's layer with bias=True on q_proj, k_proj, v_proj (hard-coded, no config key),
         none on o_proj or the MLP.
  Qwen3  Llama's layer with q_norm / k_norm: RMSNorm over head_dim of each head of q and k
         (weights [head_dim]) after the projection and before RoPE; head_dim from the config.
  Gemma 3 Gemma's (1 + w) RMSNorm (also on each q and k head: q_norm / k_norm before RoPE),
         embeddings x sqrt(hidden_size), GeGLU with hidden_activation; sandwich norms:
         h = x + post_attention_layernorm(attn(input_layernorm(x))),
         out = h + post_feedforward_layernorm(mlp(pre_feedforward_layernorm(h))); attention
         scale query_pre_attn_scalar^-0.5; layer_types (sliding_window_pattern: every
         pattern-th layer full) with sliding_attention layers masked to the last sliding_window
         keys and rotated with rope_parameters.sliding_attention's base (rope_local_base_freq),
         the full ones with rope_parameters.full_attention's (rope_theta, and rope_scaling's
         factor: the global layers only). Tied head by default.
  Gemma 2 Gemma 3 without q_norm / k_norm and with one RoPE; final_logit_softcapping
         (default 30) None, except in gemma2_final_softcap: the lm_head's logits z become
         cap * tanh(z / cap) (Gemma2ForCausalLM.forward), which logits, loss and gradients
         here are of; attn_logit_softcapping (default 50) None, except in gemma2_softcap and
         gemma2_final_softcap: scores s = q k^T * scaling become cap * tanh(s / cap) before
         the mask and the softmax (eager_attention_forward).
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
from transformers import (Gemma2Config, Gemma2ForCausalLM, Gemma3ForCausalLM, Gemma3TextConfig,
                          GemmaConfig, GemmaForCausalLM, GPTNeoXConfig, GPTNeoXForCausalLM,
                          LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM,
                          Qwen3Config, Qwen3ForCausalLM)

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
    # Qwen2's q/k/v biases, Qwen3's per-head q/k norms.
    "self_attn.q_proj.bias": "attn.q.bias",
    "self_attn.k_proj.bias": "attn.k.bias",
    "self_attn.v_proj.bias": "attn.v.bias",
    "self_attn.q_norm.weight": "attn.q_norm.weight",
    "self_attn.k_norm.weight": "attn.k_norm.weight",
}

# Gemma 2 / 3: post_attention_layernorm is the norm on the attention output, the MLP's input
# norm is pre_feedforward_layernorm.
_GEMMA3_LAYER_MAP = dict(_LAYER_MAP, **{
    "post_attention_layernorm.weight": "attn_post_norm.weight",
    "pre_feedforward_layernorm.weight": "mlp_norm.weight",
    "post_feedforward_layernorm.weight": "mlp_post_norm.weight",
})

# GPT-NeoX per-layer module -> rrt name (without .weight/.bias); query_key_value is split.
_NEOX_LAYER_MAP = {
    "input_layernorm": "attn_norm",
    "post_attention_layernorm": "mlp_norm",
    "attention.dense": "attn.o",
    "mlp.dense_h_to_4h": "mlp.up",
    "mlp.dense_4h_to_h": "mlp.down",
}


def rrt_name(hf, layer_map=_LAYER_MAP):
    if hf == "model.embed_tokens.weight":
        return "embed.weight"
    if hf == "model.norm.weight":
        return "final_norm.weight"
    if hf == "lm_head.weight":
        return "head.weight"
    m = re.fullmatch(r"model\.layers\.(\d+)\.(.+)", hf)
    if m and m.group(2) in layer_map:
        return f"block.{m.group(1)}.{layer_map[m.group(2)]}"
    raise KeyError(f"no rrt name for HF parameter {hf}")


def llama_grads(model, layer_map=_LAYER_MAP):
    """grad.<rrt name> for a Llama or Gemma model (a tied lm_head appears once, as embed)."""
    out = {}
    for n, p in model.named_parameters():
        rn = rrt_name(n, layer_map)
        assert "grad." + rn not in out
        out["grad." + rn] = p.grad.detach().float().contiguous()
    return out


def gemma3_grads(model):
    return llama_grads(model, _GEMMA3_LAYER_MAP)


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


def init_gemma3(model):
    # Every (1 + w) norm (q_norm / k_norm and the sandwich norms too) at random w around 0.
    for n, p in model.named_parameters():
        if n.endswith("norm.weight"):
            p.copy_(0.15 * torch.randn_like(p))
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


def init_qwen(model):
    # Every norm (q_norm / k_norm too) around 1, and q/k/v biases large enough to matter (the
    # real Qwen2 k biases are large).
    for n, p in model.named_parameters():
        if n.endswith("norm.weight"):
            p.copy_(1.0 + 0.1 * torch.randn_like(p))
        elif p.dim() == 2:
            p.copy_(0.08 * torch.randn_like(p))
        else:
            p.copy_(0.3 * torch.randn_like(p))


FAMILIES = {
    "llama": (LlamaConfig, LlamaForCausalLM, init_llama, llama_grads),
    "qwen2": (Qwen2Config, Qwen2ForCausalLM, init_qwen, llama_grads),
    "qwen3": (Qwen3Config, Qwen3ForCausalLM, init_qwen, llama_grads),
    "gemma": (GemmaConfig, GemmaForCausalLM, init_gemma, llama_grads),
    "neox": (GPTNeoXConfig, GPTNeoXForCausalLM, init_neox, neox_grads),
    "gemma3": (Gemma3TextConfig, Gemma3ForCausalLM, init_gemma3, gemma3_grads),
    "gemma2": (Gemma2Config, Gemma2ForCausalLM, init_gemma3, gemma3_grads),
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
    if family == "qwen2":
        attn = model.model.layers[0].self_attn
        assert attn.q_proj.bias is not None and attn.o_proj.bias is None, "Qwen2 biases"
    if family == "qwen3":
        assert model.model.layers[0].self_attn.q_norm.weight.shape[0] == hd, "Qwen3 q_norm"
    if family in ("gemma3", "gemma2"):
        attn = model.model.layers[0].self_attn
        assert attn.scaling == cfg_kwargs["query_pre_attn_scalar"] ** -0.5, "query_pre_attn_scalar"
        assert model.config.final_logit_softcapping == cfg_kwargs["final_logit_softcapping"], \
            "final soft-capping not as asked"
        assert model.config.attn_logit_softcapping == cfg_kwargs["attn_logit_softcapping"], \
            "attention soft-capping not as asked"
    if family == "gemma3":
        # The local and the global layers rotate differently (their own bases; the global ones
        # scaled where the config says so).
        rot = model.model.rotary_emb
        if hasattr(rot, "full_attention_inv_freq") and hasattr(rot, "sliding_attention_inv_freq"):
            assert not torch.allclose(rot.sliding_attention_inv_freq, rot.full_attention_inv_freq)
        return
    rope = cfg_kwargs.get("rope_scaling")
    if rope:
        # The model's frequencies are the scaled ones (not the plain RoPE's).
        rot = model.model.rotary_emb
        plain = 1.0 / (cfg_kwargs["rope_theta"] ** (torch.arange(0, hd, 2).float() / hd))
        changed = not torch.allclose(rot.inv_freq.float(), plain)
        assert changed == (rope["rope_type"] != "dynamic"), f"rope_scaling {rope} ignored"


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
    cap = cfg_kwargs.get("final_logit_softcapping")
    if cap:
        # The cap bends these logits: the largest reaches well into tanh's curve.
        assert logits.abs().max().item() > 0.5 * cap, "final soft-cap too large to matter"
        print(f"  final soft-cap {cap}: max |logit| {logits.abs().max().item():.3f}")
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
    ap.add_argument("--only", nargs="*", help="fixture names to (re)write; default all")
    args = ap.parse_args()
    torch.set_default_dtype(torch.float32)
    global make
    if args.only:
        all_make = make
        make = lambda out, name, *a, **k: all_make(out, name, *a, **k) if name in args.only else None
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

    # Llama 3.x RoPE scaling, head_dim 8, theta 5000: with original_max_position_embeddings 16,
    # low_freq_factor 1 and high 4, wavelengths above 16 are divided by the factor, the first
    # (6.3) lies in the blended band: every branch of llama3 is taken.
    llama3 = dict(base, rope_scaling=dict(rope_type="llama3", factor=4.0, low_freq_factor=1.0,
                                          high_freq_factor=4.0,
                                          original_max_position_embeddings=16))
    make(args.out, "llama3_rope", 77, llama3)
    make(args.out, "llama_rope_linear", 78,
         dict(base, rope_scaling=dict(rope_type="linear", factor=2.5)))
    # Dynamic NTK: plain RoPE within max_position_embeddings (the only positions rrt runs).
    make(args.out, "llama_rope_dynamic", 79,
         dict(base, rope_scaling=dict(rope_type="dynamic", factor=2.0)))
    # Qwen2 / Qwen2.5: q/k/v biases, GQA, tied head (as Qwen2.5 0.5B).
    qwen2 = dict(vocab_size=256, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                 num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                 rms_norm_eps=1e-6, tie_word_embeddings=True, rope_theta=10000.0)
    make(args.out, "qwen2_tied", 88, qwen2, family="qwen2")
    # Qwen3: q/k norms, head_dim 12 != 32 / 4, untied head, 3 layers.
    qwen3 = dict(vocab_size=256, hidden_size=32, intermediate_size=64, num_hidden_layers=3,
                 num_attention_heads=4, num_key_value_heads=2, head_dim=12,
                 max_position_embeddings=64, rms_norm_eps=1e-6, tie_word_embeddings=False,
                 rope_theta=10000.0)
    make(args.out, "qwen3", 99, qwen3, family="qwen3")

    # Gemma 3: GQA, head_dim 12 != 32 / 4, query_pre_attn_scalar 20 != head_dim, layers
    # sliding, sliding, full, sliding (sliding_window_pattern 3) with a window covering
    # max_position_embeddings (no mask takes effect), local base 100 against the global 5000
    # scaled linearly by 2 (the global layers only), tied head.
    gemma3 = dict(vocab_size=256, hidden_size=32, intermediate_size=48, num_hidden_layers=4,
                  num_attention_heads=4, num_key_value_heads=2, head_dim=12,
                  query_pre_attn_scalar=20, max_position_embeddings=64, sliding_window=64,
                  sliding_window_pattern=3, rms_norm_eps=1e-6,
                  hidden_activation="gelu_pytorch_tanh",
                  rope_parameters={"full_attention": {"rope_type": "linear", "factor": 2.0,
                                                      "rope_theta": 5000.0},
                                   "sliding_attention": {"rope_type": "default",
                                                         "rope_theta": 100.0}},
                  final_logit_softcapping=None, attn_logit_softcapping=None)
    make(args.out, "gemma3", 111, gemma3, family="gemma3")
    # MQA, an untied head, query_pre_attn_scalar = head_dim, plain RoPE, 3 layers with the
    # default pattern's last (full) layer missing: every layer sliding; bf16 weights.
    gemma3_mqa = dict(vocab_size=256, hidden_size=32, intermediate_size=64, num_hidden_layers=3,
                      num_attention_heads=2, num_key_value_heads=1, head_dim=16,
                      query_pre_attn_scalar=16, max_position_embeddings=32, sliding_window=48,
                      rms_norm_eps=1e-6, tie_word_embeddings=False,
                      rope_parameters={"full_attention": {"rope_type": "default",
                                                          "rope_theta": 10000.0},
                                       "sliding_attention": {"rope_type": "default",
                                                             "rope_theta": 1000.0}},
                      final_logit_softcapping=None, attn_logit_softcapping=None)
    make(args.out, "gemma3_mqa_untied_bf16", 112, gemma3_mqa, save_dtype=torch.bfloat16,
         family="gemma3")
    # A window of 8 under a 13-token sequence: the sliding layers' mask matters. Two layers:
    # sliding, full.
    make(args.out, "gemma3_window", 113,
         dict(gemma3, num_hidden_layers=2, sliding_window_pattern=2, sliding_window=8),
         family="gemma3")
    # Gemma 2 with soft-capping off: sandwich norms, query_pre_attn_scalar,
    # alternating layer types under a window covering max_position_embeddings.
    gemma2 = dict(vocab_size=256, hidden_size=32, intermediate_size=64, num_hidden_layers=3,
                  num_attention_heads=4, num_key_value_heads=2, head_dim=8,
                  query_pre_attn_scalar=12, max_position_embeddings=64, sliding_window=64,
                  rms_norm_eps=1e-6, rope_theta=5000.0, hidden_activation="gelu_pytorch_tanh",
                  final_logit_softcapping=None, attn_logit_softcapping=None)
    make(args.out, "gemma2", 114, gemma2, family="gemma2")
    # Attention soft-capping small enough to bend the scores (|s| reaches ~0.5 here) and a
    # window of 8 under the 13-token sequences on the sliding layers.
    make(args.out, "gemma2_softcap", 115,
         dict(gemma2, attn_logit_softcapping=0.25, sliding_window=8), family="gemma2")
    # Final logit soft-capping as released Gemma 2 has it (beside the attention's), with a cap
    # small enough to bend these small random logits (30 would leave them all but unchanged).
    make(args.out, "gemma2_final_softcap", 116,
         dict(gemma2, attn_logit_softcapping=0.25, final_logit_softcapping=0.75, sliding_window=8),
         family="gemma2")


if __name__ == "__main__":
    main()
