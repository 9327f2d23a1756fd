// Counter-based RNG (Philox-4x32-10): the value for element i depends only on (seed, stream, i),
// so fills give identical results whatever the thread count or the order of evaluation.
#pragma once

#include <array>
#include <cstdint>

namespace rrt {

std::array<uint32_t, 4> philox4x32(std::array<uint32_t, 4> counter, std::array<uint32_t, 2> key);

class CounterRng {
 public:
  CounterRng(uint64_t seed, uint64_t stream) : seed_(seed), stream_(stream) {}
  // Uniform in (0, 1), never exactly 0 or 1.
  double uniform(uint64_t index) const;
  // Standard normal (Box-Muller on one Philox block).
  double normal(uint64_t index) const;
  // Uniform integer in [0, bound).
  uint32_t below(uint64_t index, uint32_t bound) const;

 private:
  std::array<uint32_t, 4> block(uint64_t index) const;
  uint64_t seed_, stream_;
};

// x[i] = mean + std * N(0,1) drawn from (seed, stream, i); parallel over i.
template <typename T>
void fill_normal(T* x, int64_t n, double mean, double std, uint64_t seed, uint64_t stream);
template <typename T>
void fill_uniform(T* x, int64_t n, double lo, double hi, uint64_t seed, uint64_t stream);

}  // namespace rrt
