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
echo "[bench] $input: $(du -m "$input" | cut -f1) MB compressed" >&2
uptime | tee "$out/load.txt"
printf '| tokenizer | threads | wall s | CPU s | MB/s (JSONL) | M tokens/s | M tokens/s per CPU s | wall scaling |\n' | tee "$out/table.md"
printf '|---|---|---|---|---|---|---|---|\n' | tee -a "$out/table.md"
for tok in $tokenizers; do
  spec=byte
  [[ "$tok" == bpe ]] && spec=tests/fixtures/smollm2_tokenizer.gguf
  base=""
  for t in $threads; do
    rm -rf "$out/shards"
    # CPU seconds (user + system) beside the wall clock: on a shared machine the wall clock
    # measures the neighbours too.
    /usr/bin/time -f "%U %S" -o "$out/time.txt" "$rrt" prepare "$input" --out "$out/shards" \
      --tokenizer "$spec" --threads "$t" --shard-tokens 100000000 2>"$out/${tok}_t$t.log" >/dev/null
    line=$(grep '^\[prepare\] done:' "$out/${tok}_t$t.log")
    # "[prepare] done: ... (X MB of text) at Y MB/s, Z M tokens/s, N thread(s), T s"
    python3 - "$tok" "$t" "$line" "$(cat "$out/time.txt")" "${base:-0}" >>"$out/table.md" <<'PY'
import re, sys
tok, t, line, cpu, base = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], float(sys.argv[5])
text_mb = float(re.search(r"\(([0-9.]+) MB of text\)", line).group(1))
tokens = float(re.search(r"([0-9.]+)M tokens,", line).group(1))
mbs = float(re.search(r" at ([0-9.]+) MB/s", line).group(1))
tps = float(re.search(r"MB/s, ([0-9.]+)M tokens/s", line).group(1))
wall = tokens / tps
cpu_s = sum(float(x) for x in cpu.split())
scaling = f"{tps / base:.2f}x" if base else "1.00x"
print(f"| {tok} | {t} | {wall:.1f} | {cpu_s:.1f} | {mbs:.1f} | {tps:.2f} | {tokens / cpu_s:.2f} | {scaling} |")
PY
    tail -1 "$out/table.md"
    [[ -z "$base" ]] && base=$(sed -E 's/.*MB\/s, ([0-9.]+)M tokens\/s.*/\1/' <<<"$line")
  done
done
rm -rf "$out/shards"
uptime | tee -a "$out/load.txt"
