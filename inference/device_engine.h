// The engine on one GPU (inference/engine.h's interface): the one engine code (StageEngine) on the
// CUDA backend, with bf16 weights (one upload of the model's values), bf16 residual states and KV cache, fp32 norm statistics,
// softmax and logits, cuBLASLt GEMMs and rrt's decode-attention kernel (ops/cuda/kv_ops.h).
// This header names no CUDA type: CPU code (rrt generate, rrt serve-bench) includes it
// unconditionally, and a build without CUDA links a stub whose factory throws saying so.
#pragma once

#include <memory>

#include "inference/engine.h"
#include "inference/weights.h"

namespace rrt {
class ParameterSet;
}

namespace rrt::inference {

// True in a CUDA build (whether or not a GPU is visible).
bool device_engine_compiled();

// `weights` must point into `params` (bind_weights); the values are copied to the GPU as bf16,
// so neither needs to outlive the engine. Throws rrt::Error without a CUDA build or a GPU, or
// when the GPU memory does not hold the weights, the KV cache and the scratch (with the sizes).
std::unique_ptr<Engine> make_device_engine(const ModelWeights& weights, const ParameterSet& params,
                                           const EngineCapacity& capacity);

}  // namespace rrt::inference
