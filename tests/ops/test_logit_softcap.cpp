// The final logit soft-cap (ops/logit_softcap.h): the host op against cap tanh(z / cap), its
// slope against finite differences in double, cap 0 as no change, and the backends' in-place op
// (CPU fp32, the CPU bf16 backend's 16-lane form) against the scalar formula.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "ops/cpu/backend.h"
#include "ops/cpu_bf16/backend.h"
#include "ops/logit_softcap.h"
#include "tests/ops/cpu_bf16/bf16_test.h"

namespace rrt::ops {
namespace {

// Values from -40 to 40: inside the cap's linear range, around it, and far into saturation.
std::vector<double> spread(int64_t n) {
  std::vector<double> z(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) z[i] = -40.0 + 80.0 * static_cast<double>(i) / (n - 1) + 1e-3 * i;
  return z;
}

TEST(LogitSoftcap, CapsToCapTimesTanh) {
  const double cap = 5.0;
  const auto z0 = spread(101);
  auto z = z0;
  softcap_logits(z.data(), static_cast<int64_t>(z.size()), cap);
  for (size_t i = 0; i < z.size(); ++i) {
    EXPECT_DOUBLE_EQ(z[i], cap * std::tanh(z0[i] / cap)) << i;
    EXPECT_LT(std::abs(z[i]), cap) << i;
  }
  // Order is kept (argmax and sampling see the same ranking) and small logits barely move.
  for (size_t i = 1; i < z.size(); ++i) EXPECT_LT(z[i - 1], z[i]);
  double small = 0.01;
  softcap_logits(&small, 1, cap);
  EXPECT_NEAR(small, 0.01, 1e-7);
}

TEST(LogitSoftcap, ZeroCapLeavesLogitsAlone) {
  auto z = spread(33);
  const auto z0 = z;
  softcap_logits(z.data(), static_cast<int64_t>(z.size()), 0.0);
  EXPECT_EQ(z, z0);
  std::vector<float> f(z.begin(), z.end()), f0 = f;
  softcap_logits(f.data(), static_cast<int64_t>(f.size()), 0.0);
  EXPECT_EQ(f, f0);
}

// dc/dz = 1 - (c / cap)^2, read off the capped value c, against central differences of c(z).
TEST(LogitSoftcap, SlopeMatchesFiniteDifferences) {
  for (double cap : {0.5, 5.0, 30.0}) {
    for (double z : spread(41)) {
      const double h = 1e-6 * std::max(1.0, std::abs(z));
      const double fd = (softcap_value(z + h, cap) - softcap_value(z - h, cap)) / (2 * h);
      EXPECT_NEAR(softcap_slope(softcap_value(z, cap), cap), fd, 1e-8)
          << "cap " << cap << " z " << z;
    }
  }
}

// Every backend's in-place op: the fp32 CPU one is the scalar formula itself; the bf16 one
// computes tanh through its 16-lane sigmoid, within ~cap 1e-7 of it (odd n: a partial block).
TEST(LogitSoftcap, BackendsCapInPlace) {
  const auto zd = spread(1003);
  const std::vector<float> z0(zd.begin(), zd.end());
  const float cap = 3.f;
  auto cpu = z0;
  CpuBackend(1).softcap_logits(cpu.data(), static_cast<int64_t>(cpu.size()), cap);
  for (size_t i = 0; i < cpu.size(); ++i) EXPECT_EQ(cpu[i], softcap_value(z0[i], cap)) << i;
  RRT_REQUIRE_CPU_BF16_BACKEND();
  auto lanes = z0;
  CpuBf16Backend(2).softcap_logits(lanes.data(), static_cast<int64_t>(lanes.size()), cap);
  for (size_t i = 0; i < lanes.size(); ++i)
    EXPECT_NEAR(lanes[i], softcap_value(z0[i], cap), 1e-6f * cap) << i;
  auto unchanged = z0;
  CpuBf16Backend(1).softcap_logits(unchanged.data(), static_cast<int64_t>(unchanged.size()), 0.0);
  EXPECT_EQ(unchanged, z0);
}

}  // namespace
}  // namespace rrt::ops
