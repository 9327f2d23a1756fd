#!/usr/bin/env bash
# The official openai Python client against rrt serve (docs/inference.md, "rrt serve"):
#   tools/check_openai_client.sh CHECKPOINT [--rrt BINARY] [--prompt TEXT]
# Installs openai (pinned) into tools/.venv-openai on first use: pip, never in CI or the tests.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="$here/.venv-openai"
if ! "$venv/bin/python" -c "import openai" 2>/dev/null; then
  echo "[check_openai_client] installing openai into $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "openai==3.51.0"
fi
exec "$venv/bin/python" "$here/check_openai_client.py" "$@"
