#!/usr/bin/env bash
# `rrt prepare` through the real binary (docs/data.md, "prepare"): .jsonl.gz and .jsonl.zst
# inputs with --text-field and --threads; a bad line is exit 1 naming file:line and leaves no
# shard, and --skip-bad counts it; a compressed file is never tokenised as text (the defect this
# replaced: its bytes became "documents" and prepare exited 0); a preparation killed with
# kill -9 mid-way resumes when run again and ends with the manifest of an uninterrupted run.
# Usage: prepare_cli.sh RRT
set -euo pipefail
rrt="$1"
work="$(mktemp -d)"
pid=""
cleanup() { [[ -n "$pid" ]] && kill -9 "$pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

python3 - "$work" <<'PY'
import gzip, json, random, sys
work = sys.argv[1]
rng = random.Random(7)
words = ["recursive", "transformer", "loop", "shared", "block", "early", "exit", "token"]
def doc():
    return " ".join(rng.choice(words) for _ in range(rng.randint(5, 400)))
with gzip.open(f"{work}/small.jsonl.gz", "wt") as f:
    for i in range(50):
        f.write(json.dumps({"body": doc()}) + "\n")
with open(f"{work}/big.jsonl", "w") as f:
    for i in range(12000):
        f.write(json.dumps({"body": doc()}) + "\n")
with open(f"{work}/bad.jsonl", "w") as f:
    f.write(json.dumps({"body": "fine"}) + "\n" + '{"body": 3}\n')
PY

# The compressed file is read as JSONL, by the field asked for.
out=$("$rrt" prepare --quiet --text-field body --threads 2 --out "$work/gz" "$work/small.jsonl.gz")
grep -q "prepared 50 documents" <<<"$out" || fail "gzip input: $out"
if command -v zstd >/dev/null; then
  zstd -q "$work/big.jsonl" -o "$work/big.jsonl.zst"
  out=$("$rrt" prepare --quiet --text-field body --out "$work/zst" "$work/big.jsonl.zst")
  grep -q "prepared 12000 documents" <<<"$out" || fail "zstd input: $out"
else
  echo "no zstd tool: the .zst case is covered by the unit tests only"
fi

# A bad line: exit 1, the file and line named, nothing left; --skip-bad counts it.
status=0
err=$("$rrt" prepare --quiet --text-field body --out "$work/bad" "$work/bad.jsonl" 2>&1) || status=$?
[[ $status -eq 1 ]] || fail "bad line: exit $status"
grep -q "\[$work/bad.jsonl:2\]" <<<"$err" || fail "bad line not named: $err"
[[ -z "$(ls "$work/bad"/*.h5 2>/dev/null)" ]] || fail "shards left after an error"
out=$("$rrt" prepare --quiet --skip-bad --text-field body --out "$work/bad" "$work/bad.jsonl")
grep -q "skipped 1 document(s): missing field" <<<"$out" || fail "skip-bad: $out"

# Killed with -9 once a few shards exist, then run again: the same manifest as a whole run.
args=(--quiet --text-field body --threads 2 --shard-tokens 400000)
"$rrt" prepare "${args[@]}" --out "$work/whole" "$work/big.jsonl" >/dev/null
"$rrt" prepare "${args[@]}" --out "$work/killed" "$work/big.jsonl" >/dev/null &
pid=$!
for _ in $(seq 1 600); do
  [[ -f "$work/killed/shard_00003.h5" || ! -d /proc/$pid ]] && break
  sleep 0.05
done
kill -9 "$pid" 2>/dev/null || true
wait "$pid" 2>/dev/null || true
pid=""
if [[ -f "$work/killed/INCOMPLETE" ]]; then
  [[ -f "$work/killed/prepare_state.json" ]] || fail "no journal after the kill"
  "$rrt" prepare "${args[@]}" --out "$work/killed" "$work/big.jsonl" >/dev/null
else
  echo "the preparation finished before the kill: resume not exercised this time"
fi
cmp "$work/whole/manifest.json" "$work/killed/manifest.json" || fail "resumed manifest differs"
[[ ! -e "$work/killed/INCOMPLETE" && ! -e "$work/killed/prepare_state.json" ]] ||
  fail "marker or journal left after the resumed run"
echo "prepare_cli: all checks passed"
