// Choosing a token from logits: greedy (temperature 0), temperature, and top-p (nucleus)
// sampling; and the max softmax probability that the confidence exit compares to its threshold.
// Random draws are counter-based: token t of request r uses uniform(seed, stream r, index t), so
// a sequence's samples do not depend on the scheduler or the batch it ran in.
#pragma once

#include <cstdint>
#include <vector>

#include "ops/logits.h"

namespace rrt::inference {

struct SamplingConfig {
  double temperature = 0.0;  // 0: greedy (argmax, the lowest id on ties)
  double top_p = 1.0;        // keep the smallest set of most likely tokens reaching p
  uint64_t seed = 1;
};

using ops::argmax;  // ops/logits.h
using ops::max_probability;

class Sampler {
 public:
  explicit Sampler(int64_t vocab);
  int32_t sample(const float* logits, const SamplingConfig& cfg, uint64_t stream, uint64_t index);

 private:
  int64_t V_;
  std::vector<double> probs_;   // [V] scratch
  std::vector<int32_t> order_;  // [V] scratch
};

}  // namespace rrt::inference
