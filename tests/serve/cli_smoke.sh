#!/usr/bin/env bash
# rrt serve as a process on a tiny model trained for a few steps: it prints its port, answers a
# completion with rrt generate's tokens (also with the exit classifier; Python's urllib as the
# client; curl as documented in docs/inference.md where curl is installed), streams, refuses bad
# input with a JSON error, and exits 0 on SIGTERM. Usage: cli_smoke.sh RRT_BINARY SOURCE_DIR
set -euo pipefail
rrt="$1"
src="$2"
work="$(mktemp -d)"
pid=""
cleanup() {
  [[ -n $pid ]] && kill -9 "$pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; [[ -f $work/serve.err ]] && cat "$work/serve.err" >&2; exit 1; }

"$rrt" serve --help | grep -q "OpenAI completions API" || fail "rrt serve --help"
mkdir -p "$work/text"
for j in $(seq 1 80); do echo "Line $j: the block loops over itself, and exits when it is sure."; done > "$work/text/doc.txt"
"$rrt" prepare --quiet --out "$work/shards" "$work/text" >/dev/null || fail prepare
"$rrt" train "$src/configs/tiny.yaml" data.path="$work/shards" train.run_dir="$work/run" \
  train.steps=4 train.micro_batch=2 train.seq_len=32 train.eval_every=4 train.eval_batches=1 \
  checkpoint.every=4 optim.warmup_steps=1 >/dev/null || fail train
ckpt="$work/run/step_00000004.h5"
# Its exit classifier, for "exit": "classifier" (rrt serve --exit-classifier).
"$rrt" exit-classifier train "$ckpt" --out "$work/cls.safetensors" --tokens 256 --seq-len 16 \
  --epochs 2 --hidden 4 >/dev/null 2>&1 || fail "exit-classifier train"

"$rrt" serve "$ckpt" --port 0 --max-batch 2 --scheduler depth --model-name tiny \
  --exit-classifier "$work/cls.safetensors" 2>"$work/serve.err" &
pid=$!
port=""
for _ in $(seq 1 600); do
  port=$(sed -n 's|.* on http://127.0.0.1:\([0-9]*\) .*|\1|p' "$work/serve.err")
  [[ -n $port ]] && break
  kill -0 "$pid" 2>/dev/null || fail "rrt serve exited before listening"
  sleep 0.1
done
[[ -n $port ]] || fail "rrt serve printed no port"
url="http://127.0.0.1:$port"

"$rrt" generate "$ckpt" --prompt "Line 3:" --max-new-tokens 8 --json 2>/dev/null >"$work/gen.json" \
  || fail generate
"$rrt" generate "$ckpt" --prompt "Line 3:" --max-new-tokens 8 --json --exit classifier \
  --threshold 0.5 --exit-classifier "$work/cls.safetensors" 2>/dev/null >"$work/gen_cls.json" \
  || fail "generate --exit classifier"
python3 - "$url" "$work/gen.json" "$work/gen_cls.json" <<'PY' || fail "completions differ from rrt generate"
import json, sys, urllib.request, urllib.error
url, gen, gen_cls = sys.argv[1], json.load(open(sys.argv[2])), json.load(open(sys.argv[3]))
def post(body):
    req = urllib.request.Request(url + "/v1/completions", json.dumps(body).encode(),
                                 {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
status, text = post({"model": "tiny", "prompt": "Line 3:", "max_tokens": 8, "temperature": 0})
assert status == 200, (status, text)
c = json.loads(text)["choices"][0]
assert c["token_ids"] == gen["tokens"], (c["token_ids"], gen["tokens"])
assert c["text"] == gen["text"], (c["text"], gen["text"])
status, text = post({"prompt": "Line 3:", "max_tokens": 8, "temperature": 0, "stream": True})
assert status == 200, status
events = [e[len("data: "):] for e in text.split("\n\n") if e]
assert events[-1] == "[DONE]", events[-1]
assert "".join(json.loads(e)["choices"][0]["text"] for e in events[:-1]) == gen["text"]
status, text = post({"prompt": "Line 3:", "max_tokens": 8, "temperature": 0, "exit": "classifier",
                     "threshold": 0.5})
assert status == 200, (status, text)
c = json.loads(text)["choices"][0]
assert c["token_ids"] == gen_cls["tokens"], (c["token_ids"], gen_cls["tokens"])
assert c["exit_loops"] == gen_cls["exit_loops"], (c["exit_loops"], gen_cls["exit_loops"])
status, text = post({"prompt": "x", "max_tokens": "many"})
assert status == 400 and json.loads(text)["error"]["param"] == "max_tokens", (status, text)
with urllib.request.urlopen(url + "/v1/models") as r:
    assert json.load(r)["data"][0]["id"] == "tiny"
with urllib.request.urlopen(url + "/metrics") as r:
    assert "rrt_time_to_first_token_seconds_bucket" in r.read().decode()
PY
if command -v curl >/dev/null; then
  curl -sf "$url/v1/completions" -H 'Content-Type: application/json' \
    -d '{"prompt": "Line 3:", "max_tokens": 8, "temperature": 0}' | grep -q '"token_ids"' \
    || fail "curl"
  curl -sf "$url/health" | grep -q ok || fail "curl /health"
fi

kill -TERM "$pid"
status=0
wait "$pid" || status=$?
pid=""
[[ $status -eq 0 ]] || fail "rrt serve exited $status on SIGTERM"
grep -q "rrt serve: stopped" "$work/serve.err" || fail "no clean stop: $(cat "$work/serve.err")"
echo "serve CLI smoke: ok"
