#!/usr/bin/env bash
# The README's two quick-start commands:
#   tools/quickstart.sh demo   install dependencies, build, run `rrt demo`
#   tools/quickstart.sh test   install dependencies, build, run the test suite (ctest)
# Builds into build/ (CPU only; pass RRT_CUDA=ON in the environment to add the CUDA backend).
set -euo pipefail
cd "$(dirname "$0")/.."

mode="${1:-}"
if [[ "$mode" != demo && "$mode" != test ]]; then
  echo "usage: $0 demo|test" >&2
  exit 2
fi

if [[ $(id -u) -eq 0 ]]; then
  ./tools/setup.sh
else
  sudo ./tools/setup.sh
fi

jobs=$(nproc)
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DRRT_CUDA="${RRT_CUDA:-OFF}"

if [[ "$mode" == demo ]]; then
  # The demo needs the rrt binary alone (the tests and benchmarks take longer to build than
  # the demo takes to run). A rerun skips the stages already done in runs/demo.
  cmake --build build -j "$jobs" --target rrt_cli
  ./build/rrt demo
else
  cmake --build build -j "$jobs"
  # One OpenMP thread per test: ctest runs $jobs tests at once, and spinning OpenMP teams on
  # oversubscribed cores are slow. Tests that need several threads ask for them explicitly.
  cd build && OMP_NUM_THREADS=1 ctest --output-on-failure -j "$jobs"
fi
