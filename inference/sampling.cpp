#include "inference/sampling.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/error.h"
#include "core/rng.h"

namespace rrt::inference {

Sampler::Sampler(int64_t vocab)
    : V_(vocab), probs_(static_cast<size_t>(vocab)), order_(static_cast<size_t>(vocab)) {}

int32_t Sampler::sample(const float* logits, const SamplingConfig& cfg, uint64_t stream,
                        uint64_t index) {
  RRT_CHECK(cfg.temperature >= 0 && cfg.top_p > 0 && cfg.top_p <= 1, "sampling",
            "temperature must be >= 0 and top_p in (0, 1], got ", cfg.temperature, " and ",
            cfg.top_p);
  if (cfg.temperature == 0) return argmax(logits, V_);
  const double mx = logits[argmax(logits, V_)];
  double sum = 0;
  for (int64_t i = 0; i < V_; ++i) {
    probs_[i] = std::exp((static_cast<double>(logits[i]) - mx) / cfg.temperature);
    sum += probs_[i];
  }
  int64_t kept = V_;
  double mass = sum;
  std::iota(order_.begin(), order_.end(), 0);
  if (cfg.top_p < 1) {
    // Most likely first (ties by id, so the set is deterministic); keep until p is reached.
    std::sort(order_.begin(), order_.end(), [&](int32_t a, int32_t b) {
      return probs_[a] > probs_[b] || (probs_[a] == probs_[b] && a < b);
    });
    mass = 0;
    kept = 0;
    while (kept < V_ && mass < cfg.top_p * sum) mass += probs_[order_[kept++]];
  }
  const double u = CounterRng(cfg.seed, stream).uniform(index) * mass;
  double acc = 0;
  for (int64_t i = 0; i < kept; ++i) {
    acc += probs_[order_[i]];
    if (u < acc) return order_[i];
  }
  return order_[kept - 1];
}

}  // namespace rrt::inference
