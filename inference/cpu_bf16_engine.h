// The engine (inference/engine.h's interface) on the CPU bf16 backend (ops/cpu_bf16/backend.h):
// the one engine code (StageEngine) with bf16 weights (one conversion of the model's values),
// bf16 residual states and KV cache, fp32 norm statistics, softmax and logits. The CPU's
// answer to inference/device_engine.h; the product of its GEMMs is ops/cpu_bf16/gemm.h's.
#pragma once

#include <memory>

#include "inference/engine.h"
#include "inference/weights.h"

namespace rrt {
class ParameterSet;
}

namespace rrt::inference {

// `weights` must point into `params` (bind_weights); the values are converted to bf16, so
// neither needs to outlive the engine.
std::unique_ptr<Engine> make_cpu_bf16_engine(const ModelWeights& weights,
                                             const ParameterSet& params,
                                             const EngineCapacity& capacity);

}  // namespace rrt::inference
