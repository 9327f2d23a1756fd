#!/usr/bin/env python3
"""Checks the tokenizer.json `rrt export --format hf` writes for a SentencePiece GGUF vocabulary
(data/tokenizer_json_from_spm.cpp) with the `tokenizers` library itself, against the
sentencepiece library's ids and decodings recorded in tests/fixtures/spm_gguf/expected.json
(tools/make_spm_gguf_fixtures.py).

For each fixture (spm_tokenizer.gguf: Llama 2 style, add_space_prefix; gemma_style.gguf: no
prefix) it runs the real export path: `rrt convert` a small Gemma GGUF model
(tests/fixtures/gguf/gemma_tied.gguf, copied), puts the fixture's vocabulary where the
checkpoint's data.tokenizer points, `rrt export`s it, then loads DIR/tokenizer.json with
tokenizers.Tokenizer and DIR with transformers' AutoTokenizer and compares, sample by sample:
  - encode(text, add_special_tokens=False) with sentencepiece's ids;
  - decode(sentencepiece's ids) with sentencepiece's decoding;
  - AutoTokenizer's encode(text) starting with BOS (tokenizer.ggml.add_bos_token).
A sample whose text holds an added token (<sep>, <s>, </s>, <unk>) followed by more text is a
known difference with a prefix: the library normalizes each stretch between added tokens on its
own, so that stretch gets its own "▁" (llama.cpp does the same), where sentencepiece prefixes
the whole text once. The unknown token is special, so decode(skip_special_tokens=True) drops it
where sentencepiece gives " \u2047 ". Such samples are listed, not failed; any other difference
fails (exit 1).

Usage: /work/main/.venv-bench/bin/python tools/check_spm_tokenizer_json.py [--rrt build/rrt]
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
FIXTURES = os.path.join(ROOT, "tests", "fixtures")
ADDED = ("<sep>", "<s>", "</s>", "<unk>")


def export(rrt, vocabulary, tmp):
    """rrt convert + rrt export with `vocabulary` as the checkpoint's data.tokenizer."""
    model = os.path.join(tmp, "model.gguf")
    shutil.copy(os.path.join(FIXTURES, "gguf", "gemma_tied.gguf"), model)
    subprocess.run([rrt, "convert", "--from", model, "--loops", "1", "--lora-rank", "0",
                    "--out", os.path.join(tmp, "ck", "init.h5")], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    shutil.copy(vocabulary, model)  # data.tokenizer names this path
    out = os.path.join(tmp, "hf")
    log = subprocess.run([rrt, "export", os.path.join(tmp, "ck", "init.h5"), "--out", out],
                         check=True, capture_output=True, text=True).stdout
    if "wrote " + os.path.join(out, "tokenizer.json") not in log:
        sys.exit(f"rrt export wrote no tokenizer.json:\n{log}")
    return out


def known_difference(text):
    """An added token followed by text (the stretch after it gets its own prefix)."""
    for token in ADDED:
        at = text.find(token)
        while at >= 0:
            if at + len(token) < len(text):
                return True
            at = text.find(token, at + 1)
    return False


def check(name, out, samples, prefix, bos_id, unk_id):
    from tokenizers import Tokenizer
    from transformers import AutoTokenizer
    tok = Tokenizer.from_file(os.path.join(out, "tokenizer.json"))
    auto = AutoTokenizer.from_pretrained(out)
    same, known, bad = 0, [], []
    for s in samples:
        text, ids = s["text"], s["ids"]
        ours = tok.encode(text, add_special_tokens=False).ids
        decoded = tok.decode(ids, skip_special_tokens=True)
        if decoded != s["decoded"] and unk_id in ids and \
                decoded == s["decoded"].replace(" \u2047 ", ""):
            known.append(f"decode {text!r}: {decoded!r} vs sentencepiece {s['decoded']!r} "
                         "(the unknown token is special: skipped)")
        elif decoded != s["decoded"]:
            bad.append(f"decode {text!r}: {decoded!r} != sentencepiece's {s['decoded']!r}")
        if auto.encode(text)[:1] != [bos_id]:
            bad.append(f"AutoTokenizer.encode({text!r}) does not start with BOS {bos_id}")
        if ours == ids:
            same += 1
        elif prefix and known_difference(text):
            known.append(f"{text!r}: {ours} vs sentencepiece {ids}")
        else:
            bad.append(f"encode {text!r}: {ours} != sentencepiece's {ids}")
    print(f"{name}: tokenizers {tok.get_vocab_size()} tokens; {same}/{len(samples)} samples "
          f"encode as sentencepiece, {len(known)} known differences, {len(bad)} failures")
    for line in known:
        print("  known:", line)
    for line in bad:
        print("  FAIL", line)
    return not bad


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rrt", default=os.path.join(ROOT, "build", "rrt"))
    args = ap.parse_args()
    with open(os.path.join(FIXTURES, "spm_gguf", "expected.json"), encoding="utf-8") as f:
        expected = json.load(f)
    # sentencepiece spells <s>, </s>, <unk> out; the library (and rrt) cut them out as the
    # tokens: those samples are compared with the ids rrt's SpmTokenizer gives ("ids").
    llama_samples = expected["samples"] + [
        {"text": s["text"], "ids": s["ids"], "decoded": s["decoded"]}
        for s in expected["special_samples"]]
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        for name, fixture, samples, prefix in [
                ("spm_tokenizer.gguf", "spm_tokenizer.gguf", llama_samples, True),
                ("gemma_style.gguf", "gemma_style.gguf", expected["gemma_samples"], False)]:
            d = os.path.join(tmp, name)
            os.makedirs(d)
            out = export(args.rrt, os.path.join(FIXTURES, "spm_gguf", fixture), d)
            ok = check(name, out, samples, prefix, expected["bos_id"], expected["unk_id"]) and ok
    import tokenizers
    import transformers
    print(f"tokenizers {tokenizers.__version__}, transformers {transformers.__version__}, "
          f"sentencepiece {expected['sentencepiece_version']} (expected.json)")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
