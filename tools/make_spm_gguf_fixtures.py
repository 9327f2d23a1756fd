#!/usr/bin/env python3
"""Fixtures for rrt's SentencePiece-style GGUF tokenizer (data/spm_tokenizer.h): the vocabulary
Llama 2 / TinyLlama / Gemma GGUF files carry (tokenizer.ggml.model = "llama").

Writes into tests/fixtures/spm_gguf/
  spm_tokenizer.gguf  a SentencePiece BPE model trained here on data/corpus/demo.jsonl (byte
                      fallback, identity normalisation, whitespace runs kept, digits split, one
                      user-defined symbol), stored as llama.cpp's converter (convert_hf_to_gguf.py,
                      _set_vocab_sentencepiece) stores one: tokens, scores, token types from the
                      SentencePieceProcessor (unknown 2, control 3, unused 5, byte 6, else normal
                      1; the user-defined symbol 4, as the converter marks added tokens), bos /
                      eos / unk ids, add_space_prefix from the model's add_dummy_prefix,
                      add_bos_token true; no tensors
  gemma_style.gguf    the same vocabulary with add_space_prefix false and tokenizer.ggml.pre
                      "default" (Gemma's converter writes both)
  expected.json       for every sample: the sentencepiece library's ids (no BOS / EOS) and its
                      decoding of them, the same for the model retrained without a dummy prefix
                      (the gemma_style file's behaviour), and, where transformers can load a
                      tokenizer from the GGUF (AutoTokenizer.from_pretrained(dir,
                      gguf_file=...)), its ids as a second reference (the llama-style file only:
                      transformers adds the dummy prefix whatever add_space_prefix says); texts
                      holding <s>, </s>, <unk> with the library's ids when those are matched as
                      user-defined symbols are (rrt's rule); decodings of hand-made id sequences
                      (BOS / EOS / unknown ids, byte tokens that are not UTF-8)

The training corpus is the repository's own, so the fixture can be regenerated offline. The
sentencepiece library version is recorded in expected.json.

Usage: /work/main/.venv-bench/bin/python tools/make_spm_gguf_fixtures.py [--out DIR]
"""
import argparse
import io
import json
import os
import shutil
import tempfile

import gguf
import sentencepiece as spm

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
USER_DEFINED = "<sep>"

SAMPLES = [
    "Hello world",
    "The quick brown fox jumps over the lazy dog. It's a dog's life, isn't it?",
    "  two leading spaces, and three trailing   ",
    "a    b\t\tc\n\nd\r\n e",
    " ",
    "\n",
    "def fibonacci(n: int) -> int:\n    a, b = 0, 1\n    for _ in range(n):\n"
    "        a, b = b, a + b\n    return a  # 832040\n",
    "#include <vector>\nint main() { return v[0] == 2 ? 0 : 1; }\n",
    "3.14159 2026-12-06 1234567890 0x1F $4,500.00 50%",
    "naïve café, Ærøskøbing, Straße, façade",
    "Привет, мир! Γειά σου κόσμε.",
    "日本語のテキストと中文文本",
    "emoji: I ❤️ 🦀 and 🐍! 👩‍👩‍👧 🇫🇷",
    "tab\tseparated\tvalues\n1\t2\t3",
    "mixed ▁ lower block and __underscores__",
    "word" * 30,
    "He said: \"Q.E.D.\" -- then (quietly) left... [sic] {ok} <tag/> a|b ~ ^",
    "text with the user symbol" + USER_DEFINED + "in the middle " + USER_DEFINED,
    USER_DEFINED + "at the start",
    "\u2581already escaped \u2581\u2581",
    "\u0000nul and \u007f del \u0085 nel \u00a0 nbsp \u3000 ideographic space",
]
# Texts holding control or unknown tokens' own text: the sentencepiece library spells them out,
# llama.cpp (parse_special) and transformers cut them out as the tokens; rrt follows the latter.
SPECIAL_SAMPLES = [
    "<s>Hello</s>",
    "a <unk> b",
    "start</s>",
]


def corpus_text(limit):
    texts = []
    total = 0
    with open(os.path.join(ROOT, "data", "corpus", "demo.jsonl"), encoding="utf-8") as f:
        for line in f:
            t = json.loads(line)["text"]
            texts.append(t)
            total += len(t)
            if total >= limit:
                break
    return texts


def train(texts, prefix, add_dummy_prefix):
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(texts), model_prefix=prefix, model_type="bpe", vocab_size=1000,
        byte_fallback=True, character_coverage=0.9995, normalization_rule_name="identity",
        remove_extra_whitespaces=False, add_dummy_prefix=add_dummy_prefix,
        allow_whitespace_only_pieces=True, split_digits=True, user_defined_symbols=[USER_DEFINED],
        unk_id=0, bos_id=1, eos_id=2, pad_id=-1, max_sentence_length=1 << 20, num_threads=1,
        minloglevel=2)
    return prefix + ".model"


def write_gguf(path, model_file, add_dummy_prefix, pre=None):
    sp = spm.SentencePieceProcessor(model_file=model_file)
    tokens, scores, types = [], [], []
    for i in range(sp.vocab_size()):
        tokens.append(sp.id_to_piece(i))
        scores.append(sp.get_score(i))
        t = gguf.TokenType.NORMAL
        if sp.is_unknown(i):
            t = gguf.TokenType.UNKNOWN
        elif sp.is_control(i):
            t = gguf.TokenType.CONTROL
        elif sp.is_unused(i):
            t = gguf.TokenType.UNUSED
        elif sp.is_byte(i):
            t = gguf.TokenType.BYTE
        elif tokens[i] == USER_DEFINED:  # the model's one user-defined piece
            t = gguf.TokenType.USER_DEFINED
        types.append(int(t))
    w = gguf.GGUFWriter(path, "llama")
    w.add_name("rrt spm tokenizer fixture")
    w.add_tokenizer_model("llama")
    if pre is not None:
        w.add_tokenizer_pre(pre)
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_bos_token_id(sp.bos_id())
    w.add_eos_token_id(sp.eos_id())
    w.add_unk_token_id(sp.unk_id())
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)
    w.add_add_space_prefix(add_dummy_prefix)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return sp


def hf_ids(path, texts):
    """transformers' tokenizer from the GGUF, or None when it cannot build one."""
    try:
        from transformers import AutoTokenizer
        tok = AutoTokenizer.from_pretrained(os.path.dirname(path),
                                            gguf_file=os.path.basename(path))
    except Exception as e:  # noqa: BLE001 - a missing reference is recorded, not fatal
        print(f"transformers cannot load {path}: {type(e).__name__}: {e}")
        return None
    return [tok.encode(t, add_special_tokens=False) for t in texts]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(ROOT, "tests", "fixtures", "spm_gguf"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    texts = corpus_text(400_000)
    with tempfile.TemporaryDirectory() as tmp:
        llama_model = train(texts, os.path.join(tmp, "llama"), True)
        gemma_model = train(texts, os.path.join(tmp, "gemma"), False)
        llama_gguf = os.path.join(args.out, "spm_tokenizer.gguf")
        gemma_gguf = os.path.join(args.out, "gemma_style.gguf")
        sp = write_gguf(llama_gguf, llama_model, True)
        sp_gemma = spm.SentencePieceProcessor(model_file=gemma_model)
        # Gemma-style: the same pieces (only the dummy prefix differs in training, so the
        # vocabularies may differ too; each file holds its own model's pieces).
        write_gguf(gemma_gguf, gemma_model, False, pre="default")
        # transformers reads from a folder: copy each GGUF alone into one.
        refs = {}
        # Only the llama-style file: transformers' GGUF loader adds the dummy prefix whatever
        # add_space_prefix says, so it is no reference for the Gemma-style file.
        for name, path, samples in [("llama", llama_gguf, SAMPLES + SPECIAL_SAMPLES)]:
            d = os.path.join(tmp, name + "_dir")
            os.makedirs(d)
            shutil.copy(path, d)
            refs[name] = hf_ids(os.path.join(d, os.path.basename(path)), samples)

    def sample_entries(proc, samples, hf):
        out = []
        for k, text in enumerate(samples):
            ids = proc.encode(text)
            e = {"text": text, "ids": ids, "decoded": proc.decode(ids)}
            if hf is not None:
                e["hf_ids"] = hf[k]
            out.append(e)
        return out

    bos, eos, unk = sp.bos_id(), sp.eos_id(), sp.unk_id()
    user_id = sp.piece_to_id(USER_DEFINED)

    def as_user_defined(text):
        """The library's ids when control and unknown tokens' texts are matched as user-defined
        symbols are (what rrt does): each replaced by the user-defined symbol, then its id by
        theirs, in order."""
        found = []
        for pos in range(len(text)):
            for piece in ("<unk>", "<s>", "</s>"):
                if text.startswith(piece, pos):
                    found.append(sp.piece_to_id(piece))
        for piece in ("<unk>", "<s>", "</s>"):
            text = text.replace(piece, USER_DEFINED)
        ids = sp.encode(text)
        assert ids.count(user_id) == len(found), text
        it = iter(found)
        return [next(it) if i == user_id else i for i in ids]
    byte = lambda b: sp.piece_to_id(f"<0x{b:02X}>")  # noqa: E731
    hello = sp.encode("Hello world")
    decode_cases = [
        [bos] + hello + [eos],
        [unk],
        hello + [unk] + hello,
        [byte(0xE2), byte(0x82), byte(0xAC)] + hello,  # a euro sign from bytes
        [byte(0xFF)] + hello + [byte(0xC3)],  # bytes that are no UTF-8
        hello + hello,
        [sp.piece_to_id(USER_DEFINED)] + hello,
        [sp.piece_to_id("\u2581")] * 3 + hello,
    ]
    expected = {
        "sentencepiece_version": spm.__version__,
        "vocab_size": sp.vocab_size(),
        "bos_id": bos, "eos_id": eos, "unk_id": unk,
        "user_defined": USER_DEFINED,
        "user_defined_id": sp.piece_to_id(USER_DEFINED),
        "samples": sample_entries(sp, SAMPLES, refs["llama"]),
        "gemma_samples": sample_entries(sp_gemma, SAMPLES, None),
        "special_samples": [
            {"text": t, "sentencepiece_ids": sp.encode(t), "ids": as_user_defined(t),
             "decoded": sp.decode(as_user_defined(t)),
             **({"hf_ids": refs["llama"][len(SAMPLES) + k]} if refs["llama"] else {})}
            for k, t in enumerate(SPECIAL_SAMPLES)],
        "decode_cases": [{"ids": ids, "decoded": sp.decode(ids)} for ids in decode_cases],
    }
    with io.open(os.path.join(args.out, "expected.json"), "w", encoding="utf-8") as f:
        json.dump(expected, f, ensure_ascii=False, indent=1)
        f.write("\n")
    agree = lambda name, entries: sum(e.get("hf_ids") == e["ids"] for e in entries)  # noqa: E731
    for name, key in [("llama", "samples")]:
        if refs[name] is not None:
            print(f"transformers agrees with sentencepiece on {agree(name, expected[key])} of "
                  f"{len(expected[key])} {name} samples")
    for f in sorted(os.listdir(args.out)):
        print(f, os.path.getsize(os.path.join(args.out, f)))


if __name__ == "__main__":
    main()
