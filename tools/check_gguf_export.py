#!/usr/bin/env python3
"""Reads a GGUF file written by `rrt export --format gguf` with llama.cpp's own Python reader
(gguf-py) and with transformers' GGUF loader, and compares it with the HF export of the same
checkpoint (`rrt export CKPT --out DIR`): every tensor's metadata is listed, and the logits of
transformers' model loaded from the GGUF must equal those of the model loaded from DIR (fp32
exports: to 1e-5 of their magnitude; transformers undoes llama.cpp's q/k row order itself, so
a wrong permutation or a wrong key fails here). Every weight transformers read from the GGUF
(through gguf-py) must equal the HF export's, up to the rounding of Gemma's norms, which GGUF
stores as 1 + w (1e-6).

transformers' GGUF loader does not map every key rrt's import reads for the Gemma architectures
(query_pre_attn_scalar, which llama.cpp derives from the head size; rope_parameters; the
soft-caps): those are taken from HF_DIR's config.json and passed to it as overrides.

Needs (a venv; never CI or tests): pip install torch transformers gguf accelerate
Usage: python3 tools/check_gguf_export.py FILE.gguf HF_DIR
"""
import json
import os
import shutil
import sys
import tempfile

import numpy as np
import torch
from gguf import GGUFReader
from transformers import AutoModelForCausalLM


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    path, hf_dir = sys.argv[1], sys.argv[2]
    reader = GGUFReader(path)
    arch = bytes(reader.fields["general.architecture"].parts[-1]).decode()
    print(f"{path}: architecture {arch}, {len(reader.tensors)} tensors, "
          f"{len(reader.fields)} keys")
    for t in reader.tensors[:6]:
        print(f"  {t.name} {t.tensor_type.name} {list(t.shape)}")
    overrides = {}
    if arch.startswith("gemma"):
        with open(os.path.join(hf_dir, "config.json"), encoding="utf-8") as f:
            config = json.load(f)
        for key in ("query_pre_attn_scalar", "rope_parameters", "attn_logit_softcapping",
                    "final_logit_softcapping"):
            if key in config:
                overrides[key] = config[key]
        print(f"config overrides for transformers' GGUF loader: {sorted(overrides)}")
    tmp = tempfile.mkdtemp()
    try:
        shutil.copy(path, os.path.join(tmp, "model.gguf"))
        from_gguf = AutoModelForCausalLM.from_pretrained(tmp, gguf_file="model.gguf",
                                                         torch_dtype=torch.float32,
                                                         **overrides).eval()
    finally:
        shutil.rmtree(tmp)
    from_hf = AutoModelForCausalLM.from_pretrained(hf_dir, torch_dtype=torch.float32).eval()
    gguf_sd, hf_sd = from_gguf.state_dict(), from_hf.state_dict()
    if set(gguf_sd) != set(hf_sd):
        sys.exit(f"FAIL: other tensors: {sorted(set(gguf_sd) ^ set(hf_sd))}")
    worst = max((float((gguf_sd[k].float() - hf_sd[k].float()).abs().max()), k) for k in hf_sd)
    print(f"{len(hf_sd)} tensors read back; largest difference {worst[0]:.3g} ({worst[1]})")
    if worst[0] > 1e-6:
        sys.exit("FAIL: the GGUF holds other weights")
    vocab = from_hf.config.vocab_size
    tokens = torch.from_numpy(np.random.default_rng(1).integers(0, vocab, size=(2, 12)))
    with torch.no_grad():
        a = from_gguf(tokens).logits.numpy()
        b = from_hf(tokens).logits.numpy()
    rel = float(np.abs(a - b).max() / np.abs(b).max())
    print(f"transformers from the GGUF vs from the HF export: relative max diff {rel:.3g}")
    if rel > 1e-5:
        sys.exit("FAIL: the GGUF export computes another function")
    print("ok")


if __name__ == "__main__":
    main()
