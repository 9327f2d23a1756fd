#include "ops/logits.h"

#include <cmath>

namespace rrt::ops {

int32_t argmax(const float* logits, int64_t V) {
  int64_t best = 0;
  for (int64_t i = 1; i < V; ++i)
    if (logits[i] > logits[best]) best = i;
  return static_cast<int32_t>(best);
}

double max_probability(const float* logits, int64_t V) {
  const double mx = logits[argmax(logits, V)];
  double sum = 0;
  for (int64_t i = 0; i < V; ++i) sum += std::exp(static_cast<double>(logits[i]) - mx);
  return 1.0 / sum;
}

}  // namespace rrt::ops
