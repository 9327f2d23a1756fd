#!/usr/bin/env python3
"""Builds data/corpus/demo.jsonl, the embedded public-domain demo corpus.

Sources (Debian packages dict-jargon and dict-devil, installed by tools/setup.sh):
  - The Jargon File 4.4.7 (Eric S. Raymond et al.), public domain.
  - The Devil's Dictionary (Ambrose Bierce, 1911), public domain (copyright expired).
Each dictionary entry becomes one JSONL document {"text": ..., "source": ...}; dictd's
bookkeeping entries (00-database-*) are skipped. Entries are interleaved by a fixed shuffle so
that the validation split (the last sequences) holds text from both books.

Usage: python3 tools/make_corpus.py [--out data/corpus/demo.jsonl]
"""
import argparse
import gzip
import json
import random

B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def b64_number(s):
    # dictd indexes store offsets and lengths as base-64 numbers, most significant digit first.
    n = 0
    for ch in s:
        n = n * 64 + B64.index(ch)
    return n


def entries(name, source):
    data = gzip.open(f"/usr/share/dictd/{name}.dict.dz").read()
    seen = set()
    for line in open(f"/usr/share/dictd/{name}.index", encoding="utf-8"):
        head, off, length = line.rstrip("\n").split("\t")[:3]
        if head.startswith("00-database") or (off, length) in seen:
            continue
        seen.add((off, length))  # dictd indexes one body under several headwords
        start, size = b64_number(off), b64_number(length)
        text = data[start:start + size].decode("utf-8", errors="replace").strip()
        if text:
            yield {"text": text, "source": source}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="data/corpus/demo.jsonl")
    args = ap.parse_args()
    docs = list(entries("jargon", "Jargon File 4.4.7 (public domain)"))
    docs += list(entries("devil", "The Devil's Dictionary, A. Bierce (public domain)"))
    random.Random(2025).shuffle(docs)
    with open(args.out, "w", encoding="utf-8") as f:
        for d in docs:
            f.write(json.dumps(d, ensure_ascii=False) + "\n")
    total = sum(len(d["text"].encode()) for d in docs)
    print(f"{args.out}: {len(docs)} documents, {total} bytes of text")


if __name__ == "__main__":
    main()
