#!/usr/bin/env bash
# rrt's gpu tests on the CPU against the REAL kernel source of ops/cuda: the op tests
# (elementwise, kv ops, cross entropy, exit loss; the attention fallback by hand, see below) and
# the device model / exits / grad-ready / engine tests. tests/gpu/simulation/convert.py rewrites
# each launch in ops/cuda/*.cu into a call of the fiber scheduler (tests/gpu/simulation/), g++
# compiles the kernels otherwise unmodified, and every CUDA thread of a block runs as written,
# barrier by barrier and shuffle by shuffle. The CUDA runtime and cuBLASLt's GEMMs are emulated
# on the host by tests/gpu/simulation/sim_runtime.cpp; cuDNN does not run, so attention goes to
# the fallback kernels. The model, exits, trainer and engine tests run the one model code on the
# CUDA backend (ops/cuda/backend.h) against the CPU backend. What this proves and what it cannot:
# docs/architecture.md (the kernel simulation paragraph) and docs/benchmarks.md.
#   tests/gpu/simulate.sh [CPU_BUILD_DIR] [gtest flags...]
# CPU_BUILD_DIR (default build): CPU-only libraries (-DRRT_CUDA=OFF). Needs only the
# CUDA toolkit's headers and python3. The op tests run with each block's threads in three orders
# (forward, reverse, greedy: sim_scheduler.h), since a read that misses its barrier shows in at
# least one of them; RRT_SIM_SCHEDULE=forward|reverse|greedy runs one. RRT_SIM_JOBS (default 2)
# compiles in parallel; RRT_SIM_ALL=1 adds the trainer's slow multi-step tests.
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build}
shift || true
tag=simulate
source tests/gpu/host_build.sh
command -v python3 >/dev/null || { echo "[simulate] python3 is needed for convert.py" >&2; exit 1; }

out=$build/gpu_simulation
mkdir -p "$out"
sim=tests/gpu/simulation
# rrt's own kernels. Not here: gemm.cu (cuBLASLt; its two small bias kernels go with it), lora.cu
# (GEMMs only), attention.cpp (cuDNN).
kernels=(activation adamw embedding norm rope vector_ops kv_ops lora_rows cross_entropy exit_loss
         attention_fallback)
tests=(test_ops_elementwise_gpu test_kv_ops_gpu test_lora_rows_gpu test_cross_entropy_gpu
       test_exit_loss_gpu test_attention_gpu)
# The model, exits, trainer and engine tests on top of them (GEMMs emulated on the host).
model_sources=(tests/gpu/test_model_gpu.cpp tests/gpu/test_exits_gpu.cpp tests/gpu/test_trainer_gpu.cpp
               tests/gpu/test_grad_ready_gpu.cpp tests/gpu/test_engine_gpu.cpp model/cuda/device_model.cpp
               model/cuda/device_model_state.cpp
               inference/cuda/device_engine.cpp)
read -ra pkg_cflags < <(pkg-config --cflags hdf5 openblas yaml-cpp sentencepiece libpcre2-8 gtest)
# -fno-strict-aliasing: the kernels read bf16 rows through uint4 (16-byte loads), which nvcc
# allows and g++ -O2 would otherwise miscompile.
cxx=(g++ -std=c++20 -O2 -fno-strict-aliasing -fopenmp -w -I. -isystem "$cuda_include" "${pkg_cflags[@]}")
# The kernels run under UBSan: a misaligned 16-byte load (a GPU's "misaligned address" error),
# signed overflow in index arithmetic or an out-of-range shift stops the test with file:line.
ubsan=(-fsanitize=undefined -fno-sanitize=vptr -fno-sanitize-recover=undefined)

# Objects rebuild only when their source, any header, convert.py or this script is newer.
mapfile -t headers < <(git ls-files '*.h' '*.cuh')
stale() {  # stale OBJ SRC...
  local obj=$1 src
  shift
  [[ -f $obj ]] || return 0
  for src in "$@" "${headers[@]}" $sim/convert.py tests/gpu/simulate.sh; do [[ $src -nt $obj ]] && return 0; done
  return 1
}
jobs_list=()
for k in "${kernels[@]}"; do
  if stale "$out/$k.o" "ops/cuda/$k.cu"; then
    python3 $sim/convert.py "ops/cuda/$k.cu" "$out/$k.cpp"
    jobs_list+=("$out/$k.cpp:$out/$k.o:${ubsan[*]}")
  fi
done
test_sources=()
for t in "${tests[@]}"; do test_sources+=("tests/gpu/$t.cpp"); done
for src in "${test_sources[@]}" "${model_sources[@]}" $sim/sim_scheduler.cpp $sim/sim_memory.cpp \
           $sim/sim_attention.cpp; do
  obj=$out/$(basename "$src" .cpp).o
  stale "$obj" "$src" && jobs_list+=("$src:$obj:")
done
stale "$out/sim_runtime.o" $sim/sim_runtime.cpp && jobs_list+=("$sim/sim_runtime.cpp:$out/sim_runtime.o:")
echo "[simulate] compiling ${#jobs_list[@]} files into $out"
pids=()
for job in "${jobs_list[@]}"; do
  IFS=: read -r src obj flags <<<"$job"
  read -ra flags <<<"$flags"
  "${cxx[@]}" "${flags[@]}" -c "$src" -o "$obj" &
  pids+=($!)
  if (( ${#pids[@]} >= ${RRT_SIM_JOBS:-2} )); then wait "${pids[0]}"; pids=("${pids[@]:1}"); fi
done
for p in "${pids[@]}"; do wait "$p"; done

# Two binaries on the same simulated kernels: the op tests and the whole-model tests.
common=()
for k in "${kernels[@]}" sim_scheduler sim_memory sim_attention sim_runtime; do common+=("$out/$k.o"); done
link() {  # link EXE OBJ...
  local exe=$1
  shift
  g++ -fopenmp -fsanitize=undefined "$@" "${common[@]}" \
    "$build"/librrt_{inference,trainer,evaluation,checkpoint,config,distributed,data,model,ops,plot,core}.a \
    $(pkg-config --libs hdf5 openblas yaml-cpp sentencepiece libpcre2-8 zlib gtest_main) \
    "${tensorboard_link[@]}" "${mpi_link[@]}" "${onednn_link[@]}" "${data_link[@]}" -lpthread \
    -o "$exe"
}
op_objs=() model_objs=()
for t in "${tests[@]}"; do op_objs+=("$out/$t.o"); done
for src in "${model_sources[@]}"; do model_objs+=("$out/$(basename "$src" .cpp).o"); done
link "$out/test_kernels_simulated" "${op_objs[@]}"
link "$out/test_model_simulated" "${model_objs[@]}"

# Left out, each for a reason: cuDNN's own path and the dispatch between it and the fallback
# (ops/cuda/attention.cpp needs cudnn-frontend and a GPU build).
skipped=("Table/AttentionGpuCudnn.*" AttentionGpu.DispatchPicksTheFallbackWhereCudnnCannotServe
         AttentionGpu.FallbackMatchesCudnn AttentionGpu.GraphsAreCachedAndRepeatedBackwardsKeepAdding
         AttentionGpu.DispatchRule AttentionGpu.InvalidShapesAndPointersFailWithAClearError)
echo "[simulate] not simulated (cuDNN or its dispatch): ${skipped[*]}"
filter="-$(IFS=:; echo "${skipped[*]}")"
# Three thread orders (tests/gpu/simulation/sim_scheduler.h) unless one is asked for.
for schedule in ${RRT_SIM_SCHEDULE:-forward reverse greedy}; do
  echo "[simulate] op tests, $schedule schedule"
  RRT_SIM_SCHEDULE=$schedule OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} "$out/test_kernels_simulated" \
    --gtest_filter="$filter" "$@"
done
# The model tests once (forward schedule), without the trainer's three multi-step runs: over two
# minutes here (CI runs them: RRT_SIM_ALL=1); CudaWithoutAGpu skips (one "GPU").
slow=(TrainerGpu.TenStepsTrackTheCpuAndTheCheckpointIsDeviceIndependent
      TrainerGpu.DistillationWithExitsTracksTheCpu TrainerGpu.ResumeContinuesTheStraightRun)
if [[ ${RRT_SIM_ALL:-0} == 1 ]]; then
  slow=(None)  # RRT_SIM_ALL=1: the trainer's runs too (about 2 more minutes)
else
  echo "[simulate] left out for time (RRT_SIM_ALL=1 adds them, as CI does): ${slow[*]}"
fi
echo "[simulate] model tests, forward schedule"
RRT_SIM_SCHEDULE=forward OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} "$out/test_model_simulated" \
  --gtest_filter="-$(IFS=:; echo "${slow[*]}")" "$@"
