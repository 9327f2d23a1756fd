// What the serving engines read off a row of logits: the greedy token and the max softmax
// probability that the confidence exit compares to its threshold. Host code (the CUDA engine has
// its own kernel, ops/cuda/kv_ops.h: logits_argmax_max_prob).
#pragma once

#include <cstdint>

namespace rrt::ops {

// The index of the largest logit (the lowest id on ties).
int32_t argmax(const float* logits, int64_t V);
// max_i softmax(logits)_i, in double.
double max_probability(const float* logits, int64_t V);

}  // namespace rrt::ops
