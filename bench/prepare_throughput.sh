#!/usr/bin/env bash
# Throughput of `rrt prepare` (docs/benchmarks.md, "Data preparation"): a JSONL.zst of SIZE_MB
# megabytes of JSONL (before compression) generated from local text, prepared with 1 and 2
# threads (or THREADS) by the byte tokenizer and by SmolLM2's byte-level BPE; MB/s (of JSONL)
# and tokens/s, per thread, and the scaling over one thread. Usage:
#   bench/prepare_throughput.sh [RRT_BINARY] [OUT_DIR]    (default build/rrt, bench_out/prepare)
#   SIZE_MB=1000 THREADS="1 2" TOKENIZERS="byte bpe" bench/prepare_throughput.sh
# The text: documents of 1-40 paragraphs drawn (seeded) from the demo corpus (data/corpus,
# public-domain dictionary entries), so the file compresses as text does (zstd -3, ~3x), not as
# one paragraph repeated. Needs python3 and the zstd tool.
set -euo pipefail
cd "$(dirname "$0")/.."
rrt="${1:-build/rrt}"
out="${2:-bench_out/prepare}"
size_mb="${SIZE_MB:-1000}"
threads="${THREADS:-1 2}"
tokenizers="${TOKENIZERS:-byte bpe}"
mkdir -p "$out"
command -v zstd >/dev/null || { echo "needs the zstd tool (apt-get install zstd)" >&2; exit 1; }
input="$out/corpus_${size_mb}mb.jsonl.zst"
if [[ ! -f "$input" ]]; then
  echo "[bench] generating $input ($size_mb MB of JSONL)" >&2
  python3 - "$size_mb" <<'PY' | zstd -q -3 -T0 -o "$input"
import json, random, sys
size = int(sys.argv[1]) * 1000 * 1000
paragraphs = []
for line in open("data/corpus/demo.jsonl", encoding="utf-8"):
    paragraphs += [p for p in json.loads(line)["text"].split("\n\n") if p.strip()]
rng = random.Random(1)
written = 0
out = sys.stdout
while written < size:
    text = "\n\n".join(rng.choice(paragraphs) for _ in range(rng.randint(1, 40)))
    line = json.dumps({"text": text, "source": "bench"}, ensure_ascii=False) + "\n"
    out.write(line)
    written += len(line.encode("utf-8"))
PY
fi
jsonl_mb=$(zstd -lv "$input" 2>/dev/null | awk '/Decompressed Size/ {gsub(/[(),]/, "", $0); for (i = 1; i <= NF; ++i) if ($i == "B") print $(i-1) / 1e6}' | head -1)
echo "[bench] $input: $(du -m "$input" | cut -f1) MB compressed, ${jsonl_mb:-?} MB of JSONL" >&2
uptime | tee "$out/load.txt"
printf '| tokenizer | threads | seconds | MB/s (JSONL) | M tokens/s | M tokens/s per thread | scaling |\n' | tee "$out/table.md"
printf '|---|---|---|---|---|---|---|\n' | tee -a "$out/table.md"
for tok in $tokenizers; do
  spec=byte
  [[ "$tok" == bpe ]] && spec=tests/fixtures/smollm2_tokenizer.gguf
  base=""
  for t in $threads; do
    rm -rf "$out/shards"
    line=$("$rrt" prepare "$input" --out "$out/shards" --tokenizer "$spec" --threads "$t" \
      --shard-tokens 100000000 2>&1 >/dev/null | grep '^\[prepare\] done:')
    echo "$line" >"$out/${tok}_t$t.txt"
    # "[prepare] done: ... (X MB of text) at Y MB/s, Z M tokens/s, N thread(s), T s"
    mbs=$(sed -E 's/.* at ([0-9.]+) MB\/s.*/\1/' <<<"$line")
    tps=$(sed -E 's/.* MB\/s, ([0-9.]+)M tokens\/s.*/\1/' <<<"$line")
    secs=$(sed -E 's/.*thread\(s\), (.*)$/\1/' <<<"$line")
    [[ -z "$base" ]] && base=$tps
    python3 -c "import sys; t, tps, base = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]); print(f'| $tok | {t} | $secs | $mbs | {tps:.2f} | {tps / t:.2f} | {tps / base:.2f}x |')" \
      "$t" "$tps" "$base" | tee -a "$out/table.md"
  done
done
rm -rf "$out/shards"
uptime | tee -a "$out/load.txt"
