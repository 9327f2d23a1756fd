# Shared by the CLI test scripts (sourced after `set -euo pipefail`): a work directory removed
# on exit, fail / expect_error, and the small HF model folder several of them start from.
# Usage, at the top of a script taking RRT_BINARY SOURCE_DIR:
#   source "$(dirname "$0")/cli_lib.sh"     # sets rrt, src, work from "$1" "$2"
rrt="$1"
src="$2"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
expect_error() {  # expect_error "fragment" cmd...: exit status 1 and the fragment on stderr
  local fragment="$1"; shift
  local status=0
  "$@" >"$work/out" 2>"$work/err" || status=$?
  [[ $status -eq 1 ]] || fail "expected exit 1 from '$*', got $status: $(cat "$work/err")"
  grep -qF -- "$fragment" "$work/err" || fail "expected '$fragment' in: $(cat "$work/err")"
}

# make_hf_llama_300 DIR: an HF folder of a 300-token Llama (tests/fixtures/hf_llama_mqa_tied_bf16)
# with a byte-level BPE tokenizer.json of 300 tokens (the GPT-2-style fixture cut to its first
# 300 ids and the merges among them) and no tokenizer.model.
make_hf_llama_300() {
  local hf="$1"
  mkdir -p "$hf"
  cp "$src/tests/fixtures/hf_llama_mqa_tied_bf16/config.json" \
     "$src/tests/fixtures/hf_llama_mqa_tied_bf16/model.safetensors" "$hf/"
  python3 - "$src/tests/fixtures/tokenizer_json/gpt2/tokenizer.json" "$hf" <<'PY'
import json, sys
t = json.load(open(sys.argv[1], encoding="utf-8"))
vocab = {k: v for k, v in t["model"]["vocab"].items() if v < 300}
t["model"]["vocab"] = vocab
t["model"]["merges"] = [m for m in t["model"]["merges"]
                        if m[0] in vocab and m[1] in vocab and m[0] + m[1] in vocab]
json.dump(t, open(sys.argv[2] + "/tokenizer.json", "w", encoding="utf-8"), ensure_ascii=False)
json.dump({"eos_token": "<|endoftext|>"}, open(sys.argv[2] + "/tokenizer_config.json", "w"))
PY
}
