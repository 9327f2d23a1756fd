#!/usr/bin/env bash
# Installs everything rrt needs to build and test on a fresh Debian 12 machine (run as root).
# Idempotent: packages already present are left alone, so a second run is fast.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config git python3
  libopenblas-openmp-dev     # sgemm; the OpenMP flavour runs single-threaded inside our parallel regions
  libgtest-dev libgmock-dev  # unit tests
  nlohmann-json3-dev         # safetensors headers, fixtures, metrics
  libhdf5-dev                # checkpoints and token shards
  libyaml-cpp-dev            # configs
  libopenmpi-dev openmpi-bin # data-parallel training
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
