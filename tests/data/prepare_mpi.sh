#!/usr/bin/env bash
# `rrt prepare` under mpirun (docs/data.md, "Many ranks"): 2 and 3 ranks write the manifest of a
# one-process preparation byte for byte (its shards' token and document counts, every input's
# CRC); a bad line on one rank's file ends every rank with exit 1 and leaves nothing. The token
# contents per rank count are compared in tests/data/test_prepare_parallel.cpp (PrepareRanks).
# Usage: prepare_mpi.sh RRT MPIEXEC
set -euo pipefail
rrt="$1"
mpiexec="$2"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

python3 - "$work" <<'PY'
import json, random, sys
work = sys.argv[1]
rng = random.Random(11)
words = ["recursive", "transformer", "loop", "shared", "block", "early", "exit", "token"]
for f in range(7):
    with open(f"{work}/in{f}.jsonl", "w") as out:
        for i in range(rng.randint(50, 900)):
            out.write(json.dumps({"text": " ".join(rng.choice(words)
                                                   for _ in range(rng.randint(3, 200)))}) + "\n")
with open(f"{work}/bad.jsonl", "w") as out:
    out.write(json.dumps({"text": "fine"}) + "\n" + '{"text": 3}\n')
PY
inputs=("$work"/in*.jsonl)
args=(--quiet --threads 1 --shard-tokens 30000)
"$rrt" prepare "${args[@]}" --out "$work/one" "${inputs[@]}" >/dev/null
for ranks in 2 3; do
  out=$("$mpiexec" --oversubscribe -np $ranks "$rrt" prepare "${args[@]}" --out "$work/r$ranks" \
    "${inputs[@]}")
  [[ $(grep -c "^prepared" <<<"$out") -eq 1 ]] || fail "$ranks ranks: one summary line expected: $out"
  cmp "$work/one/manifest.json" "$work/r$ranks/manifest.json" ||
    fail "$ranks ranks: the manifest differs from one process's"
  [[ ! -e "$work/r$ranks/.parts" && ! -e "$work/r$ranks/INCOMPLETE" ]] ||
    fail "$ranks ranks: parts or marker left"
done

status=0
err=$("$mpiexec" --oversubscribe -np 2 "$rrt" prepare "${args[@]}" --out "$work/bad" \
  "${inputs[@]}" "$work/bad.jsonl" 2>&1) || status=$?
[[ $status -ne 0 ]] || fail "a bad line under mpirun exited 0"
grep -q "bad.jsonl:2" <<<"$err" || fail "the bad line is not named: $err"
[[ -z "$(ls -A "$work/bad" 2>/dev/null)" ]] || fail "left after the failure: $(ls -A "$work/bad")"
echo "prepare_mpi: all checks passed"
