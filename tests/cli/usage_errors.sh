#!/usr/bin/env bash
# Usage errors exit with the documented status 2 (docs/runs.md), whatever CLI11 calls them
# (a missing or unknown option, an extra argument, an unknown subcommand, a bad value), and
# print CLI11's message; help and --version exit 0; an rrt error (not usage) stays 1.
set -u
rrt=$1
src=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
expect_status() {  # expect_status N "fragment" cmd...: exit status N, the fragment on stderr/out
  local want=$1 fragment=$2
  shift 2
  local status=0
  "$@" >"$work/out" 2>"$work/err" || status=$?
  [[ $status -eq $want ]] || fail "expected exit $want from '$*', got $status: $(cat "$work/err")"
  grep -qF -- "$fragment" "$work/out" "$work/err" || fail "'$*' did not say '$fragment'"
}
expect_status 2 "A subcommand is required" "$rrt"
expect_status 2 "subcommand" "$rrt" frobnicate
expect_status 2 "--bogus" "$rrt" convert --from "$src/tests/fixtures/hf_llama_gqa" --out "$work/x.h5" --bogus
expect_status 2 "--out is required" "$rrt" convert --from "$src/tests/fixtures/hf_llama_gqa"
expect_status 2 "not in" "$rrt" convert --from "$src/tests/fixtures/hf_llama_gqa" --out "$work/x.h5" \
  --init sideways
expect_status 2 "--loops" "$rrt" convert --from "$src/tests/fixtures/hf_llama_gqa" --out "$work/x.h5" \
  --loops two
expect_status 2 "does not exist" "$rrt" convert --from "$work/nowhere" --out "$work/x.h5"
expect_status 2 "config" "$rrt" train
touch "$work/s.yaml"
expect_status 2 "--frobnicate" "$rrt" sweep "$work/s.yaml" --frobnicate
expect_status 2 "bogus" "$rrt" sweep --launch bogus "$work/s.yaml"
expect_status 2 "2 labels for 1 reports" "$rrt" plot-exits "$work/s.yaml" --labels a,b --out "$work/x.png"
expect_status 0 "Usage" "$rrt" --help
expect_status 0 "Usage" "$rrt" convert --help
expect_status 0 "rrt 0." "$rrt" --version
# Not a usage error: the command line parses, the work fails.
expect_status 1 "must divide" "$rrt" convert --from "$src/tests/fixtures/hf_llama_gqa" --loops 3 \
  --out "$work/x.h5"
echo "usage errors: ok"
