// Helpers for the CPU bf16 backend's tests (ops/cpu_bf16/backend.h): skip where the CPU lacks
// AVX512_BF16, bf16-representable random inputs, conversions, and the relative L2 error of the
// CUDA tests (tests/gpu/gpu_test.h), so the two bf16 backends are checked the same way.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "core/dtype.h"
#include "ops/cpu_bf16/gemm.h"

// The backend runs where its GEMMs do (a build with oneDNN on a CPU with AMX-BF16 or
// AVX512_BF16, ops/cpu_bf16/gemm.h); elsewhere its tests skip with the reason.
#define RRT_REQUIRE_CPU_BF16_BACKEND()                                 \
  do {                                                                 \
    if (!::rrt::ops::cpu_bf16::gemm_available())                       \
      GTEST_SKIP() << "the CPU bf16 backend cannot run here: "         \
                   << ::rrt::ops::cpu_bf16::gemm_unavailable_reason(); \
  } while (0)

namespace rrt::testing {

inline std::vector<bf16> to_bf16(const std::vector<float>& x) {
  std::vector<bf16> y(x.size());
  for (size_t i = 0; i < x.size(); ++i) y[i] = bf16::from_float(x[i]);
  return y;
}
inline std::vector<float> to_f32(const std::vector<bf16>& x) {
  std::vector<float> y(x.size());
  for (size_t i = 0; i < x.size(); ++i) y[i] = x[i].to_float();
  return y;
}
inline std::vector<float> round_bf16(const std::vector<float>& x) { return to_f32(to_bf16(x)); }

// n values, |v| in [lo, hi] with a random sign (never zero), rounded to bf16: what the backend
// reads is exactly what the fp32 reference sees.
inline std::vector<float> random_values(size_t n, uint32_t seed, float lo = 0.1f, float hi = 2.f) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> mag(lo, hi);
  std::bernoulli_distribution negative(0.5);
  std::vector<float> v(n);
  for (auto& x : v) x = negative(gen) ? -mag(gen) : mag(gen);
  return round_bf16(v);
}
// Uniform(-scale, scale), rounded to bf16.
inline std::vector<float> random_uniform(size_t n, uint32_t seed, float scale = 1.f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-scale, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return round_bf16(v);
}

// ||a - b|| / ||b||, NaN-aware (a NaN anywhere gives infinity).
inline double relative_l2(const std::vector<float>& a, const std::vector<float>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::isnan(a[i]) || std::isnan(b[i])) return INFINITY;
    num += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
    den += double(b[i]) * b[i];
  }
  return std::sqrt(num / (den > 0 ? den : 1.0));
}
// The update a backward added: after - before.
inline std::vector<float> minus(const std::vector<float>& a, const std::vector<float>& b) {
  std::vector<float> d(a.size());
  for (size_t i = 0; i < a.size(); ++i) d[i] = a[i] - b[i];
  return d;
}
// NaN bf16 (0xFFFF): an element the backend does not write fails the comparison.
inline std::vector<bf16> poisoned(size_t n) {
  bf16 nan;
  nan.bits = 0xFFFF;
  return std::vector<bf16>(n, nan);
}

}  // namespace rrt::testing
