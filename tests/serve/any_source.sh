#!/usr/bin/env bash
# rrt serve on what users have, without a conversion first (checkpoint/model_source.h): an HF
# model directory with its tokenizer.json, served and asked for greedy completions, answers
# with the tokens and text `rrt generate` gives on the same directory; then on a .gguf file.
# Usage: any_source.sh RRT_BINARY SOURCE_DIR
set -euo pipefail
source "$(dirname "$0")/../cli/cli_lib.sh"  # rrt, src, work, fail, make_hf_llama_300
pid=""
cleanup() {
  [[ -n $pid ]] && kill -9 "$pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# serve_and_compare SOURCE PROMPT: rrt serve SOURCE, one greedy completion over HTTP, compared
# with rrt generate SOURCE; then SIGTERM, which must end it cleanly.
serve_and_compare() {
  local source="$1" prompt="$2" port="" status=0
  "$rrt" generate "$source" --prompt "$prompt" --max-new-tokens 6 --json >"$work/gen.json" \
    2>"$work/gen.err" || fail "generate $source: $(cat "$work/gen.err")"
  "$rrt" serve "$source" --port 0 --max-batch 2 --model-name any 2>"$work/serve.err" &
  pid=$!
  for _ in $(seq 1 600); do
    port=$(sed -n 's|.* on http://127.0.0.1:\([0-9]*\) .*|\1|p' "$work/serve.err")
    [[ -n $port ]] && break
    kill -0 "$pid" 2>/dev/null || fail "rrt serve $source exited: $(cat "$work/serve.err")"
    sleep 0.1
  done
  [[ -n $port ]] || fail "rrt serve $source printed no port"
  python3 - "http://127.0.0.1:$port" "$work/gen.json" "$prompt" <<'PY' ||
import json, sys, urllib.request
url, gen, prompt = sys.argv[1], json.load(open(sys.argv[2])), sys.argv[3]
body = {"model": "any", "prompt": prompt, "max_tokens": 6, "temperature": 0}
req = urllib.request.Request(url + "/v1/completions", json.dumps(body).encode(),
                             {"Content-Type": "application/json"})
with urllib.request.urlopen(req) as r:
    c = json.load(r)["choices"][0]
assert len(gen["tokens"]) == 6, gen
assert c["token_ids"] == gen["tokens"], (c["token_ids"], gen["tokens"])
assert c["text"] == gen["text"], (c["text"], gen["text"])
PY
    fail "rrt serve $source answered otherwise than rrt generate"
  kill -TERM "$pid"
  wait "$pid" || status=$?
  pid=""
  [[ $status -eq 0 ]] || fail "rrt serve $source exited $status on SIGTERM"
}

hf="$work/hf"
make_hf_llama_300 "$hf"
serve_and_compare "$hf" "the loops"
# A Gemma GGUF written by llama.cpp's converter (tests/fixtures/gguf): its SentencePiece
# vocabulary is in the file (a fixture's: the text is unknown pieces, the ids are what counts).
serve_and_compare "$src/tests/fixtures/gguf/gemma_tied.gguf" "the loops"
echo "serve on an HF directory and a GGUF file: ok"
