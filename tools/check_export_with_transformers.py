#!/usr/bin/env python3
"""Checks an `rrt export` directory against transformers (CPU, float32).

Loads each DIR with transformers' AutoModelForCausalLM (LlamaForCausalLM with or without RoPE
scaling, GemmaForCausalLM, GPTNeoXForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM,
Gemma3ForCausalLM or Gemma2ForCausalLM, as its config.json says), fails when a tensor of the file is unused or a
weight of the model is missing from the file (transformers would initialise it at random), runs
the tokens stored in a reference file written by rrt and prints the max abs difference between
the two sets of logits. The
reference file (DIR/rrt_logits.safetensors) holds `tokens` (int32 [N, T]) and `logits`
(float32 [N, T, V]); the C++ test RelaxedExport.WritesTransformersCheck writes one:

    RRT_EXPORT_CHECK_DIR=/tmp/rrt_export_check \\
        build/tests/test_hf_export --gtest_filter=RelaxedExport.WritesTransformersCheck
    python3 tools/check_export_with_transformers.py /tmp/rrt_export_check/*/

Exit status 1 when a difference exceeds --tol times the largest |logit|, or a tensor is missing
or unexpected.
"""
import argparse
import os
import sys

import torch
import transformers
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM


def check(path, tol):
    ref = load_file(os.path.join(path, "rrt_logits.safetensors"))
    tokens = ref["tokens"].long()
    want = ref["logits"].double()

    major, minor = (int(x) for x in transformers.__version__.split(".")[:2])
    dtype_key = "dtype" if (major, minor) >= (4, 56) else "torch_dtype"
    model, info = AutoModelForCausalLM.from_pretrained(
        path, output_loading_info=True, **{dtype_key: torch.float32})
    model.eval()
    arch = type(model).__name__
    bad = {k: sorted(info.get(k) or []) for k in ("missing_keys", "unexpected_keys",
                                                  "mismatched_keys")}
    if any(bad.values()):
        print(f"{path}: FAIL: {arch} does not load the file as it is: "
              + ", ".join(f"{k} {v}" for k, v in bad.items() if v))
        return False
    with torch.no_grad():
        got = model(input_ids=tokens).logits.double()
    if got.shape != want.shape:
        print(f"{path}: FAIL: shape mismatch: transformers {tuple(got.shape)}, "
              f"rrt {tuple(want.shape)}")
        return False
    diff = (got - want).abs().max().item()
    scale = want.abs().max().item()
    ok = diff <= tol * scale
    print(f"{path}: {arch}, {model.config.num_hidden_layers} layers, tied head "
          f"{model.config.tie_word_embeddings}, tokens {tuple(tokens.shape)}: "
          f"max |logit| {scale:.6g}, max abs difference {diff:.3g} "
          f"(relative {diff / max(scale, 1e-30):.3g}) {'OK' if ok else 'FAIL'}")
    return ok


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dirs", nargs="+", help="directories written by rrt export, each holding "
                    "rrt_logits.safetensors")
    ap.add_argument("--tol", type=float, default=1e-4,
                    help="allowed max abs difference relative to max |logit| (default 1e-4)")
    args = ap.parse_args()
    results = [check(d, args.tol) for d in args.dirs]
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
