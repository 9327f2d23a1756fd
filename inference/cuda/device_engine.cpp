// The serving engine (inference/stage_engine.h) on one GPU: the CUDA bf16 backend over a bf16
// copy of the model's value arena (a pointer into the host arena maps to the same offset here);
// the work-item states and the KV cache are bf16 device memory, and each call uploads only its
// rows (slot, position, state, stage) and returns only the head's per-row results. A decode step
// on a GPU is bound by its kernel launches, so every op of a layer is one launch over all rows
// whatever their loops: the tied GEMM (shared by every loop), each row's own loop's LoRA
// (lora_rows_forward), the KV cache of each row's own position (kv_store / kv_attention with a
// per-row cache index). A step mixing loops then costs what a step of one loop costs, as the
// paper's model of depth-wise batching assumes (docs/method.md §6.3). Everything is queued on
// one stream; exit_heads and synchronize wait for it.
#include "inference/device_engine.h"

#include <cuda_runtime.h>

#include <algorithm>

#include "core/arena.h"
#include "core/cuda/cuda_check.h"
#include "core/device.h"
#include "core/error.h"
#include "inference/stage_engine_impl.h"
#include "model/parameters.h"
#include "ops/cuda/backend.h"
#include "ops/cuda/vector_ops.h"

namespace rrt::inference {

template class StageEngine<CudaBackend>;

namespace {

constexpr const char* kWhere = "DeviceEngine";
using ops::cuda::bf16;

// The value arena as bf16 on the device, through an fp32 staging slice; constructed before the
// engine, whose weight map points into it.
struct DeviceWeights {
  const float* host_base = nullptr;
  int64_t floats = 0;
  BackendBlock block;

  DeviceWeights(const ParameterSet& params, const EngineCapacity& capacity) {
    // Before any cuBLAS handle exists: its own error would not say that no GPU is there.
    RRT_CHECK(cuda_device_count() > 0, kWhere,
              "device cuda: no CUDA GPU is visible to this process (check nvidia-smi and "
              "CUDA_VISIBLE_DEVICES), or use --device cpu");
    RRT_CHECK(capacity.max_rows > 0 && capacity.slots > 0, kWhere,
              "max_rows and slots must be positive");
    const Arena& arena = const_cast<ParameterSet&>(params).values_arena();
    host_base = static_cast<const float*>(arena.base());
    floats = arena.total_bytes() / static_cast<int64_t>(sizeof(float));
    const CudaBackend memory;
    block = memory.allocate(sizeof(bf16) * static_cast<size_t>(floats), "bf16 weights");
    memory.upload_bf16(bf16_base(), host_base, floats, "weight upload staging");
  }
  bf16* bf16_base() const { return static_cast<bf16*>(block.get()); }
  const bf16* on_device(const float* host) const {
    if (host == nullptr) return nullptr;
    const int64_t at = host - host_base;
    RRT_CHECK(at >= 0 && at < floats, kWhere,
              "a weight does not point into the parameter set's arena (bind_weights of another "
              "set)");
    return bf16_base() + at;
  }
};

class DeviceEngine final : private DeviceWeights, public StageEngine<CudaBackend> {
 public:
  DeviceEngine(const ModelWeights& w, const ParameterSet& params, const EngineCapacity& capacity)
      : DeviceWeights(params, capacity),
        StageEngine<CudaBackend>(
            w, [this](const float* host) { return on_device(host); }, capacity) {}
};

}  // namespace

bool device_engine_compiled() { return true; }

std::unique_ptr<Engine> make_device_engine(const ModelWeights& weights, const ParameterSet& params,
                                           const EngineCapacity& capacity) {
  return std::make_unique<DeviceEngine>(weights, params, capacity);
}

}  // namespace rrt::inference
