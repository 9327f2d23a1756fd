#!/usr/bin/env bash
# Fuzzes the safetensors header parser with libFuzzer (clang + libclang-rt-14-dev from Debian).
#   tools/fuzz_safetensors.sh [SECONDS]     (default 180)
# New interesting inputs are merged into tests/fuzz/corpus_safetensors, which ctest replays.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-180}"
out=build-fuzz
mkdir -p "$out" tests/fuzz/corpus_safetensors
clang++ -std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined -I. \
  -I/usr/include tests/fuzz/fuzz_safetensors.cpp core/safetensors.cpp -o "$out/fuzz_safetensors"
mkdir -p "$out/work"
"$out/fuzz_safetensors" -max_total_time="$seconds" -max_len=4096 -timeout=5 \
  "$out/work" tests/fuzz/corpus_safetensors
# Keep a minimal corpus that covers what the run found.
mkdir -p "$out/merged"
"$out/fuzz_safetensors" -merge=1 "$out/merged" tests/fuzz/corpus_safetensors "$out/work"
rm -rf tests/fuzz/corpus_safetensors && mv "$out/merged" tests/fuzz/corpus_safetensors
echo "corpus: $(ls tests/fuzz/corpus_safetensors | wc -l) inputs"
