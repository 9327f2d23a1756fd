#!/usr/bin/env bash
# Fetches NVIDIA's header-only cudnn-frontend (the C++ graph API over cuDNN that
# ops/cuda/attention.cpp uses for fused attention) from its PyPI wheel, nvidia-cudnn-frontend
# (Apache-2.0 and MIT), into DIR (default .deps/ in the repository, ignored by git) unless it is
# there, and prints the include folder to pass as -DRRT_CUDNN_FRONTEND_DIR. Idempotent; needs pip
# and the network the first time.
# Usage: tools/fetch_cudnn_frontend.sh [DIR]
# Only include/ and the licence files are kept: the wheel's Python module is not used. The wheel
# is chosen for a fixed platform (the headers are the same in every wheel), so any python3 with
# pip can fetch it.
set -euo pipefail
cd "$(dirname "$0")/.."
version=1.32.0
dir="${1:-$(pwd)/.deps}/cudnn-frontend-$version"
include="$dir/include"
if [[ ! -f "$include/cudnn_frontend.h" ]]; then
  mkdir -p "$dir"
  tmp=$(mktemp -d "$dir/.fetch.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  python3 -m pip download --quiet --no-deps --only-binary=:all: --platform manylinux_2_28_x86_64 \
    --python-version 3.11 --implementation cp --abi cp311 \
    "nvidia-cudnn-frontend==$version" -d "$tmp/wheel" >&2
  python3 - "$tmp/wheel" "$tmp" <<'PY'
import glob, sys, zipfile
wheel = glob.glob(sys.argv[1] + "/nvidia_cudnn_frontend-*.whl")[0]
with zipfile.ZipFile(wheel) as z:
    names = [n for n in z.namelist() if n.startswith("include/") and not n.endswith("/")]
    if "include/cudnn_frontend.h" not in names:
        sys.exit(f"[fetch_cudnn_frontend] {wheel} has no include/cudnn_frontend.h")
    z.extractall(sys.argv[2], members=names)
    for n in z.namelist():  # LICENSE.txt (Apache-2.0), LICENSE-MIT.txt, NOTICE
        if "/licenses/" in n and not n.endswith("/"):
            with open(sys.argv[2] + "/include/" + n.rsplit("/", 1)[1], "wb") as out:
                out.write(z.read(n))
PY
  IFS=. read -r major minor patch <<<"$version"
  for line in "MAJOR_VERSION $major" "MINOR_VERSION $minor" "PATCH_VERSION $patch"; do
    grep -q "#define CUDNN_FRONTEND_$line\b" "$tmp/include/cudnn_frontend_version.h" || {
      echo "[fetch_cudnn_frontend] the wheel's headers are not version $version" >&2
      exit 1
    }
  done
  rm -rf "$include"
  mv "$tmp/include" "$include"
fi
echo "$include"
