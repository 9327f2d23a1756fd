// The device model's private state (model/cuda/device_model.{cpp,_state.cpp} only): the
// parameter arenas on the GPU and the one model code (RecursiveCore) on the CUDA backend. CUDA
// builds only.
#pragma once

#include <memory>
#include <vector>

#include "model/cuda/device_model.h"
#include "model/recursive_core.h"
#include "model/registry.h"
#include "ops/cuda/backend.h"

namespace rrt {

namespace device_model_detail {
constexpr const char* kWhere = "DeviceModel";
}  // namespace device_model_detail

struct DeviceModel::Impl {
  using bf16 = ops::cuda::bf16;
  ModelSpec spec;
  DeviceModelOptions opt;
  ParamRegistry registry;
  CudaBackend backend;
  int64_t adam_step = 0;

  // Parameters: the host arena's layout (offsets in floats), fp32 masters, bf16 compute copies,
  // fp32 gradients and AdamW moments; a forward-only model keeps the compute copies alone.
  std::vector<int64_t> offset;
  int64_t arena_floats = 0;
  BackendBlock param_block;
  size_t param_bytes = 0;
  float *master = nullptr, *grad = nullptr, *adam_m = nullptr, *adam_v = nullptr;
  bf16* compute = nullptr;
  double* norm_workspace = nullptr;

  // The forward, backward and losses, written once for every backend.
  std::unique_ptr<RecursiveCore<CudaBackend>> core;

  Impl(const ModelSpec& s, const DeviceModelOptions& o) : spec(s), opt(o), registry(s) {}

  float* grad_of(int i) const {
    return grad != nullptr && registry[i].trainable ? grad + offset[i] : nullptr;
  }
  // The parameter block's layout and size (param_bytes); allocated and carved unless
  // measure_only.
  void plan_parameters(bool measure_only);
};

}  // namespace rrt
