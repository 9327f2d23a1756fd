"""lm-evaluation-harness's tasks through rrt serve at every exit (run by tools/lm_eval_exits.sh).

Serves CHECKPOINT with `rrt serve --port 0` on 127.0.0.1, then for each exit k runs lm-eval's
local-completions model against the model name "<name>@exit<k>" (rrt serve serves exit k under
it; lm-eval sends no other field) on two tasks written as lm-eval YAML over local JSONL:
  rrt_choices  multiple choice (acc, acc_norm) over the items of --choices (rrt eval's format:
               {"context", "choices", "label"});
  rrt_loglik   the log-likelihood of each item's correct choice (perplexity, and acc: whether
               the continuation is greedy).
lm-eval tokenizes through the server's /tokenize (the model's own tokenizer); each document
starts with <|endoftext|>, which /tokenize turns into the EOS token, as rrt eval's scorer puts EOS
first. Then `rrt eval --choices` scores the same items, and every exit's acc and acc_norm must
agree (exit status 1 otherwise). Any harness task runs the same way: point --tasks at a folder of
task YAMLs (they are added to these two).
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
import urllib.request

CHOICES_TASK = """task: rrt_choices
dataset_path: json
dataset_kwargs:
  data_files:
    test: {items}
test_split: test
output_type: multiple_choice
doc_to_text: "<|endoftext|>{{{{context}}}}"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: label
target_delimiter: ""
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
  - metric: acc_norm
    aggregation: mean
    higher_is_better: true
"""

LOGLIK_TASK = """task: rrt_loglik
dataset_path: json
dataset_kwargs:
  data_files:
    test: {items}
test_split: test
output_type: loglikelihood
doc_to_text: "<|endoftext|>{{{{context}}}}"
doc_to_target: "{{{{choices[label]}}}}"
target_delimiter: ""
metric_list:
  - metric: perplexity
    aggregation: perplexity
    higher_is_better: false
  - metric: acc
    aggregation: mean
    higher_is_better: true
"""


def start_server(rrt, checkpoint, log):
    proc = subprocess.Popen([rrt, "serve", checkpoint, "--port", "0", "--max-batch", "4"],
                            stderr=log, stdout=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"rrt serve exited with {proc.returncode}: see {log.name}")
        with open(log.name) as f:
            m = re.search(r" on http://127\.0\.0\.1:(\d+) ", f.read())
        if m:
            return proc, int(m.group(1))
        time.sleep(0.1)
    proc.kill()
    raise SystemExit("rrt serve printed no port within 120 s")


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint")
    ap.add_argument("--choices", default=os.path.join(root, "tests/fixtures/multiple_choice/sample.jsonl"))
    ap.add_argument("--rrt", default=os.path.join(root, "build/rrt"))
    ap.add_argument("--tasks", default=None, help="a folder of more lm-eval task YAMLs")
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    a = ap.parse_args()
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")  # local JSONL only
    import lm_eval
    from lm_eval.tasks import TaskManager

    work = tempfile.mkdtemp(prefix="rrt_lm_eval_")
    items = os.path.abspath(a.choices)
    with open(os.path.join(work, "rrt_choices.yaml"), "w") as f:
        f.write(CHOICES_TASK.format(items=items))
    with open(os.path.join(work, "rrt_loglik.yaml"), "w") as f:
        f.write(LOGLIK_TASK.format(items=items))
    include = [work] + ([os.path.abspath(a.tasks)] if a.tasks else [])
    tasks = ["rrt_choices", "rrt_loglik"]
    if a.tasks:
        for name in sorted(os.listdir(a.tasks)):
            if name.endswith(".yaml"):
                with open(os.path.join(a.tasks, name)) as f:
                    m = re.search(r"^task:\s*(\S+)", f.read(), re.M)
                if m:
                    tasks.append(m.group(1))

    log = open(os.path.join(work, "serve.log"), "w")
    proc, port = start_server(a.rrt, a.checkpoint, log)
    base = f"http://127.0.0.1:{port}"
    try:
        with urllib.request.urlopen(base + "/v1/models") as r:
            models = [m["id"] for m in json.load(r)["data"] if m.get("exit_loop")]
        results = {}
        for model in models:
            out = lm_eval.simple_evaluate(
                model="local-completions",
                model_args=f"model={model},base_url={base}/v1/completions,"
                           "tokenizer_backend=remote,tokenized_requests=True,"
                           "num_concurrent=1,max_retries=1",
                tasks=tasks,
                task_manager=TaskManager(include_path=include),
                batch_size=1,
                log_samples=False,
            )
            results[model] = out["results"]
            print(f"{model}: " + json.dumps(out["results"]), flush=True)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)

    ev = subprocess.run([a.rrt, "eval", a.checkpoint, "--choices", items, "--no-validation",
                         "--json"], check=True, capture_output=True, text=True)
    rrt_exits = {e["loop"]: e for e in json.loads(ev.stdout)["choices"]["exits"]}
    print("\n| exit | lm-eval acc | rrt eval acc | lm-eval acc_norm | rrt eval acc_norm | "
          "loglik perplexity |")
    print("|---:|---:|---:|---:|---:|---:|")
    ok = True
    for model, res in results.items():
        k = int(model.rsplit("@exit", 1)[1])
        c, r = res["rrt_choices"], rrt_exits[k]
        acc, acc_norm = c["acc,none"], c["acc_norm,none"]
        ppl = res["rrt_loglik"].get("perplexity,none")
        print(f"| {k} | {acc:.4f} | {r['acc']:.4f} | {acc_norm:.4f} | {r['acc_norm']:.4f} | "
              f"{ppl:.3f} |")
        ok = ok and abs(acc - r["acc"]) < 1e-9 and abs(acc_norm - r["acc_norm"]) < 1e-9
    if a.out:
        with open(a.out, "w") as f:
            json.dump({"lm_eval": results, "rrt_eval": rrt_exits}, f, indent=1)
    print("agree at every exit" if ok else "DISAGREE: lm-eval and rrt eval differ")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
