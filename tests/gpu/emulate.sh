#!/usr/bin/env bash
# The device model's and the inference engine's gpu tests (test_model_gpu.cpp, test_exits_gpu.cpp, test_trainer_gpu.cpp,
# test_grad_ready_gpu.cpp, test_engine_gpu.cpp; and the op tests of the engine's own kernels, test_kv_ops_gpu.cpp and
# test_lora_rows_gpu.cpp, which here check the emulation's host versions that the engine test runs on)
# on the CPU, against a host emulation of the CUDA runtime and of ops/cuda
# (tests/gpu/emulation/host_cuda.cpp): checks the device model's and the trainer's cuda wiring
# where no GPU is. It says nothing about the kernels; tests/gpu/run.sh on a GPU host does.
#   tests/gpu/emulate.sh [CPU_BUILD_DIR] [gtest flags...]
# CPU_BUILD_DIR (default build) must hold the CPU-only libraries (-DRRT_CUDA=OFF), e.g.
#   cmake -S . -B build -G Ninja -DRRT_CUDA=OFF && ninja -C build rrt_inference
# Needs the CUDA toolkit's headers only (cuda_bf16.h, cuda_runtime_api.h; CUDA_HOME or
# /usr/local/cuda), no driver, no GPU, no CUDA library.
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build}
shift || true
tag=emulate
source tests/gpu/host_build.sh
exe=$build/test_model_gpu_emulated
echo "[emulate] building $exe"
# The device model's and engine's sources are compiled here (the CPU build's libraries hold the stubs).
g++ -std=c++20 -O1 -fopenmp -w -I. -isystem "$cuda_include" \
  $(pkg-config --cflags hdf5 openblas yaml-cpp sentencepiece libpcre2-8 gtest) \
  tests/gpu/test_model_gpu.cpp tests/gpu/test_exits_gpu.cpp tests/gpu/test_trainer_gpu.cpp \
  tests/gpu/test_grad_ready_gpu.cpp tests/gpu/test_engine_gpu.cpp \
  tests/gpu/test_kv_ops_gpu.cpp tests/gpu/test_lora_rows_gpu.cpp \
  model/cuda/device_model.cpp \
  model/cuda/device_model_state.cpp model/cuda/device_model_exits.cpp \
  model/cuda/device_layer.cpp inference/cuda/device_engine.cpp tests/gpu/emulation/host_cuda.cpp \
  "$build"/librrt_{inference,trainer,data,model,ops,distributed,core}.a \
  $(pkg-config --libs hdf5 openblas yaml-cpp sentencepiece libpcre2-8 zlib gtest_main) \
  "${tensorboard_link[@]}" "${mpi_link[@]}" -lpthread -o "$exe"
echo "[emulate] running (the CudaWithoutAGpu test skips: the emulation shows one GPU)"
OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} "$exe" "$@"
