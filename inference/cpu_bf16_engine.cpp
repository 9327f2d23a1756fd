// The serving engine (inference/stage_engine_impl.h) on the CPU bf16 backend: a bf16 copy of the
// model's value arena (a pointer into the fp32 arena maps to the same offset in it), bf16 states
// and KV cache, fp32 norm statistics, softmax and logits.
#include "inference/cpu_bf16_engine.h"

#include "core/arena.h"
#include "core/error.h"
#include "inference/stage_engine_impl.h"
#include "model/parameters.h"
#include "ops/cpu_bf16/backend.h"

namespace rrt::inference {

template class StageEngine<CpuBf16Backend>;

namespace {

constexpr const char* kWhere = "CpuBf16Engine";

// The value arena in bf16, made before the engine, whose weight map points into it.
struct Bf16Weights {
  const float* host_base = nullptr;
  int64_t floats = 0;
  BackendBlock block;

  explicit Bf16Weights(const ParameterSet& params) {
    const Arena& arena = const_cast<ParameterSet&>(params).values_arena();
    host_base = static_cast<const float*>(arena.base());
    floats = arena.total_bytes() / static_cast<int64_t>(sizeof(float));
    const CpuBf16Backend memory(1);
    block = memory.allocate(sizeof(bf16) * static_cast<size_t>(floats), "bf16 weights");
    memory.upload_bf16(base(), host_base, floats, "bf16 weights");
  }
  bf16* base() const { return static_cast<bf16*>(block.get()); }
  const bf16* map(const float* host) const {
    if (host == nullptr) return nullptr;
    const int64_t at = host - host_base;
    RRT_CHECK(at >= 0 && at < floats, kWhere,
              "a weight does not point into the parameter set's arena (bind_weights of another "
              "set)");
    return base() + at;
  }
};

class CpuBf16Engine final : private Bf16Weights, public StageEngine<CpuBf16Backend> {
 public:
  CpuBf16Engine(const ModelWeights& w, const ParameterSet& params, const EngineCapacity& capacity)
      : Bf16Weights(params),
        StageEngine<CpuBf16Backend>(
            w, [this](const float* host) { return map(host); }, capacity) {}
};

}  // namespace

std::unique_ptr<Engine> make_cpu_bf16_engine(const ModelWeights& weights,
                                             const ParameterSet& params,
                                             const EngineCapacity& capacity) {
  return std::make_unique<CpuBf16Engine>(weights, params, capacity);
}

}  // namespace rrt::inference
