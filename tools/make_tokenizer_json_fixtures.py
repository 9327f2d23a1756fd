#!/usr/bin/env python3
"""Fixtures for rrt's tokenizer.json reader (data/tokenizer_json.h).

Writes tests/fixtures/tokenizer_json/<style>/tokenizer.json (+ tokenizer_config.json where the
style has one) and tests/fixtures/tokenizer_json/expected.json: for every style and every sample
text, the ids of the `tokenizers` library's encode (without and with the post-processor's
special tokens) and its decode of the latter (skipping special tokens and keeping them).

Styles (each trained with `tokenizers` on local text: rrt's demo corpus, its docs and sources):
  gpt2        byte-level BPE, ByteLevel pre-tokenizer (GPT-2's regex), ByteLevel decoder
  smollm      Sequence[Digits(individual_digits), ByteLevel]: SmolLM / StarCoder style
  llama3      Split(Llama 3's regex, isolated) + ByteLevel(use_regex=false), ignore_merges,
              post-processor Sequence[ByteLevel, TemplateProcessing(<|begin_of_text|> $A)],
              special tokens appended after the model's vocabulary
  qwen2       NFC normalizer, Split(Qwen2's regex) + ByteLevel, <|endoftext|> <|im_start|>
              <|im_end|> special and <tool_call> added but not special
  llama2      Metaspace-style BPE with byte fallback as Llama 2 / TinyLlama files spell it:
              normalizer Sequence[Prepend(▁), Replace(" ", ▁)], no pre-tokenizer, decoder
              Sequence[Replace(▁, " "), ByteFallback, Fuse, Strip(" ", 1, 0)], template <s> $A;
              merges in the old "a b" string form
  metaspace   the same model with the Metaspace pre-tokenizer (prepend_scheme "first"), as
              transformers writes Llama 2 files with legacy=False
  gemma       the same model as Gemma spells it: Replace(" ", ▁) only, decoder Sequence[
              Replace(▁, " "), ByteFallback, Fuse], template <bos> $A
  smollm2     SmolLM2-135M-Instruct's real tokenizer as transformers 4.57 writes it from the GGUF
              file (AutoTokenizer.from_pretrained(dir, gguf_file=...).save_pretrained), with its
              vocabulary and merges trimmed to those the samples use (ids unchanged; the script
              checks that the trimmed file encodes and decodes every sample as the full one)
  options_*   the options no family's file uses, on those models (option_styles below)

Training breaks ties between equally frequent pairs in hash order, so a rerun may differ in a
few merges; the committed fixtures are the reference, whatever the rerun gives.

transformers' GGUF loader refuses to run without PyTorch although reading a tokenizer needs
none; the script declares it present for that call rather than install PyTorch (a few GB).

Needs (a venv; never CI or tests): pip install tokenizers "transformers==4.57.1" gguf
Usage: python3 tools/make_tokenizer_json_fixtures.py [--gguf PATH] [--out tests/fixtures/tokenizer_json]
       (--gguf defaults to what tools/fetch_smollm2.sh prints)
"""
import argparse
import glob
import json
import os
import subprocess
import tempfile

import tokenizers
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
from tokenizers.trainers import BpeTrainer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

LLAMA3_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
                r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}|"
               r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")

SAMPLES = [
    "The quick brown fox jumps over the lazy dog. It's a dog's life, isn't it? "
    "SHE'S HERE, DON'T GO! We'll see; they'd've said I'm fine.",
    "Grüße aus Köln! Ça coûte 12,50 € — très cher. Ñandú, año, pingüino.",
    "Привет, мир! Как дела? Ελληνικά: καλημέρα. Türkçe: İstanbul, ığdır.",
    "中文分词很难。日本語のテキスト、カタカナとひらがな。한국어 문장입니다.",
    "العربية من اليمين إلى اليسار. हिन्दी में लिखा गया वाक्य। ภาษาไทย",
    "def fibonacci(n: int) -> int:\n    a, b = 0, 1\n    for _ in range(n):\n"
    "        a, b = b, a + b\n    return a\n\n\nprint(fibonacci(30))  # 832040\n",
    "#include <vector>\nint main() {\n\tstd::vector<int> v{1, 2, 3};\n\treturn v[0] == 2 ? 0 : 1;"
    "   \r\n}\r\n",
    "Numbers: 0 7 42 123 1234 12345 3.14159 -273.15 1e-9 0x1F 1,000,000 ٣٤٥ ² ½ Ⅻ",
    "Whitespace   runs\t\ttabs\n\n\nnewlines    \n  trailing   \u00a0nbsp\u3000ideographic"
    "\u2003em\u0085nel end   ",
    "   leading spaces and a final newline\n",
    "Unicode spaces in runs:\u0085\u0085x \u0085  y\u2028\u2029z\u000b\u000c w \u3000\u3000 v\u00a0 u",
    "Emoji: 😀 👍🏽 👨‍👩‍👧‍👦 🇩🇪 🇯🇵 ❤️ 🤖💬 ✨ and text after.",
    "Combining: e\u0301 vs é, A\u030a vs Å, n\u0303 vs ñ; Hangul jamo \u1100\u1161\u11a8.",
    "Special tokens in text: <|endoftext|> then <s>hello</s> and <|im_start|>user\nhi<|im_end|>"
    " <bos>x<eos> <|begin_of_text|>y<|end_of_text|> <tool_call>{}</tool_call>",
    "Rare bytes and symbols: \x01\x7f ~`!@#$%^&*()_+-=[]{}|;:'\",.<>/? ¶§©®™ ∑∫√∞ ≠≤≥ ←→",
    "",
    " ",
    "a",
    "CamelCaseIdentifiers and snake_case_names, URLs like https://example.org/a?b=1&c=2.",
]


def training_text():
    """Local text: the demo corpus, rrt's docs and some sources, a few MB."""
    lines = []
    with open(os.path.join(ROOT, "data/corpus/demo.jsonl"), encoding="utf-8") as f:
        for i, line in enumerate(f):
            if i >= 3000:
                break
            lines.append(json.loads(line)["text"])
    for pattern in ("docs/*.md", "data/*.cpp", "model/*.h", "tools/*.py"):
        for path in sorted(glob.glob(os.path.join(ROOT, pattern)))[:20]:
            with open(path, encoding="utf-8") as f:
                lines.append(f.read())
    # A little of every script in the samples, so their merges exist.
    lines += SAMPLES[1:5] * 20
    return lines


def byte_level_trainer(vocab_size, special_tokens):
    return BpeTrainer(vocab_size=vocab_size, special_tokens=special_tokens, show_progress=False,
                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet())


def train_gpt2(text):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=True)
    tok.train_from_iterator(text, byte_level_trainer(700, ["<|endoftext|>"]))
    return tok, {"eos_token": "<|endoftext|>", "bos_token": "<|endoftext|>"}


def train_smollm(text):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(text, byte_level_trainer(600, ["<|endoftext|>", "<|im_start|>",
                                                            "<|im_end|>"]))
    return tok, None  # no tokenizer_config.json: EOS from the added tokens' names


def train_llama3(text):
    tok = Tokenizer(models.BPE(ignore_merges=True))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False)])
    tok.decoder = decoders.ByteLevel(add_prefix_space=True, trim_offsets=True, use_regex=True)
    tok.train_from_iterator(text, byte_level_trainer(800, []))
    # Llama 3's special tokens follow the model's vocabulary.
    tok.add_special_tokens(["<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>",
                            "<|eot_id|>"])
    bos = tok.token_to_id("<|begin_of_text|>")
    tok.post_processor = processors.Sequence([
        processors.ByteLevel(trim_offsets=False),
        processors.TemplateProcessing(single="<|begin_of_text|> $A",
                                      pair="<|begin_of_text|> $A <|begin_of_text|> $B:1",
                                      special_tokens=[("<|begin_of_text|>", bos)])])
    return tok, {"bos_token": "<|begin_of_text|>", "eos_token": "<|end_of_text|>"}


def train_qwen2(text):
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    tok.train_from_iterator(text, byte_level_trainer(800, []))
    tok.add_special_tokens(["<|endoftext|>", "<|im_start|>", "<|im_end|>"])
    tok.add_tokens([tokenizers.AddedToken("<tool_call>", special=False, normalized=False),
                    tokenizers.AddedToken("</tool_call>", special=False, normalized=False)])
    return tok, {"bos_token": None, "eos_token": "<|endoftext|>"}


def train_sentencepiece_bpe(text):
    """A Metaspace BPE with byte fallback: <unk> <s> </s>, then <0x00>..<0xFF>, then merges."""
    tok = Tokenizer(models.BPE())
    # Trained on words (SentencePiece's pieces never cross a word start); the styles below
    # set the pre-tokenizer each family's file has.
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.train_from_iterator(text, BpeTrainer(vocab_size=700, show_progress=False,
                                             special_tokens=[]))
    data = json.loads(tok.to_str())
    head = ["<unk>", "<s>", "</s>"] + ["<0x%02X>" % b for b in range(256)]
    trained = sorted(data["model"]["vocab"].items(), key=lambda kv: kv[1])
    vocab = {t: i for i, t in enumerate(head)}
    for t, _ in trained:
        vocab.setdefault(t, len(vocab))
    data["model"].update(vocab=vocab, unk_token="<unk>", byte_fallback=True, fuse_unk=True)
    data["added_tokens"] = [
        {"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False,
         "normalized": False, "special": True} for i, t in enumerate(head[:3])]
    return data


def sentencepiece_styles(text):
    base = train_sentencepiece_bpe(text)
    template = {"type": "TemplateProcessing",
                "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                           {"Sequence": {"id": "A", "type_id": 0}}],
                "pair": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                         {"Sequence": {"id": "A", "type_id": 0}},
                         {"SpecialToken": {"id": "<s>", "type_id": 1}},
                         {"Sequence": {"id": "B", "type_id": 1}}],
                "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}}
    replace = {"type": "Replace", "pattern": {"String": "▁"}, "content": " "}
    llama2 = json.loads(json.dumps(base))
    llama2["normalizer"] = {"type": "Sequence", "normalizers": [
        {"type": "Prepend", "prepend": "▁"},
        {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]}
    llama2["pre_tokenizer"] = None
    llama2["post_processor"] = template
    llama2["decoder"] = {"type": "Sequence", "decoders": [
        replace, {"type": "ByteFallback"}, {"type": "Fuse"},
        {"type": "Strip", "content": " ", "start": 1, "stop": 0}]}
    # Llama 2's files keep merges as "a b" strings.
    llama2["model"]["merges"] = [" ".join(m) for m in llama2["model"]["merges"]]

    metaspace = json.loads(json.dumps(llama2))
    metaspace["normalizer"] = None
    metaspace["pre_tokenizer"] = {"type": "Metaspace", "replacement": "▁",
                                  "prepend_scheme": "first", "split": False}
    metaspace["model"]["merges"] = [m.split(" ", 1) for m in metaspace["model"]["merges"]]

    gemma = json.loads(json.dumps(base))
    names = {"<s>": "<bos>", "</s>": "<eos>"}
    gemma["added_tokens"] = [dict(t, content=names.get(t["content"], t["content"]))
                             for t in gemma["added_tokens"]]
    gemma["model"]["vocab"] = {names.get(t, t): i for t, i in gemma["model"]["vocab"].items()}
    gemma["normalizer"] = {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}
    gemma["pre_tokenizer"] = None
    gemma["post_processor"] = json.loads(json.dumps(template).replace('"<s>"', '"<bos>"'))
    gemma["decoder"] = {"type": "Sequence", "decoders": [
        replace, {"type": "ByteFallback"}, {"type": "Fuse"}]}
    sp_config = {"bos_token": "<s>", "eos_token": "</s>"}
    return [("llama2", Tokenizer.from_str(json.dumps(llama2)), sp_config),
            ("metaspace", Tokenizer.from_str(json.dumps(metaspace)), sp_config),
            ("gemma", Tokenizer.from_str(json.dumps(gemma)),
             {"bos_token": "<bos>", "eos_token": "<eos>"})]


def add_token(data, content, special, normalized):
    """Appends an added token with the id the library gives it (the model's id, else the next
    one after the model's vocabulary and the added tokens it lacks)."""
    vocab = data["model"]["vocab"]
    new = sum(1 for t in data["added_tokens"] if t["content"] not in vocab)
    data["added_tokens"].append({
        "id": vocab.get(content, len(vocab) + new), "content": content, "single_word": False,
        "lstrip": False, "rstrip": False, "normalized": normalized, "special": special})


def option_styles(base):
    """The options no family file above uses, on the trained models: every Split behaviour,
    invert, contiguous Digits, NFKC / NFD / NFKD, Strip, a regex Replace, ByteLevel's prefix
    space, normalized added tokens, Metaspace always + split and its decoder, the unknown token
    without byte fallback or fusing, the Strip decoder."""
    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
                  "use_regex": False}
    splits = json.loads(json.dumps(base["gpt2"]))
    splits["normalizer"] = {"type": "Sequence", "normalizers": [
        {"type": "NFKC"}, {"type": "Strip", "strip_left": True, "strip_right": True},
        {"type": "Replace", "pattern": {"Regex": "[0-9]{2}"}, "content": "#"}]}
    splits["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": "\\s+"}, "behavior": "MergedWithNext",
         "invert": False},
        {"type": "Split", "pattern": {"Regex": "[aeiou]+"}, "behavior": "Contiguous",
         "invert": True},
        {"type": "Digits", "individual_digits": False}, byte_level]}
    splits2 = json.loads(json.dumps(base["gpt2"]))
    splits2["normalizer"] = {"type": "NFD"}
    splits2["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"String": "e"}, "behavior": "MergedWithPrevious",
         "invert": False},
        {"type": "Split", "pattern": {"Regex": "\\S+"}, "behavior": "Removed", "invert": True},
        dict(byte_level, add_prefix_space=True, use_regex=True)]}
    splits2["decoder"] = dict(byte_level, add_prefix_space=True)
    add_token(splits2, "the", special=False, normalized=True)
    always = json.loads(json.dumps(base["llama2"]))
    always["normalizer"] = None
    always["pre_tokenizer"] = {"type": "Metaspace", "replacement": "▁",
                               "prepend_scheme": "always", "split": True}
    always["decoder"] = {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always",
                         "split": True}
    add_token(always, " the", special=False, normalized=True)
    unk = json.loads(json.dumps(base["llama2"]))
    unk["normalizer"]["normalizers"].append({"type": "NFKD"})
    unk["model"].update(fuse_unk=False, byte_fallback=False)
    unk["decoder"] = {"type": "Sequence", "decoders": [
        {"type": "Replace", "pattern": {"String": "▁"}, "content": " "}, {"type": "Fuse"},
        {"type": "Strip", "content": " ", "start": 1, "stop": 0}]}
    config = {"eos_token": "</s>", "bos_token": "<s>"}
    return [("options_split", splits, {"eos_token": "<|endoftext|>"}),
            ("options_split2", splits2, {"eos_token": "<|endoftext|>"}),
            ("options_metaspace", always, config), ("options_unknown", unk, config)]


def smollm2_from_gguf(gguf_path):
    import transformers.modeling_gguf_pytorch_utils as gguf_utils
    from transformers import AutoTokenizer
    gguf_utils.is_torch_available = lambda: True  # the tokenizer path reads metadata only
    with tempfile.TemporaryDirectory() as tmp:
        tok = AutoTokenizer.from_pretrained(os.path.dirname(gguf_path),
                                            gguf_file=os.path.basename(gguf_path))
        tok.save_pretrained(tmp)
        with open(os.path.join(tmp, "tokenizer.json"), encoding="utf-8") as f:
            data = json.load(f)
        with open(os.path.join(tmp, "tokenizer_config.json"), encoding="utf-8") as f:
            config = json.load(f)
    return data, config


def segments(text, specials):
    """The text cut at every special token's text (a superset of what encoding sees)."""
    parts = [text]
    for s in specials:
        parts = [p for part in parts for p in part.split(s)]
    return parts


def trim_bpe(data, texts):
    """The tokenizer with only the vocabulary and merges that encoding `texts` uses."""
    full = Tokenizer.from_str(json.dumps(data))
    model = data["model"]
    vocab = model["vocab"]
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ", 1)) for m in model["merges"]]
    rank = {m: i for i, m in enumerate(merges)}
    specials = [t["content"] for t in data["added_tokens"]]
    words = set()
    for text in texts:
        for seg in segments(text, specials) + [text]:
            if full.normalizer is not None:
                seg = full.normalizer.normalize_str(seg)
            pieces = full.pre_tokenizer.pre_tokenize_str(seg) if full.pre_tokenizer else [(seg, 0)]
            words.update(p for p, _ in pieces)
    used_merges, used_tokens = set(), set()
    for word in words:
        symbols = list(word)
        used_tokens.update(symbols)
        while len(symbols) > 1:
            best = min(((rank.get((a, b), len(rank)), i)
                        for i, (a, b) in enumerate(zip(symbols, symbols[1:]))))
            if best[0] == len(rank):
                break
            i = best[1]
            used_merges.add(merges[best[0]])
            symbols[i:i + 2] = [symbols[i] + symbols[i + 1]]
            used_tokens.add(symbols[i])
    keep = {t for t in vocab if len(t) == 1 or t in used_tokens}  # every single character
    keep.add(max(vocab, key=vocab.get))  # the highest id, so the vocabulary size stays
    keep.update(t for t in specials if t in vocab)
    if model.get("unk_token"):
        keep.add(model["unk_token"])
    trimmed = json.loads(json.dumps(data))
    trimmed["model"]["vocab"] = {t: i for t, i in vocab.items() if t in keep}
    trimmed["model"]["merges"] = [list(m) for m in merges if m in used_merges]
    return trimmed


def expectations(tok, texts):
    out = []
    for text in texts:
        plain = tok.encode(text, add_special_tokens=False).ids
        special = tok.encode(text, add_special_tokens=True).ids
        out.append({"text": text, "ids": plain, "ids_with_special_tokens": special,
                    "decoded": tok.decode(special, skip_special_tokens=True),
                    "decoded_with_special_tokens": tok.decode(special, skip_special_tokens=False)})
    return out


def compact_json(expected):
    """expected.json with one sample a line: small, and diffs show which sample changed."""
    dump = lambda v: json.dumps(v, ensure_ascii=False, separators=(",", ":"))
    styles = []
    for name, style in expected["styles"].items():
        head = {k: v for k, v in style.items() if k != "samples"}
        samples = ",\n".join("   " + dump(s) for s in style["samples"])
        styles.append(f" {dump(name)}:{dump(head)[:-1]},\"samples\":[\n{samples}]}}")
    return ("{\"tokenizers_version\":" + dump(expected["tokenizers_version"]) +
            ",\"styles\":{\n" + ",\n".join(styles) + "}}\n")


def write_style(out_dir, name, tok_json, config):
    d = os.path.join(out_dir, name)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(tok_json, f, ensure_ascii=False, separators=(",", ":"))
    if config is not None:
        with open(os.path.join(d, "tokenizer_config.json"), "w", encoding="utf-8") as f:
            json.dump(config, f, ensure_ascii=False, indent=1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gguf", default=None)
    ap.add_argument("--out", default=os.path.join(ROOT, "tests/fixtures/tokenizer_json"))
    args = ap.parse_args()
    gguf_path = args.gguf or subprocess.check_output(
        [os.path.join(ROOT, "tools/fetch_smollm2.sh")], text=True).strip()

    text = training_text()
    styles = [("gpt2",) + train_gpt2(text), ("smollm",) + train_smollm(text),
              ("llama3",) + train_llama3(text), ("qwen2",) + train_qwen2(text)]
    styles += sentencepiece_styles(text)
    expected = {"tokenizers_version": tokenizers.__version__, "styles": {}}
    written = {}
    for name, tok, config in styles:
        written[name] = json.loads(tok.to_str())
    for name, tok_json, config in [(n, written[n], c) for n, _, c in styles] + option_styles(written):
        reread = Tokenizer.from_str(json.dumps(tok_json))
        write_style(args.out, name, tok_json, config)
        expected["styles"][name] = {"vocab_size": reread.get_vocab_size(with_added_tokens=True),
                                    "samples": expectations(reread, SAMPLES)}

    full, config = smollm2_from_gguf(gguf_path)
    trimmed = trim_bpe(full, SAMPLES)
    full_tok, trimmed_tok = Tokenizer.from_str(json.dumps(full)), Tokenizer.from_str(json.dumps(trimmed))
    want = expectations(full_tok, SAMPLES)
    assert expectations(trimmed_tok, SAMPLES) == want, "trimming changed the SmolLM2 tokenizer"
    # Only the keys rrt reads, so the fixture stays small and readable.
    keep = ("bos_token", "eos_token", "unk_token", "add_bos_token", "add_eos_token")
    write_style(args.out, "smollm2", trimmed, {k: config[k] for k in keep if k in config})
    expected["styles"]["smollm2"] = {"vocab_size": 49152, "samples": want,
                                     "transformers_tokenizer_config": {
                                         k: config.get(k) for k in keep}}
    with open(os.path.join(args.out, "expected.json"), "w", encoding="utf-8") as f:
        f.write(compact_json(expected))
    for name in expected["styles"]:
        size = sum(os.path.getsize(p) for p in glob.glob(os.path.join(args.out, name, "*")))
        print(f"{name}: {size / 1024:.1f} KB")


if __name__ == "__main__":
    main()
