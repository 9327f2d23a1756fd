#!/usr/bin/env python3
"""Held-out English text for evaluating real pretrained models (the SmolLM2 conversion study).

Reads Debian's `fortunes` package (quotations, verse and short prose under
/usr/share/games/fortunes; install it with `apt-get install fortunes`), splits it into its
cookies (separated by lines holding only '%') and writes one JSONL document per cookie
({"text": ...}) in a fixed order, so every run scores the same tokens.

Held out from the demo corpus (data/corpus/demo.jsonl: the Jargon File and Ambrose Bierce's
Devil's Dictionary): cookies that name Bierce, the Devil's Dictionary or the Jargon File are
dropped, so a model uptrained on the demo corpus is not scored on its training text.

Usage: python3 tools/make_heldout_text.py --out DIR/heldout.jsonl [--max-bytes N]
"""
import argparse
import json
import os
import sys

FORTUNES = "/usr/share/games/fortunes"
# Prose and verse rather than the one-liners of 'fortunes' or the ASCII art of 'art'.
FILES = ["literature", "wisdom", "people", "science", "education", "law", "medicine", "work",
         "politics", "songs-poems"]
EXCLUDE = ["bierce", "devil's dictionary", "jargon file", "jargon"]


def cookies(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        chunk = []
        for line in f:
            if line.rstrip("\n") == "%":
                if chunk:
                    yield "".join(chunk).strip("\n")
                chunk = []
            else:
                chunk.append(line)
        if chunk:
            yield "".join(chunk).strip("\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--max-bytes", type=int, default=400_000)
    args = ap.parse_args()
    missing = [f for f in FILES if not os.path.exists(os.path.join(FORTUNES, f))]
    if missing:
        sys.exit(f"{FORTUNES}/{missing[0]} not found: apt-get install fortunes")
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    total = kept = dropped = 0
    with open(args.out, "w", encoding="utf-8") as out:
        for name in FILES:
            for text in cookies(os.path.join(FORTUNES, name)):
                if any(word in text.lower() for word in EXCLUDE):
                    dropped += 1
                    continue
                if total + len(text.encode()) > args.max_bytes:
                    break
                out.write(json.dumps({"text": text}, ensure_ascii=False) + "\n")
                total += len(text.encode())
                kept += 1
    print(f"{args.out}: {kept} documents, {total} bytes ({dropped} dropped as demo-corpus text)")


if __name__ == "__main__":
    main()
