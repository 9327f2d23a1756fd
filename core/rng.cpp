#include "core/rng.h"

#include <cmath>

namespace rrt {

std::array<uint32_t, 4> philox4x32(std::array<uint32_t, 4> c, std::array<uint32_t, 2> k) {
  // Constants from Salmon et al., "Parallel random numbers: as easy as 1, 2, 3" (SC'11).
  constexpr uint32_t kM0 = 0xD2511F53u, kM1 = 0xCD9E8D57u;
  constexpr uint32_t kW0 = 0x9E3779B9u, kW1 = 0xBB67AE85u;
  for (int round = 0; round < 10; ++round) {
    uint64_t p0 = static_cast<uint64_t>(kM0) * c[0];
    uint64_t p1 = static_cast<uint64_t>(kM1) * c[2];
    c = {static_cast<uint32_t>(p1 >> 32) ^ c[1] ^ k[0], static_cast<uint32_t>(p1),
         static_cast<uint32_t>(p0 >> 32) ^ c[3] ^ k[1], static_cast<uint32_t>(p0)};
    k[0] += kW0;
    k[1] += kW1;
  }
  return c;
}

std::array<uint32_t, 4> CounterRng::block(uint64_t index) const {
  return philox4x32({static_cast<uint32_t>(index), static_cast<uint32_t>(index >> 32),
                     static_cast<uint32_t>(stream_), static_cast<uint32_t>(stream_ >> 32)},
                    {static_cast<uint32_t>(seed_), static_cast<uint32_t>(seed_ >> 32)});
}

namespace {
// 53 random bits -> (0, 1): add half an ulp so that 0 is impossible.
double to_unit(uint32_t hi, uint32_t lo) {
  uint64_t bits = (static_cast<uint64_t>(hi) << 21) ^ (lo >> 11);
  bits &= (1ull << 53) - 1;
  return (static_cast<double>(bits) + 0.5) / 9007199254740992.0;
}
}  // namespace

double CounterRng::uniform(uint64_t index) const {
  auto b = block(index);
  return to_unit(b[0], b[1]);
}

double CounterRng::normal(uint64_t index) const {
  auto b = block(index);
  double u1 = to_unit(b[0], b[1]), u2 = to_unit(b[2], b[3]);
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
}

uint32_t CounterRng::below(uint64_t index, uint32_t bound) const {
  return static_cast<uint32_t>(uniform(index) * bound) % bound;
}

template <typename T>
void fill_normal(T* x, int64_t n, double mean, double std, uint64_t seed, uint64_t stream) {
  CounterRng rng(seed, stream);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) x[i] = static_cast<T>(mean + std * rng.normal(i));
}

template <typename T>
void fill_uniform(T* x, int64_t n, double lo, double hi, uint64_t seed, uint64_t stream) {
  CounterRng rng(seed, stream);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) x[i] = static_cast<T>(lo + (hi - lo) * rng.uniform(i));
}

template void fill_normal<float>(float*, int64_t, double, double, uint64_t, uint64_t);
template void fill_normal<double>(double*, int64_t, double, double, uint64_t, uint64_t);
template void fill_uniform<float>(float*, int64_t, double, double, uint64_t, uint64_t);
template void fill_uniform<double>(double*, int64_t, double, double, uint64_t, uint64_t);

}  // namespace rrt
