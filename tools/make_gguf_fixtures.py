#!/usr/bin/env python3
"""GGUF fixtures for rrt's GGUF reader (core/gguf.h) and Llama import (model/gguf_import.h).

Every file is written by gguf-py (llama.cpp's own Python package, `pip install gguf`), an
independent writer, into tests/fixtures/gguf/:

  types_<T>.gguf            T in F32, F16, BF16, Q4_0, Q4_1, Q8_0: tensors of odd shapes
                            (one block, several blocks per row, 3-D), random values plus a few
                            special ones (zeros, constants, and for the float types -0, fp16
                            subnormals, overflow to inf, NaN)
  types_reference.safetensors
                            "<T>/<tensor>": gguf-py's own dequantisation (gguf.quants.dequantize)
                            of every tensor above, float32, outermost-first shape: rrt must
                            equal it bit for bit
  metadata.gguf             one key of every GGUF value type, arrays of numbers, strings, bools
                            and nested arrays, general.alignment 64, two small tensors
  llama_untied.gguf, llama_tied.gguf
                            a tiny random HF LlamaForCausalLM (GQA, head_dim 8) in F32 with
                            llama.cpp's Q/K row permutation applied, as convert_hf_to_gguf.py
                            writes it (no output.weight in the tied one)
  llama_<variant>_reference.safetensors
                            inputs int32 [N, T], logits F32 [N, T, V] of the HF model, and the
                            HF (unpermuted) q_proj / k_proj weights under their HF names
  llama3_rope.gguf, llama3_rope_reference.safetensors
                            the same with transformers' llama3 rope_scaling (factor 32, low 1,
                            high 4, original 8192, as Llama 3.2), which llama.cpp's converter
                            writes as rope_freqs.weight: per-dimension divisors of the inverse
                            frequencies (its LlamaModel.generate_extra_tensors formula)
  tokenizer_llama3.gguf, tokenizer_qwen2.gguf
                            tokenizer-only GGUF files of the committed tokenizer.json fixtures
                            of those styles (tests/fixtures/tokenizer_json, made by the
                            `tokenizers` library), as llama.cpp's converter writes them: pre
                            "llama-bpe" / "qwen2", byte-level spellings, merges "a b", special
                            added tokens as control (3), other added ones user-defined (4);
                            rrt's GGUF tokenizer must encode that fixture's samples to the
                            library's ids
  qwen2_tied.gguf, qwen2_tied_reference.safetensors
                            a tiny random HF Qwen2ForCausalLM (q/k/v biases, tied head) as
                            llama.cpp's converter writes architecture "qwen2": HF's row order
                            (llama.cpp runs qwen2 with NeoX-style RoPE, so nothing is permuted)

The Gemma architectures' fixtures (gemma, gemma2, gemma3) come from
tools/make_gguf_gemma_fixtures.py.

llama.cpp's permutation, per attention head of Dh rows: view the rows as [2, Dh/2] (the two
rotate_half halves) and transpose to [Dh/2, 2], i.e. GGUF row 2i + j = HF row j * Dh/2 + i.
For K the heads are the kv heads.

Nothing is downloaded: the model is random (torch.manual_seed) from a config. When transformers
can load GGUF (from_pretrained(dir, gguf_file=...)), its logits are compared with the HF model's
as an independent check of the permutation, and the difference is stored in the reference's
metadata.

Regenerating gives byte-identical GGUF files and identical tensors; a reference's safetensors
metadata may list its keys in another order, so keep committed fixtures unless content changes.

Usage: python3 tools/make_gguf_fixtures.py [--out tests/fixtures/gguf]
"""
import argparse
import json
import math
import os
import shutil
import tempfile

import numpy as np
import torch
import transformers
from gguf import GGMLQuantizationType as Q
from gguf import GGUFValueType as V
from gguf import GGUFWriter
from gguf.quants import dequantize, quantize
from safetensors.numpy import save_file
from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

TYPES = [Q.F32, Q.F16, Q.BF16, Q.Q4_0, Q.Q4_1, Q.Q8_0]
N, T = 2, 7


def tensors_for(qtype, rng):
    """Named float32 arrays (outermost-first shapes) for one type's file."""
    if qtype in (Q.F32, Q.F16, Q.BF16):
        special = np.array([0.0, -0.0, 1e-6, 6e-8, 65504.0, 1e5, -np.inf, np.nan, 3.0e38,
                            -1.5e-40, 1.0, -2.5, 1 / 3], dtype=np.float32)
        return {
            "vec": rng.standard_normal(13).astype(np.float32),
            "special": special,
            "cube": (rng.standard_normal((3, 5, 7)) * 4).astype(np.float32),
        }
    blocks = (rng.standard_normal((3, 96)) * 0.5).astype(np.float32)
    blocks[1, 32:64] = 0.0    # a block of zeros: scale 0
    blocks[2, 64:96] = 0.75   # a constant block: Q4_1's d = 0, m = 0.75
    return {
        "one_block": rng.standard_normal(32).astype(np.float32),
        "rows": blocks,
        "cube": (rng.standard_normal((2, 2, 64)) * 3).astype(np.float32),
    }


def write_types(out):
    rng = np.random.default_rng(5)
    reference = {}
    for qtype in TYPES:
        w = GGUFWriter(os.path.join(out, f"types_{qtype.name}.gguf"), "rrt-test")
        for name, x in tensors_for(qtype, rng).items():
            with np.errstate(over="ignore", invalid="ignore"):
                q = quantize(x, qtype)
            # gguf-py quantises F32/F16 to their numpy dtypes; everything else to raw bytes.
            w.add_tensor(name, q, raw_dtype=None if qtype in (Q.F32, Q.F16) else qtype)
            deq = dequantize(q, qtype).astype(np.float32)
            assert deq.shape == x.shape, (qtype.name, name, deq.shape)
            reference[f"{qtype.name}/{name}"] = np.ascontiguousarray(deq)
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
    save_file(reference, os.path.join(out, "types_reference.safetensors"),
              metadata={"gguf_py": "gguf.quants.dequantize"})


def write_metadata(out):
    w = GGUFWriter(os.path.join(out, "metadata.gguf"), "rrt-test")
    w.add_custom_alignment(64)
    w.add_uint8("test.u8", 200)
    w.add_int8("test.i8", -100)
    w.add_uint16("test.u16", 60000)
    w.add_int16("test.i16", -30000)
    w.add_uint32("test.u32", 4000000000)
    w.add_int32("test.i32", -2000000000)
    w.add_float32("test.f32", 0.25)
    w.add_bool("test.bool", True)
    w.add_string("test.string", "h\u00e9llo w\u00f6rld \u2713")
    w.add_uint64("test.u64", 2**40 + 3)
    w.add_uint64("test.u64_huge", 2**63 + 1)
    w.add_int64("test.i64", -(2**40))
    w.add_float64("test.f64", 0.1)
    w.add_array("test.arr_str", ["a", "", "\u00fcn\u00ef", "tab\there"])
    w.add_key_value("test.arr_i32", [1, -2, 3], V.ARRAY, sub_type=V.INT32)
    w.add_key_value("test.arr_u8", [0, 7, 255], V.ARRAY, sub_type=V.UINT8)
    w.add_key_value("test.arr_i16", [-32768, 32767], V.ARRAY, sub_type=V.INT16)
    w.add_key_value("test.arr_u64", [1, 2**63 + 5], V.ARRAY, sub_type=V.UINT64)
    w.add_key_value("test.arr_f32", [0.5, -1.5, 3.25], V.ARRAY, sub_type=V.FLOAT32)
    w.add_key_value("test.arr_bool", [True, False, True], V.ARRAY, sub_type=V.BOOL)
    w.add_array("test.arr_nested", [[1, 2], [3], [4, 5, 6]])
    w.add_array("test.arr_nested_str", [["x", "y"], ["z"]])
    w.add_tensor("a", np.arange(6, dtype=np.float32).reshape(2, 3))
    w.add_tensor("b", np.array([1.5, -2.0], dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


# ---- Tiny Llama ---------------------------------------------------------------------------------

def permute(w, n_head):
    """llama.cpp's row order for Q and K: per head, rows [2, Dh/2] -> [Dh/2, 2]."""
    rows = w.shape[0]
    return (w.reshape(n_head, 2, rows // n_head // 2, *w.shape[1:])
            .swapaxes(1, 2).reshape(w.shape))


def tiny_llama(tied):
    torch.manual_seed(11 if tied else 7)
    cfg = LlamaConfig(vocab_size=48, hidden_size=32, intermediate_size=40, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, head_dim=8,
                      max_position_embeddings=64, rms_norm_eps=1e-5, rope_theta=10000.0,
                      tie_word_embeddings=tied, hidden_act="silu")
    model = LlamaForCausalLM(cfg).float().eval()
    with torch.no_grad():
        # Larger weights than the default init, so the logits are far from uniform.
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1.0 + 0.2 * torch.randn_like(p))
            else:
                p.copy_(0.3 * torch.randn_like(p))
    return cfg, model


def llama3_rope_factors(cfg):
    """llama.cpp's rope_freqs for transformers' llama3 scaling (convert_hf_to_gguf.py)."""
    rs = cfg.rope_parameters if hasattr(cfg, "rope_parameters") else cfg.rope_scaling
    dim = cfg.head_dim
    freqs = 1.0 / (rs["rope_theta"] ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim))
    factor, low, high = rs["factor"], rs["low_freq_factor"], rs["high_freq_factor"]
    old = rs["original_max_position_embeddings"]
    out = []
    for freq in freqs.tolist():
        wavelen = 2 * math.pi / freq
        if wavelen < old / high:
            out.append(1.0)
        elif wavelen > old / low:
            out.append(factor)
        else:
            smooth = (old / wavelen - low) / (high - low)
            out.append(1 / ((1 - smooth) / factor + smooth))
    return np.array(out, dtype=np.float32)


def write_llama_gguf(path, cfg, model, tied, arch="llama"):
    sd = {k: v.detach().numpy().astype(np.float32) for k, v in model.state_dict().items()}
    rope_base = float(getattr(cfg, "rope_theta", None) or cfg.rope_parameters["rope_theta"])
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    w = GGUFWriter(path, arch)
    w.add_name(f"rrt tiny {arch}")
    w.add_block_count(cfg.num_hidden_layers)
    w.add_context_length(cfg.max_position_embeddings)
    w.add_embedding_length(cfg.hidden_size)
    w.add_feed_forward_length(cfg.intermediate_size)
    w.add_head_count(cfg.num_attention_heads)
    w.add_head_count_kv(cfg.num_key_value_heads)
    w.add_rope_freq_base(rope_base)
    w.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    w.add_rope_dimension_count(head_dim)
    w.add_key_length(head_dim)
    w.add_value_length(head_dim)
    w.add_vocab_size(cfg.vocab_size)
    w.add_file_type(0)  # all F32
    # A minimal byte-free vocabulary so that tools which insist on a tokenizer can open it.
    w.add_tokenizer_model("gpt2")
    w.add_token_list([f"t{i}" for i in range(cfg.vocab_size)])
    w.add_token_types([1] * cfg.vocab_size)
    w.add_token_merges(["t 1"])
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)

    w.add_tensor("token_embd.weight", sd["model.embed_tokens.weight"])
    rs = getattr(cfg, "rope_parameters", None) or getattr(cfg, "rope_scaling", None) or {}
    if rs.get("rope_type") == "llama3":
        w.add_tensor("rope_freqs.weight", llama3_rope_factors(cfg))
    # llama.cpp runs llama with adjacent-pair RoPE (its converter permutes q and k), qwen2 with
    # NeoX's rotate_half (HF's order, nothing permuted).
    qk = (lambda x, heads: permute(x, heads)) if arch == "llama" else (lambda x, heads: x)
    for l in range(cfg.num_hidden_layers):
        p = f"model.layers.{l}."
        w.add_tensor(f"blk.{l}.attn_norm.weight", sd[p + "input_layernorm.weight"])
        w.add_tensor(f"blk.{l}.attn_q.weight",
                     qk(sd[p + "self_attn.q_proj.weight"], cfg.num_attention_heads))
        w.add_tensor(f"blk.{l}.attn_k.weight",
                     qk(sd[p + "self_attn.k_proj.weight"], cfg.num_key_value_heads))
        w.add_tensor(f"blk.{l}.attn_v.weight", sd[p + "self_attn.v_proj.weight"])
        for proj in ("q", "k", "v"):
            bias = p + f"self_attn.{proj}_proj.bias"
            if bias in sd:
                w.add_tensor(f"blk.{l}.attn_{proj}.bias", sd[bias])
        w.add_tensor(f"blk.{l}.attn_output.weight", sd[p + "self_attn.o_proj.weight"])
        w.add_tensor(f"blk.{l}.ffn_norm.weight", sd[p + "post_attention_layernorm.weight"])
        w.add_tensor(f"blk.{l}.ffn_gate.weight", sd[p + "mlp.gate_proj.weight"])
        w.add_tensor(f"blk.{l}.ffn_up.weight", sd[p + "mlp.up_proj.weight"])
        w.add_tensor(f"blk.{l}.ffn_down.weight", sd[p + "mlp.down_proj.weight"])
    w.add_tensor("output_norm.weight", sd["model.norm.weight"])
    if not tied:
        w.add_tensor("output.weight", sd["lm_head.weight"])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return sd


def transformers_gguf_logits(path, inputs, model_class=LlamaForCausalLM):
    """Logits of transformers' own GGUF loader on the same file, or None when it cannot."""
    tmp = tempfile.mkdtemp()
    try:
        shutil.copy(path, os.path.join(tmp, "model.gguf"))
        m = model_class.from_pretrained(tmp, gguf_file="model.gguf",
                                        torch_dtype=torch.float32).eval()
        with torch.no_grad():
            return m(torch.from_numpy(inputs).long()).logits.numpy()
    except Exception as e:  # noqa: BLE001 - the check is optional
        print(f"  transformers GGUF loading unavailable: {type(e).__name__}: {e}")
        return None
    finally:
        shutil.rmtree(tmp)


def write_llama(out, tied):
    variant = "tied" if tied else "untied"
    cfg, model = tiny_llama(tied)
    path = os.path.join(out, f"llama_{variant}.gguf")
    sd = write_llama_gguf(path, cfg, model, tied)
    rng = np.random.default_rng(3)
    inputs = rng.integers(0, cfg.vocab_size, size=(N, T)).astype(np.int32)
    with torch.no_grad():
        logits = model(torch.from_numpy(inputs).long()).logits.numpy().astype(np.float32)
    ref = {"inputs": inputs, "logits": logits}
    for l in range(cfg.num_hidden_layers):
        for proj in ("q_proj", "k_proj"):
            name = f"model.layers.{l}.self_attn.{proj}.weight"
            ref[name] = sd[name]
    meta = {"transformers_version": transformers.__version__}
    tf_logits = transformers_gguf_logits(path, inputs)
    if tf_logits is not None:
        diff = float(np.abs(tf_logits - logits).max() / np.abs(logits).max())
        meta["transformers_gguf_rel_diff"] = f"{diff:.3g}"
        print(f"  {variant}: transformers' GGUF loading vs HF logits, relative max diff {diff:.3g}")
        assert diff < 1e-5, "transformers reads the GGUF differently: permutation wrong?"
    save_file(ref, os.path.join(out, f"llama_{variant}_reference.safetensors"), metadata=meta)


def randomise(model):
    with torch.no_grad():
        # Larger weights than the default init, so the logits are far from uniform.
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1.0 + 0.2 * torch.randn_like(p))
            else:
                p.copy_(0.3 * torch.randn_like(p))
    return model


def write_reference(out, name, cfg, model, path, check_class, t=T):
    """inputs and the HF model's logits; transformers' GGUF loading as a check where it can."""
    rng = np.random.default_rng(3)
    inputs = rng.integers(0, cfg.vocab_size, size=(N, t)).astype(np.int32)
    with torch.no_grad():
        logits = model(torch.from_numpy(inputs).long()).logits.numpy().astype(np.float32)
    meta = {"transformers_version": transformers.__version__}
    tf_logits = transformers_gguf_logits(path, inputs, check_class) if check_class else None
    if tf_logits is not None:
        diff = float(np.abs(tf_logits - logits).max() / np.abs(logits).max())
        meta["transformers_gguf_rel_diff"] = f"{diff:.3g}"
        print(f"  {name}: transformers' GGUF loading vs HF logits, relative max diff {diff:.3g}")
        assert diff < 1e-5, "transformers reads the GGUF differently"
    save_file({"inputs": inputs, "logits": logits},
              os.path.join(out, f"{name}_reference.safetensors"), metadata=meta)


def write_llama3_rope(out):
    """Llama 3.2's rope scaling on a tiny model whose frequencies reach all three regions of it
    (head_dim 16, theta 500000: wavelengths from 6 to 3e5 against 2048 and 8192). transformers'
    GGUF loader ignores rope_freqs, so the check is the HF model with the scaling itself."""
    torch.manual_seed(5)
    cfg = LlamaConfig(vocab_size=48, hidden_size=32, intermediate_size=40, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=1, head_dim=16,
                      max_position_embeddings=131072, rms_norm_eps=1e-5,
                      rope_parameters={"rope_type": "llama3", "rope_theta": 500000.0,
                                       "factor": 32.0, "low_freq_factor": 1.0,
                                       "high_freq_factor": 4.0,
                                       "original_max_position_embeddings": 8192},
                      tie_word_embeddings=True, hidden_act="silu")
    model = randomise(LlamaForCausalLM(cfg).float().eval())
    path = os.path.join(out, "llama3_rope.gguf")
    write_llama_gguf(path, cfg, model, True)
    # 64 positions: long enough that the scaled frequencies move the logits well past 1e-4.
    write_reference(out, "llama3_rope", cfg, model, path, None, t=64)


def write_qwen2(out):
    torch.manual_seed(13)
    cfg = Qwen2Config(vocab_size=48, hidden_size=32, intermediate_size=40, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                      rms_norm_eps=1e-6, rope_theta=1000000.0, tie_word_embeddings=True,
                      hidden_act="silu")
    model = randomise(Qwen2ForCausalLM(cfg).float().eval())
    path = os.path.join(out, "qwen2_tied.gguf")
    write_llama_gguf(path, cfg, model, True, arch="qwen2")
    write_reference(out, "qwen2_tied", cfg, model, path, Qwen2ForCausalLM)


def write_tokenizer_gguf(out, style, pre, bos, eos):
    src = os.path.join(os.path.dirname(out.rstrip("/")), "tokenizer_json", style,
                       "tokenizer.json")
    with open(src, encoding="utf-8") as f:
        j = json.load(f)
    vocab = j["model"]["vocab"]
    added = {a["id"]: a for a in j["added_tokens"]}
    size = max(list(vocab.values()) + list(added)) + 1
    tokens, types = [None] * size, [1] * size
    for text, i in vocab.items():
        tokens[i] = text
    for i, a in added.items():
        tokens[i] = a["content"]
        types[i] = 3 if a["special"] else 4
    assert all(t is not None for t in tokens), "ids with no token"
    merges = [m if isinstance(m, str) else " ".join(m) for m in j["model"]["merges"]]
    w = GGUFWriter(os.path.join(out, f"tokenizer_{style}.gguf"), "llama")
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre(pre)
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    if bos is not None:
        w.add_bos_token_id(vocab.get(bos, next(i for i, a in added.items() if a["content"] == bos)))
    w.add_eos_token_id(next(i for i, a in added.items() if a["content"] == eos))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "tests",
                                                  "fixtures", "gguf"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    write_types(args.out)
    write_metadata(args.out)
    for tied in (False, True):
        write_llama(args.out, tied)
    write_llama3_rope(args.out)
    write_tokenizer_gguf(args.out, "llama3", "llama-bpe", "<|begin_of_text|>", "<|end_of_text|>")
    write_tokenizer_gguf(args.out, "qwen2", "qwen2", None, "<|endoftext|>")
    write_qwen2(args.out)
    total = sum(os.path.getsize(os.path.join(args.out, f)) for f in os.listdir(args.out))
    print(f"wrote {len(os.listdir(args.out))} files, {total / 1024:.0f} KiB, to {args.out}")


if __name__ == "__main__":
    main()
