#!/usr/bin/env bash
# Fetches Apache Arrow's C++ Parquet reader (libarrow + libparquet and their headers) from PyPI's
# pyarrow wheel (Apache-2.0) into DIR (default .deps/ in the repository, ignored by git) unless it
# is there, and prints the folder to pass as -DRRT_ARROW_DIR (it holds include/ and lib/).
# Idempotent; needs pip and the network the first time.
# Usage: tools/fetch_arrow.sh [DIR]
#
# Why the wheel (docs/data.md, "Parquet"): Debian 12 packages no Arrow (no libarrow-dev nor
# libparquet-dev), and a source build of Arrow takes most of an hour on two cores. The manylinux
# wheel ships the C++ headers and self-contained shared libraries (built with the C++11 string
# ABI, needing only glibc and libstdc++), so rrt links them as they are: only include/arrow,
# include/parquet, libarrow and libparquet (about 62 MB) are kept; the Python module is not used.
# The wheel is chosen for a fixed platform and Python (the C++ libraries are the same in every
# wheel of a version), so any python3 with pip can fetch it.
set -euo pipefail
cd "$(dirname "$0")/.."
version=26.0.1
so=2600  # the libraries' SONAME suffix in this version
dir="${1:-$(pwd)/.deps}/arrow-$version"
if [[ ! -f "$dir/include/parquet/arrow/reader.h" || ! -f "$dir/lib/libparquet.so.$so" ]]; then
  mkdir -p "$dir"
  tmp=$(mktemp -d "$dir/.fetch.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  python3 -m pip download --quiet --no-deps --only-binary=:all: --platform manylinux_2_28_x86_64 \
    --python-version 3.11 --implementation cp --abi cp311 \
    "pyarrow==$version" -d "$tmp/wheel" >&2
  python3 - "$tmp/wheel" "$tmp/out" "$so" <<'PY'
import glob, os, sys, zipfile
wheel = glob.glob(sys.argv[1] + "/pyarrow-*.whl")[0]
out, so = sys.argv[2], sys.argv[3]
libs = {f"pyarrow/libarrow.so.{so}", f"pyarrow/libparquet.so.{so}"}
with zipfile.ZipFile(wheel) as z:
    names = z.namelist()
    missing = libs - set(names)
    if missing or "pyarrow/include/parquet/arrow/reader.h" not in names:
        sys.exit(f"[fetch_arrow] {wheel} lacks {sorted(missing) or 'parquet/arrow/reader.h'}")
    for n in names:
        if n.endswith("/"):
            continue
        if n.startswith(("pyarrow/include/arrow/", "pyarrow/include/parquet/")):
            target = os.path.join(out, "include", n[len("pyarrow/include/"):])
        elif n in libs:
            target = os.path.join(out, "lib", n.rsplit("/", 1)[1])
        elif "/licenses/" in n or n.endswith(("LICENSE.txt", "NOTICE.txt")):
            target = os.path.join(out, n.rsplit("/", 1)[1])
        else:
            continue
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "wb") as f:
            f.write(z.read(n))
PY
  ln -s "libarrow.so.$so" "$tmp/out/lib/libarrow.so"
  ln -s "libparquet.so.$so" "$tmp/out/lib/libparquet.so"
  grep -q "ARROW_VERSION_STRING \"$version\"" "$tmp/out/include/arrow/util/config.h" || {
    echo "[fetch_arrow] the wheel's headers are not Arrow $version" >&2
    exit 1
  }
  rm -rf "$dir/include" "$dir/lib"
  mv "$tmp/out/"* "$dir/"
fi
echo "$dir"
