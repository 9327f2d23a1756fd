#!/usr/bin/env bash
# Fetches oneDNN 3.2 (GNU OpenMP threading, CPU only) from its PyPI wheels, onednn-cpu-gomp and
# onednn-devel-cpu-gomp 2023.2.0 (Apache-2.0), into DIR (default .deps/ in the repository,
# ignored by git) unless it is there, and prints the folder to pass as -Ddnnl_DIR. Idempotent;
# needs pip and the network the first time.
# Usage: tools/fetch_onednn.sh [DIR]
# Debian's libdnnl-dev (oneDNN 2.6.3, tools/setup.sh) is the default and what CI builds with;
# this newer one is for a CPU whose AMX kernels improved after 2.6 (docs/benchmarks.md, "bf16
# GEMMs on the CPU", says what was measured). PyPI's plain `onednn` wheel is a SYCL build that
# needs Intel's SYCL, TBB and compiler runtimes, so the gomp wheels are the ones taken. Build with
#   cmake -S . -B build -Ddnnl_DIR="$(tools/fetch_onednn.sh)"
set -euo pipefail
cd "$(dirname "$0")/.."
wheel_version=2023.2.0 version=3.2.0
dir="${1:-$(pwd)/.deps}/onednn-$version"
cmake_dir="$dir/lib/cmake/dnnl"
if [[ ! -f "$cmake_dir/dnnl-config.cmake" ]]; then
  mkdir -p "$dir"
  tmp=$(mktemp -d "$dir/.fetch.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  python3 -m pip download --quiet --no-deps --only-binary=:all: \
    "onednn-cpu-gomp==$wheel_version" "onednn-devel-cpu-gomp==$wheel_version" -d "$tmp/wheel" >&2
  python3 - "$tmp/wheel" "$tmp/out" <<'PY'
import glob, os, sys, zipfile
out = sys.argv[2]
for wheel in glob.glob(sys.argv[1] + "/onednn_*.whl"):
    with zipfile.ZipFile(wheel) as z:
        for n in z.namelist():
            # <name>.data/data/{include,lib,share}/... -> out/{include,lib,share}/...
            parts = n.split("/")
            if len(parts) > 3 and parts[0].endswith(".data") and parts[1] == "data" and not n.endswith("/"):
                target = os.path.join(out, *parts[2:])
                os.makedirs(os.path.dirname(target), exist_ok=True)
                with open(target, "wb") as f:
                    f.write(z.read(n))
PY
  IFS=. read -r major minor patch <<<"$version"
  for line in "MAJOR $major" "MINOR $minor" "PATCH $patch"; do
    grep -q "#define DNNL_VERSION_$line\b" "$tmp/out/include/oneapi/dnnl/dnnl_version.h" || {
      echo "[fetch_onednn] the wheels' headers are not oneDNN $version" >&2
      exit 1
    }
  done
  [[ -f "$tmp/out/lib/libdnnl.so.3.2" ]] || { echo "[fetch_onednn] no libdnnl.so.3.2 in the wheel" >&2; exit 1; }
  # Wheels hold no symbolic links: the two aliases come as copies of the library (55 MB each).
  for alias in libdnnl.so libdnnl.so.3; do
    if cmp -s "$tmp/out/lib/$alias" "$tmp/out/lib/libdnnl.so.3.2"; then
      ln -sf libdnnl.so.3.2 "$tmp/out/lib/$alias"
    fi
  done
  rm -rf "$dir/include" "$dir/lib" "$dir/share"
  mv "$tmp/out/include" "$tmp/out/lib" "$dir/"
  [[ -d "$tmp/out/share" ]] && mv "$tmp/out/share" "$dir/"
fi
echo "$cmake_dir"
