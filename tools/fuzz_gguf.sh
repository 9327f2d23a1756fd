#!/usr/bin/env bash
# Fuzzes the GGUF reader and dequantisation with libFuzzer (clang + libclang-rt-14-dev from
# Debian).
#   tools/fuzz_gguf.sh [SECONDS]     (default 180)
# The first run seeds the corpus with the small gguf-py fixtures (tests/fixtures/gguf). New
# interesting inputs are merged into tests/fuzz/corpus_gguf, which ctest replays.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-180}"
out=build-fuzz
corpus=tests/fuzz/corpus_gguf
mkdir -p "$out" "$corpus"
if [ -z "$(ls -A "$corpus")" ]; then
  for f in tests/fixtures/gguf/types_*.gguf tests/fixtures/gguf/metadata.gguf; do
    cp "$f" "$corpus/seed_$(basename "$f")"
  done
fi
clang++ -std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined \
  -fno-sanitize-recover=undefined -I. -I/usr/include \
  tests/fuzz/fuzz_gguf.cpp core/gguf.cpp core/gguf_dequant.cpp -o "$out/fuzz_gguf"
rm -rf "$out/work_gguf" && mkdir -p "$out/work_gguf"
"$out/fuzz_gguf" -max_total_time="$seconds" -max_len=4096 -timeout=5 -rss_limit_mb=2048 \
  "$out/work_gguf" "$corpus"
# Keep a minimal corpus that covers what the run found.
rm -rf "$out/merged_gguf" && mkdir -p "$out/merged_gguf"
"$out/fuzz_gguf" -merge=1 "$out/merged_gguf" "$corpus" "$out/work_gguf"
rm -rf "$corpus" && mv "$out/merged_gguf" "$corpus"
echo "corpus: $(ls "$corpus" | wc -l) inputs"
