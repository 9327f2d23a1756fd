#!/usr/bin/env python3
"""GGUF fixtures of the Gemma architectures for rrt's GGUF import (model/gguf_import.h), written
by gguf-py (llama.cpp's own Python package) into tests/fixtures/gguf/ as llama.cpp's converter
(convert_hf_to_gguf.py, classes GemmaModel, Gemma2Model, Gemma3Model) writes them:

  gemma_tied.gguf     a tiny random HF GemmaForCausalLM (MQA, head_dim 8 != 16 / 2); the
                      converter writes no rope.freq_base (llama.cpp's 10000, the model's) and
                      drops lm_head (llama.cpp's gemma always ties it)
  gemma2.gguf         Gemma2ForCausalLM: sandwich norms, window 4 on every other layer under
                      12-token inputs, attention and final soft-caps 5 and 3 (small enough to
                      bend the scores and the logits), query_pre_attn_scalar = head_dim (what
                      llama.cpp assumes below 46 blocks)
  gemma3_untied.gguf  Gemma3ForCausalLM: q/k head norms, 7 layers (five windowed, one global,
                      one windowed: llama.cpp's fixed pattern of 6), window 4, global base 1e6
                      scaled linearly by 2 (rope.scaling.*), local base 10000 (llama.cpp's
                      fixed one), an untied head (output.weight)
  <name>_reference.safetensors
                      inputs int32 [N, T] and the HF model's logits F32 [N, T, V]

What the converter does to the tensors: every weight whose HF name ends in "norm.weight" is
stored as 1 + w (llama.cpp's RMSNorm has no unit offset; Gemma's has), q and k keep HF's row
order (llama.cpp runs the Gemmas with NeoX-style RoPE), names follow gguf-py's tensor map
(post_attention_layernorm -> post_attention_norm, pre_feedforward_layernorm -> ffn_norm,
post_feedforward_layernorm -> post_ffw_norm, q_norm -> attn_q_norm). Every file carries a
SentencePiece-style vocabulary (tokenizer.ggml.model "llama": tokens, scores, token types), as
Gemma's converter writes it.

transformers' own GGUF loader reads gemma2 and gemma3 files; it maps neither the soft-caps, nor
the attention scale, nor the RoPE scaling onto the config, so those are passed to it as config
overrides (the values llama.cpp derives), and its logits must equal the HF model's (the
difference is stored in the reference's metadata). It has no gemma (1) loader.

Usage: python3 tools/make_gguf_gemma_fixtures.py [--out tests/fixtures/gguf]
"""
import argparse
import os
import shutil
import tempfile

import numpy as np
import torch
import transformers
from gguf import GGUFWriter, RopeScalingType
from safetensors.numpy import save_file
from transformers import (AutoModelForCausalLM, Gemma2Config, Gemma2ForCausalLM,
                          Gemma3ForCausalLM, Gemma3TextConfig, GemmaConfig, GemmaForCausalLM)

N, T = 2, 12
VOCAB = 40
# gguf-py's tensor map for the three architectures (HF suffix -> GGUF suffix, per layer).
LAYER_NAMES = {
    "input_layernorm.weight": "attn_norm.weight",
    "self_attn.q_proj.weight": "attn_q.weight",
    "self_attn.k_proj.weight": "attn_k.weight",
    "self_attn.v_proj.weight": "attn_v.weight",
    "self_attn.o_proj.weight": "attn_output.weight",
    "self_attn.q_norm.weight": "attn_q_norm.weight",
    "self_attn.k_norm.weight": "attn_k_norm.weight",
    "mlp.gate_proj.weight": "ffn_gate.weight",
    "mlp.up_proj.weight": "ffn_up.weight",
    "mlp.down_proj.weight": "ffn_down.weight",
    "pre_feedforward_layernorm.weight": "ffn_norm.weight",
    "post_feedforward_layernorm.weight": "post_ffw_norm.weight",
}


def layer_name(arch, suffix):
    # Gemma 1's post_attention_layernorm is the MLP's input norm; Gemma 2 / 3's is the norm on
    # the attention output.
    if suffix == "post_attention_layernorm.weight":
        return "ffn_norm.weight" if arch == "gemma" else "post_attention_norm.weight"
    return LAYER_NAMES[suffix]


def randomise(model, seed):
    torch.manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            # Gemma's norms scale by (1 + w): w around 0.
            p.copy_((0.2 if name.endswith("norm.weight") else 0.3) * torch.randn_like(p))
    return model


def add_vocabulary(w):
    """A SentencePiece-style vocabulary as Gemma's converter writes it (tokenizer.ggml.model
    "llama"): pad, eos, bos, unk as control / unknown tokens, then pieces with scores."""
    tokens = ["<pad>", "<eos>", "<bos>", "<unk>"] + [f"\u2581t{i}" for i in range(VOCAB - 4)]
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores([0.0] * 4 + [-float(i) for i in range(VOCAB - 4)])
    w.add_token_types([3, 3, 3, 2] + [1] * (VOCAB - 4))
    w.add_bos_token_id(2)
    w.add_eos_token_id(1)
    w.add_pad_token_id(0)
    w.add_unk_token_id(3)
    w.add_add_space_prefix(False)


def write_gguf(path, arch, cfg, model):
    sd = {k: v.detach().float().numpy() for k, v in model.state_dict().items()}
    w = GGUFWriter(path, arch)
    w.add_name(f"rrt tiny {arch}")
    w.add_context_length(cfg.max_position_embeddings)
    w.add_embedding_length(cfg.hidden_size)
    w.add_block_count(cfg.num_hidden_layers)
    w.add_feed_forward_length(cfg.intermediate_size)
    w.add_head_count(cfg.num_attention_heads)
    w.add_head_count_kv(cfg.num_key_value_heads)
    w.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    w.add_key_length(cfg.head_dim)
    w.add_value_length(cfg.head_dim)
    w.add_file_type(0)  # all F32
    if arch == "gemma2":
        w.add_attn_logit_softcapping(cfg.attn_logit_softcapping)
        w.add_final_logit_softcapping(cfg.final_logit_softcapping)
        w.add_sliding_window(cfg.sliding_window)
    if arch == "gemma3":
        full = cfg.rope_parameters["full_attention"]
        w.add_rope_freq_base(full["rope_theta"])
        w.add_sliding_window(cfg.sliding_window)
        if full.get("rope_type") == "linear":
            w.add_rope_scaling_type(RopeScalingType.LINEAR)
            w.add_rope_scaling_factor(full["factor"])
    add_vocabulary(w)

    def plus_one(name, x):
        return (x + np.float32(1.0)).astype(np.float32) if name.endswith("norm.weight") else x

    w.add_tensor("token_embd.weight", sd["model.embed_tokens.weight"])
    for l in range(cfg.num_hidden_layers):
        prefix = f"model.layers.{l}."
        for name in [k for k in sd if k.startswith(prefix)]:
            suffix = name[len(prefix):]
            w.add_tensor(f"blk.{l}.{layer_name(arch, suffix)}", plus_one(name, sd[name]))
    w.add_tensor("output_norm.weight", plus_one("model.norm.weight", sd["model.norm.weight"]))
    # The converter drops lm_head for gemma and gemma2; gemma3 keeps an untied one.
    if arch == "gemma3" and not cfg.tie_word_embeddings:
        w.add_tensor("output.weight", sd["lm_head.weight"])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def transformers_gguf_logits(path, inputs, overrides):
    tmp = tempfile.mkdtemp()
    try:
        shutil.copy(path, os.path.join(tmp, "model.gguf"))
        m = AutoModelForCausalLM.from_pretrained(tmp, gguf_file="model.gguf",
                                                 dtype=torch.float32, **overrides).eval()
        m.config._attn_implementation = "eager"
        with torch.no_grad():
            return m(torch.from_numpy(inputs).long()).logits.numpy()
    finally:
        shutil.rmtree(tmp)


def make(out, name, seed, arch, cfg, model_class, overrides=None):
    model = randomise(model_class(cfg).float().eval(), seed)
    model.config._attn_implementation = "eager"
    path = os.path.join(out, f"{name}.gguf")
    write_gguf(path, arch, cfg, model)
    rng = np.random.default_rng(3)
    inputs = rng.integers(0, cfg.vocab_size, size=(N, T)).astype(np.int32)
    with torch.no_grad():
        logits = model(torch.from_numpy(inputs).long()).logits.numpy().astype(np.float32)
    meta = {"transformers_version": transformers.__version__}
    if overrides is not None:
        tf = transformers_gguf_logits(path, inputs, overrides)
        diff = float(np.abs(tf - logits).max() / np.abs(logits).max())
        meta["transformers_gguf_rel_diff"] = f"{diff:.3g}"
        meta["transformers_gguf_overrides"] = repr(sorted(overrides))
        print(f"  {name}: transformers' GGUF loading vs HF logits, relative max diff {diff:.3g}")
        assert diff < 1e-5, "transformers reads the GGUF differently"
    save_file({"inputs": inputs, "logits": logits},
              os.path.join(out, f"{name}_reference.safetensors"), metadata=meta)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "tests",
                                                  "fixtures", "gguf"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    common = dict(vocab_size=VOCAB, hidden_size=16, intermediate_size=24, num_attention_heads=2,
                  num_key_value_heads=1, head_dim=8, max_position_embeddings=64,
                  rms_norm_eps=1e-6, hidden_activation="gelu_pytorch_tanh", pad_token_id=0,
                  bos_token_id=2, eos_token_id=1)
    make(args.out, "gemma_tied", 21, "gemma",
         GemmaConfig(**common, num_hidden_layers=2, rope_theta=10000.0,
                     hidden_act="gelu_pytorch_tanh", tie_word_embeddings=True),
         GemmaForCausalLM)
    gemma2 = Gemma2Config(**common, num_hidden_layers=3, query_pre_attn_scalar=8,
                          sliding_window=4, attn_logit_softcapping=5.0,
                          final_logit_softcapping=3.0, rope_theta=10000.0,
                          tie_word_embeddings=True)
    make(args.out, "gemma2", 22, "gemma2", gemma2, Gemma2ForCausalLM,
         overrides=dict(query_pre_attn_scalar=8, attn_logit_softcapping=5.0,
                        final_logit_softcapping=3.0))
    rope = {"full_attention": {"rope_type": "linear", "factor": 2.0, "rope_theta": 1000000.0},
            "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0}}
    gemma3 = Gemma3TextConfig(**common, num_hidden_layers=7, query_pre_attn_scalar=8,
                              sliding_window=4, rope_parameters=rope,
                              final_logit_softcapping=None, attn_logit_softcapping=None,
                              tie_word_embeddings=False)
    assert gemma3.layer_types == ["sliding_attention"] * 5 + ["full_attention",
                                                              "sliding_attention"]
    make(args.out, "gemma3_untied", 23, "gemma3", gemma3, Gemma3ForCausalLM,
         overrides=dict(query_pre_attn_scalar=8, rope_parameters=rope))
    print(f"wrote the Gemma fixtures to {args.out}")


if __name__ == "__main__":
    main()
