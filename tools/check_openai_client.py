"""The official `openai` Python client against rrt serve (run by tools/check_openai_client.sh).

Serves CHECKPOINT with `rrt serve --port 0` on 127.0.0.1 and checks, through
client.completions.create as docs/inference.md shows it: a greedy completion equals rrt
generate's text, streaming gives the same text, echo + logprobs come back per token, rrt's own
fields go through extra_body, and a bad request raises the client's BadRequestError with the
server's message. Exit status 1 on the first difference.
"""
import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

import openai


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint")
    ap.add_argument("--rrt", default=os.path.join(root, "build/rrt"))
    ap.add_argument("--prompt", default="Line 3:")
    a = ap.parse_args()

    gen = subprocess.run([a.rrt, "generate", a.checkpoint, "--prompt", a.prompt,
                          "--max-new-tokens", "12", "--json"],
                         check=True, capture_output=True, text=True)
    want = json.loads(gen.stdout.splitlines()[0])

    log = tempfile.NamedTemporaryFile("w", suffix=".log", delete=False)
    proc = subprocess.Popen([a.rrt, "serve", a.checkpoint, "--port", "0", "--model-name", "m"],
                            stderr=log, stdout=subprocess.DEVNULL)
    try:
        port = None
        for _ in range(1200):
            m = re.search(r" on http://127\.0\.0\.1:(\d+) ", open(log.name).read())
            if m:
                port = int(m.group(1))
                break
            if proc.poll() is not None:
                sys.exit(f"rrt serve exited: {open(log.name).read()}")
            time.sleep(0.1)
        assert port, "rrt serve printed no port"
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="none")
        assert [m.id for m in client.models.list()][0] == "m"

        r = client.completions.create(model="m", prompt=a.prompt, max_tokens=12, temperature=0)
        text = r.choices[0].text
        # JSON carries what is UTF-8; a barely trained byte model may emit other bytes.
        expect = want["text"].encode("utf-8", "replace").decode("utf-8")
        assert text == expect, (text, expect)
        assert r.usage.completion_tokens == len(want["tokens"]), r.usage

        chunks = client.completions.create(model="m", prompt=a.prompt, max_tokens=12,
                                           temperature=0, stream=True)
        streamed = "".join(c.choices[0].text for c in chunks)
        assert streamed == text, (streamed, text)

        r = client.completions.create(model="m", prompt=a.prompt, max_tokens=4, temperature=0,
                                      echo=True, logprobs=2,
                                      extra_body={"exit": "confidence", "threshold": 0.5})
        lp = r.choices[0].logprobs
        assert r.choices[0].text.startswith(a.prompt)
        assert lp.token_logprobs[0] is None and len(lp.tokens) == len(lp.token_logprobs)
        assert all(x <= 0 for x in lp.token_logprobs[1:])

        try:
            client.completions.create(model="m", prompt=a.prompt, max_tokens=-1)
            sys.exit("a negative max_tokens was accepted")
        except openai.BadRequestError as e:
            assert "max_tokens" in str(e), e
        print(f"openai {openai.__version__} against rrt serve: ok")
        return 0
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)


if __name__ == "__main__":
    sys.exit(main())
