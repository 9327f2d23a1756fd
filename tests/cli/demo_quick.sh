#!/usr/bin/env bash
# rrt demo --quick end to end: every stage runs, the table has every row with finite numbers in
# the columns each model has, results.json agrees, and a rerun skips every stage.
# With PRECISION (bf16), `rrt demo --quick --precision PRECISION`: every stage trains in it and
# the evaluation runs on its device; skipped (exit 77) where this build or CPU has no bf16 backend.
# Usage: demo_quick.sh RRT_BINARY SOURCE_DIR [PRECISION]
set -euo pipefail
source "$(dirname "$0")/cli_lib.sh"  # rrt, src, work, fail, expect_error, make_hf_llama_300
precision="${3:-}"
args=()
if [[ -n "$precision" ]]; then
  args=(--precision "$precision")
  if [[ "$precision" == bf16 ]] && "$rrt" --version | grep -q "^bf16: unavailable"; then
    echo "SKIP: $("$rrt" --version | grep '^bf16:')"
    exit 77
  fi
fi

"$rrt" demo --quick "${args[@]}" --source "$src" --out "$work/demo" >"$work/log" 2>&1 \
  || { cat "$work/log"; fail "rrt demo --quick ${args[*]}"; }
grep -q "== \[16/16\] evaluate" "$work/log" || fail "not every stage ran: $(grep '== \[' "$work/log")"
if [[ "$precision" == bf16 ]]; then
  # Every training stage (10 `rrt train` lines: the teacher, 5 uptrainings, the full-size one
  # trained on, 3 post-trainings) in bf16, and the table scored on the bf16 model.
  [[ $(grep -c "^   rrt train .* train.precision=bf16" "$work/log") -eq \
     $(grep -c "^   rrt train " "$work/log") ]] || fail "a stage did not train in bf16"
  [[ $(grep -c "^training in bf16 on the CPU" "$work/log") -eq $(grep -c "^   rrt train " "$work/log") ]] \
    || fail "a stage did not run the CPU bf16 backend"
  grep -q "evaluated on cpu-bf16;" "$work/log" || fail "the table was not scored in bf16"
  python3 -c 'import json, sys
r = json.load(open(sys.argv[1]))
assert r["precision"] == "bf16" and r["device"] == "cpu-bf16", r' "$work/demo/results.json" \
    || fail "results.json names no bf16"
else
  grep -q "evaluated on cpu;" "$work/log" || fail "the table was not scored in fp32"
fi

# The table: a header, a rule and one row per model; a number where the model has the column
# ('converted' for the conversions, exit 1 for the looped models), '-' elsewhere.
table="$(sed -n '/^| model |/,/^$/p' "$work/log")"
num='[0-9]+\.[0-9]+'
expect_row() {  # expect_row LABEL_FRAGMENT PATTERN_OF_THE_NUMBER_COLUMNS
  grep -F -- "$1" <<<"$table" | grep -Eq "\| $2 \|$" || fail "row '$1' is not '$2' in:
$table"
}
[[ $(grep -c "^| " <<<"$table") -eq 11 ]] || fail "expected a header and 10 rows:
$table"
expect_row "full-size (4 layers)" "- \| - \| $num"
expect_row "full-size, trained on" "- \| - \| $num"
expect_row "from scratch (2 layers" "- \| - \| $num"
expect_row "recursive (stepwise" "$num \| $num \| $num"
expect_row "relaxed (average + SVD LoRA r=4)" "$num \| $num \| $num"
expect_row "relaxed (average + SVD LoRA r=32)" "$num \| $num \| $num"
expect_row "relaxed (average + zero LoRA r=32)" "$num \| $num \| $num"
expect_row "without exits (control)" "- \| $num \| $num"
expect_row "early exits, aggressive(0.1)" "- \| $num \| $num"
expect_row "early exits, uniform" "- \| $num \| $num"
[[ $(grep -Ec "^   .*: (holds|does not hold)$" "$work/log") -eq 4 ]] || fail "not 4 findings"
cmp -s <(grep '^|' <<<"$table") <(grep '^|' "$work/demo/results.md") \
  || fail "results.md holds another table"
python3 - "$work/demo/results.json" <<'PY' || fail "results.json"
import json, math, sys
r = json.load(open(sys.argv[1]))
assert len(r["rows"]) == 10, r["rows"]
for row in r["rows"]:
    assert row["params"] > 0 and row["exits"], row
    assert all(math.isfinite(v) for v in row["exits"]), row
PY

# A rerun trains nothing: every stage was done before.
"$rrt" demo --quick "${args[@]}" --source "$src" --out "$work/demo" >"$work/log2" 2>&1 || fail "rerun"
[[ $(grep -c "done before" "$work/log2") -eq 15 ]] || fail "the rerun redid stages: $(cat "$work/log2")"
cmp -s <(grep '^|' "$work/log2") <(grep '^|' <<<"$table") \
  || fail "the rerun printed another table"
# Another plan in the same tree is refused: another seed, another precision.
if "$rrt" demo --quick "${args[@]}" --seed 2 --source "$src" --out "$work/demo" >/dev/null 2>"$work/err"; then
  fail "a second seed reused the tree"
fi
grep -q "other settings" "$work/err" || fail "unexpected error: $(cat "$work/err")"
other=bf16
[[ "$precision" == bf16 ]] && other=fp32
if "$rrt" demo --quick --precision "$other" --source "$src" --out "$work/demo" >/dev/null 2>"$work/err"; then
  fail "precision $other reused the tree"
fi
grep -q "other settings" "$work/err" || fail "unexpected error: $(cat "$work/err")"
echo "demo quick: all good"
