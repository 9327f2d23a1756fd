// Rotary embedding (full and partial rotary): forward against the HF rotate_half formula,
// backward by finite differences, and backward(forward(x)) == x since the rotation is orthogonal.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "core/error.h"
#include "ops/rope.h"
#include "tests/ops/gradcheck.h"
#include "tests/ops/op_cases.h"

namespace rrt::ops {
namespace {

using testing::expect_near_all;
using testing::random_vector;
using testing::weighted_sum;

namespace cases = testing::op_cases;
namespace tol = cases::rope_tol;
using cases::RopeCase;

// The shared table (tests/ops/op_cases.h): every case runs on every backend.
class Rope : public ::testing::TestWithParam<RopeCase> {};
INSTANTIATE_TEST_SUITE_P(Table, Rope, ::testing::ValuesIn(cases::rope_cases()), cases::kCaseName);

// rotate_half RoPE computed from the definition (angles recomputed here, not from the table).
std::vector<double> naive_rope(const std::vector<double>& x, const RopeCase& c, double theta) {
  std::vector<double> y = x;
  const int64_t half = c.rot_dim / 2;
  for (int64_t n = 0; n < c.N; ++n)
    for (int64_t t = 0; t < c.T; ++t)
      for (int64_t h = 0; h < c.H; ++h) {
        const int64_t base = ((n * c.T + t) * c.H + h) * c.Dh;
        for (int64_t i = 0; i < half; ++i) {
          const double angle = t / std::pow(theta, 2.0 * i / c.rot_dim);
          const double a = x[base + i], b = x[base + i + half];
          y[base + i] = a * std::cos(angle) - b * std::sin(angle);
          y[base + i + half] = b * std::cos(angle) + a * std::sin(angle);
        }
      }
  return y;
}

TEST_P(Rope, ForwardMatchesRotateHalfFormula) {
  const RopeCase& c = GetParam();
  for (double theta : {10000.0, 500.0}) {
    SCOPED_TRACE("theta=" + std::to_string(theta));
    const RopeTable table(c.T + 3, c.rot_dim, theta);
    const auto x = random_vector(c.N * c.T * c.H * c.Dh, 1);
    std::vector<double> y = x;
    rope_forward(y.data(), table, c.N, c.T, c.H, c.Dh);
    expect_near_all("rope(x)", y, naive_rope(x, c, theta), tol::kCpuF64.rel, tol::kCpuF64.abs);

    std::vector<float> yf = testing::to_float(x);
    rope_forward(yf.data(), table, c.N, c.T, c.H, c.Dh);
    expect_near_all("rope(x) float", yf, y, tol::kCpuF32.rel, tol::kCpuF32.abs);
  }
}

TEST(RopeEdge, PartialRotaryLeavesTailUntouched) {
  const RopeCase c{"partial", 2, 7, 3, 16, 4};
  const RopeTable table(c.T, c.rot_dim, 10000.0);
  const auto x = random_vector(c.N * c.T * c.H * c.Dh, 2);
  std::vector<double> y = x;
  rope_forward(y.data(), table, c.N, c.T, c.H, c.Dh);
  int rotated_changed = 0;
  for (size_t k = 0; k < x.size(); ++k) {
    const int64_t d = static_cast<int64_t>(k) % c.Dh;
    if (d >= c.rot_dim) {
      ASSERT_EQ(y[k], x[k]) << "element " << k << " (dim " << d << ") beyond rot_dim changed";
    } else if (y[k] != x[k]) {
      ++rotated_changed;
    }
  }
  EXPECT_GT(rotated_changed, 0);
}

TEST_P(Rope, BackwardOfForwardIsIdentityAndNormIsKept) {
  const RopeCase& c = GetParam();
  {
    const RopeTable table(c.T, c.rot_dim, 10000.0);
    const auto x = random_vector(c.N * c.T * c.H * c.Dh, 3);
    std::vector<double> y = x;
    rope_forward(y.data(), table, c.N, c.T, c.H, c.Dh);
    EXPECT_NEAR(weighted_sum(y, y), weighted_sum(x, x), 1e-10 * weighted_sum(x, x));
    rope_backward(y.data(), table, c.N, c.T, c.H, c.Dh);
    expect_near_all("backward(forward(x))", y, x, tol::kCpuInverseF64.rel, tol::kCpuInverseF64.abs);

    std::vector<float> yf = testing::to_float(x);
    rope_forward(yf.data(), table, c.N, c.T, c.H, c.Dh);
    rope_backward(yf.data(), table, c.N, c.T, c.H, c.Dh);
    expect_near_all("backward(forward(x)) float", yf, x, tol::kCpuF32.rel, tol::kCpuF32.abs);
  }
}

TEST(RopeEdge, KnownRotationAtPositionOne) {
  // Dh = rot_dim = 2: position 1 rotates the pair (a, b) by exactly 1 radian.
  const RopeTable table(2, 2, 10000.0);
  std::vector<double> x = {0.5, -2.0, 1.0, 0.0};  // positions 0 and 1
  rope_forward(x.data(), table, 1, 2, 1, 2);
  EXPECT_DOUBLE_EQ(x[0], 0.5);
  EXPECT_DOUBLE_EQ(x[1], -2.0);
  EXPECT_NEAR(x[2], std::cos(1.0), 1e-15);
  EXPECT_NEAR(x[3], std::sin(1.0), 1e-15);
}

TEST_P(Rope, GradientMatchesFiniteDifferences) {
  const RopeCase& c = GetParam();
  {
    const RopeTable table(c.T, c.rot_dim, 10000.0);
    auto x = random_vector(c.N * c.T * c.H * c.Dh, 4);
    const auto w = random_vector(x.size(), 5);
    std::vector<double> y;
    auto loss = [&] {
      y = x;
      rope_forward(y.data(), table, c.N, c.T, c.H, c.Dh);
      return weighted_sum(y, w);
    };
    // rope_backward rotates the incoming gradient in place: it overwrites rather than adds.
    auto backward = [&](std::vector<std::vector<double>>& g) {
      std::vector<double> dx = w;
      rope_backward(dx.data(), table, c.N, c.T, c.H, c.Dh);
      for (size_t k = 0; k < dx.size(); ++k) g[0][k] += dx[k];
    };
    testing::GradCheckOptions opts;
    opts.check_accumulates = false;
    testing::check_gradients({{"x", &x}}, loss, backward, opts);
  }
}

TEST(RopeEdge, RejectsBadTablesAndShapes) {
  EXPECT_THROW(RopeTable(8, 3, 10000.0), rrt::Error);  // odd rotary dim
  EXPECT_THROW(RopeTable(8, 0, 10000.0), rrt::Error);
  const RopeTable table(4, 8, 10000.0);
  std::vector<double> x(1 * 5 * 1 * 8, 1.0);
  EXPECT_THROW(rope_forward(x.data(), table, 1, 5, 1, 8), rrt::Error);  // T beyond the table
  EXPECT_THROW(rope_forward(x.data(), table, 1, 4, 1, 4), rrt::Error);  // rot_dim > Dh
}

}  // namespace
}  // namespace rrt::ops
