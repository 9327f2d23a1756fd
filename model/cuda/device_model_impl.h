// The device model's private state (model/cuda/device_model.{cpp,_state.cpp} only): the memory
// plan's helpers and DeviceModel::Impl. CUDA builds only.
#pragma once

#include <algorithm>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/cuda/cuda_check.h"
#include "model/cuda/device_layer.h"
#include "model/cuda/device_model.h"
#include "model/registry.h"
#include "ops/cuda/attention.h"
#include "ops/cuda/elementwise.h"
#include "ops/cuda/gemm.h"

namespace rrt {

namespace device_model_detail {

constexpr const char* kWhere = "DeviceModel";

// Carves typed pieces out of one device block. Run once with no base to measure the block, then
// again on the allocation to hand out the pointers: one plan, no size kept twice.
struct Carver {
  char* base = nullptr;
  size_t used = 0;
  template <typename T>
  T* take(int64_t count) {
    T* p = base ? reinterpret_cast<T*>(base + used) : nullptr;
    used += (sizeof(T) * static_cast<size_t>(std::max<int64_t>(count, 1)) + 255) / 256 * 256;
    return p;
  }
};

// One cudaMalloc, freed with the model; the error names what did not fit.
struct DeviceBlock {
  void* ptr = nullptr;
  size_t bytes = 0;
  DeviceBlock() = default;
  DeviceBlock(const DeviceBlock&) = delete;
  DeviceBlock& operator=(const DeviceBlock&) = delete;
  ~DeviceBlock() { cudaFree(ptr); }
  void allocate(size_t n, const char* what) {
    bytes = n;
    ptr = cuda_malloc_or_fail(
        n, kWhere, what, "Lower train.micro_batch or train.seq_len, or set train.recompute: all");
    RRT_CUDA_CHECK(cudaMemset(ptr, 0, n));
  }
};

}  // namespace device_model_detail

struct DeviceModel::Impl {
  ModelSpec spec;
  DeviceModelOptions opt;
  ParamRegistry registry;
  LossBreakdown losses;
  cudaStream_t stream = nullptr;  // the legacy default stream: host copies order with kernels
  ops::cuda::GemmContext gemm{nullptr};
  ops::cuda::AttentionContext attention{nullptr};
  std::unique_ptr<ops::cuda::DeviceRopeTable> rope;
  int64_t L = 0, M = 0, adam_step = 0;

  // Parameters: the host arena's layout (offsets in floats), fp32 masters, bf16 copies, fp32
  // gradients and moments.
  std::vector<int64_t> offset;
  int64_t arena_floats = 0;
  device_model_detail::DeviceBlock param_block, activation_block;
  float *master = nullptr, *grad = nullptr, *adam_m = nullptr, *adam_v = nullptr;
  bf16* compute = nullptr;
  double* norm_workspace = nullptr;

  // Activations and scratch.
  std::vector<DeviceLayerParams> layer_params;
  std::vector<DeviceLayerGrads> layer_grads;
  std::vector<DeviceLayerStash> stash;  // recomputed positions share one stash
  std::vector<bf16*> resid;             // L + 1 residual streams [M, D]
  DeviceLayerScratch scratch{};
  bf16 *d_resid = nullptr, *final_h = nullptr, *d_final_h = nullptr, *recompute_out = nullptr;
  float *final_rstd = nullptr, *final_mean = nullptr;
  int32_t *tokens = nullptr, *targets = nullptr;
  void* head_ws = nullptr;
  size_t head_ws_bytes = 0;
  int64_t N = 0, T = 0, head_chunk = 0;

  // Exits, distillation and freezing (device_model_exits.cpp), as RecursiveModel holds them: in
  // the order of loss.exit_loops, the last the final exit (final_h, d_final_h). The plain
  // objective has the final exit alone.
  TrainingLoss loss;
  std::vector<int64_t> exit_resid;  // residual index k * B of each exit
  std::vector<int> exit_at_resid;   // L + 1 entries: the exit at residual i, or -1
  std::vector<bf16*> exit_h, exit_dh;
  std::vector<float*> exit_rstd, exit_mean;
  std::vector<const bf16*> exit_lora_a, exit_lora_b;  // head adapters, null where none
  std::vector<float*> exit_lora_da, exit_lora_db;
  DeviceModel* teacher = nullptr;  // distillation: a forward-only DeviceModel

  // Gradient-ready notifications, RecursiveModel's call points and values (bind_positions and
  // bind_exits fill grad_ready_after as RecursiveModel::bind_positions and bind_exits do).
  std::function<void(int64_t)> grad_ready_hook;
  std::vector<int64_t> grad_ready_after;  // per registry index
  void grad_ready(int64_t v) const {
    if (grad_ready_hook) grad_ready_hook(v);
  }

  Impl(const ModelSpec& s, const DeviceModelOptions& o) : spec(s), opt(o), registry(s) {}

  bf16* value_bf16(const std::string& name) const { return compute + offset[registry.index(name)]; }
  float* grad_of(int i) const {
    return grad != nullptr && registry[i].trainable ? grad + offset[i] : nullptr;
  }

  LayerDims dims(int64_t n, int64_t t) const { return layer_dims(spec.model, n, t); }
  DeviceLayerContext context() { return {gemm, attention, *rope, stream}; }

  void plan_parameters();
  void carve_activations(device_model_detail::Carver& c);
  void bind_positions();
  void forward(const int32_t* host_tokens, int64_t n, int64_t t);
  void backward();

  // device_model_exits.cpp
  void plan_exits();                                 // resolves loss; before carving
  void carve_exits(device_model_detail::Carver& c);  // the intermediate exits' states
  void freeze();                                     // loss.train: registry trainable flags
  void bind_exits();                                 // head adapters, after carving
  double exits_forward_backward(const int32_t* host_tokens, const int32_t* host_targets, int64_t n,
                                int64_t t, float weight);
};

}  // namespace rrt
