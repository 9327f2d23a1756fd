#!/usr/bin/env bash
# Installs everything rrt needs to build and test on a fresh Debian 12 machine (run as root).
# Idempotent: packages already present are left alone, so a second run is fast.
#   tools/setup.sh                       what building and testing need (Debian packages only)
#   tools/setup.sh --with-fixture-tools  also the pip packages of tools/make_fixtures.py
#                                        (PyTorch: several GB; tests never need it)
set -euo pipefail
cd "$(dirname "$0")/.."
fixture_tools=0
for arg in "$@"; do
  case "$arg" in
    --with-fixture-tools) fixture_tools=1 ;;
    *) echo "usage: $0 [--with-fixture-tools]" >&2; exit 2 ;;
  esac
done

packages=(
  build-essential cmake ninja-build pkg-config git python3
  libopenblas-openmp-dev     # sgemm; the OpenMP flavour runs single-threaded inside our parallel regions
  libdnnl-dev                # oneDNN 2.x: the bf16 backend's GEMMs (ops/cpu_bf16/gemm.cpp), GNU OpenMP
  ocl-icd-opencl-dev         # libdnnl-dev's CMake config needs OpenCL (only a Recommends: a fresh
                             # machine without it fails to configure)
  libgtest-dev libgmock-dev  # unit tests
  nlohmann-json3-dev         # safetensors headers, fixtures, metrics
  libhdf5-dev                # checkpoints and token shards
  libyaml-cpp-dev            # configs
  libcli11-dev               # the rrt command line
  libcpp-httplib-dev         # rrt serve's HTTP server (serve/); optional: the build skips it without
  libsentencepiece-dev       # SentencePiece tokenizers for rrt prepare
  libpcre2-dev               # Unicode regexes of the byte-level BPE pre-tokenizers
  libutf8proc-dev            # NFC/NFKC normalizers of tokenizer.json files (Qwen2's NFC)
  zlib1g-dev                 # deflate for the PNG writer of rrt plot (plot/png), .jsonl.gz inputs
  libzstd-dev zstd           # .jsonl.zst inputs of rrt prepare (the tool: tests, bench)
  python3-pip                # tools/fetch_arrow.sh downloads pyarrow's wheel (Parquet inputs)
  libprotobuf-dev protobuf-compiler  # TensorBoard event files of rrt train (trainer/tensorboard)
  dict-jargon dict-devil     # source of the embedded public-domain demo corpus (tools/make_corpus.sh)
  libopenmpi-dev openmpi-bin # data-parallel training
  # launch/slurm_*.sbatch and their test on a local cluster (tools/local_slurm.sh). srun
  # --mpi=pmix dlopens pmix2/lib/libpmix.so, which only libpmix-dev ships (libopenmpi-dev
  # pulls it in today; named so that it stays).
  slurm-wlm munge libpmix-dev
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
  echo "[setup] installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "[setup] all Debian packages present"
fi

# Apache Arrow's C++ Parquet reader (Parquet inputs of rrt prepare) from PyPI's pyarrow wheel
# into .deps/ (docs/data.md, "Parquet": Debian 12 packages no Arrow). Without the network the
# build goes on without Parquet support, and a .parquet input is an error naming this step.
if ! ./tools/fetch_arrow.sh >/dev/null; then
  echo "[setup] could not fetch pyarrow's wheel: rrt builds without Parquet inputs"
fi

if ((fixture_tools)); then
  if python3 -c "import torch, numpy" 2>/dev/null; then
    echo "[setup] torch and numpy present"
  else
    apt-get install -y -qq --no-install-recommends python3-pip >/dev/null 2>&1 || true
    python3 -m pip install -q -r tools/requirements-fixtures.txt
  fi
fi
