#!/usr/bin/env bash
# lm-evaluation-harness through rrt serve, once per exit (docs/evaluation.md, "Harness tasks per
# exit"):
#   tools/lm_eval_exits.sh CHECKPOINT [--choices FILE] [--rrt BINARY] [--tasks DIR]
# Installs lm-eval (pinned, with its API extras) into tools/.venv-lm-eval on first use: pip, never
# in CI or the tests. Then tools/lm_eval_exits.py serves the checkpoint on a free 127.0.0.1 port,
# runs a multiple-choice task and a log-likelihood task (lm-eval's YAML task format over local
# JSONL) at every exit, and checks the multiple-choice accuracies against rrt eval --choices.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="$here/.venv-lm-eval"
if ! "$venv/bin/python" -c "import lm_eval" 2>/dev/null; then
  echo "[lm_eval_exits] installing lm-eval into $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "lm_eval[api]==0.4.13"
fi
exec "$venv/bin/python" "$here/lm_eval_exits.py" "$@"
