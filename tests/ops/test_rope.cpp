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

// Per-token positions (document-aware batches restart them): token t rotates exactly as the
// plain op rotates position pos[t], backward inverts forward, and pos = t is the plain op.
TEST(RopeEdge, PerTokenPositionsRotateEachTokenByItsOwn) {
  const int64_t N = 2, T = 7, H = 3, Dh = 8;
  const RopeTable table(16, 6, 10000.0);
  const std::vector<int32_t> pos = {0, 1, 2, 0, 1, 0, 1, 3, 4, 5, 6, 9, 10, 11};
  const auto x = random_vector(N * T * H * Dh, 21);
  auto got = x;
  rope_forward<double>(got.data(), table, N, T, H, Dh, pos.data());
  for (int64_t i = 0; i < N * T; ++i) {
    // Token i alone in a sequence of pos[i] + 1 tokens, at its last position.
    const int64_t len = pos[i] + 1;
    std::vector<double> seq(static_cast<size_t>(len * H * Dh), 0.0);
    std::copy_n(x.begin() + i * H * Dh, H * Dh, seq.begin() + pos[i] * H * Dh);
    rope_forward<double>(seq.data(), table, 1, len, H, Dh);
    const std::vector<double> want(seq.begin() + pos[i] * H * Dh, seq.end());
    const std::vector<double> row(got.begin() + i * H * Dh, got.begin() + (i + 1) * H * Dh);
    expect_near_all("token " + std::to_string(i), row, want, 0, 0);
  }
  rope_backward<double>(got.data(), table, N, T, H, Dh, pos.data());
  expect_near_all("backward of forward", got, x, 1e-14, 1e-14);
  std::vector<int32_t> identity(N * T);
  for (int64_t i = 0; i < N * T; ++i) identity[i] = static_cast<int32_t>(i % T);
  auto plain = x, with_pos = x;
  rope_forward<double>(plain.data(), table, N, T, H, Dh);
  rope_forward<double>(with_pos.data(), table, N, T, H, Dh, identity.data());
  EXPECT_EQ(with_pos, plain);
  const std::vector<int32_t> outside = {0, 1, 2, 3, 4, 5, 16, 0, 1, 2, 3, 4, 5, 6};
  EXPECT_THROW(rope_forward<double>(with_pos.data(), table, N, T, H, Dh, outside.data()), Error);
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

// Llama 3.2 1B's llama3 scaling (head_dim 64, theta 500000, factor 32, low 1, high 4, original
// 8192): the inverse frequencies transformers 5.24's _compute_llama3_parameters returns (fp32),
// which span all three bands (kept, blended at 15-17, divided from 18 on).
TEST(RopeScaling, Llama3MatchesTransformers) {
  const std::vector<double> want = {
      1.000000000e+00, 6.636012793e-01, 4.403666258e-01, 2.922278345e-01, 1.939227581e-01,
      1.286873817e-01, 8.539710194e-02, 5.666961893e-02, 3.760603070e-02, 2.495540865e-02,
      1.656044088e-02, 1.098952908e-02, 7.292665076e-03, 4.839421250e-03, 3.211446106e-03,
      1.290548011e-03, 4.295567051e-04, 9.708286234e-05, 1.946163866e-05, 1.291476747e-05,
      8.570255886e-06, 5.687232260e-06, 3.774054449e-06, 2.504467147e-06, 1.661967417e-06,
      1.102883630e-06, 7.318749340e-07, 4.856731266e-07, 3.222932889e-07, 2.138742303e-07,
      1.419272024e-07, 9.418306490e-08};
  const RopeScaling sc{.type = RopeScalingType::llama3,
                       .factor = 32.0,
                       .low_freq_factor = 1.0,
                       .high_freq_factor = 4.0,
                       .original_max_positions = 8192};
  const auto got = rope_inv_freq(64, 500000.0, sc);
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i)
    EXPECT_NEAR(got[i] / want[i], 1.0, 1e-6) << "inv_freq " << i;
  const auto plain = rope_inv_freq(64, 500000.0, {});
  EXPECT_EQ(got[0], plain[0]);                                   // high frequency: kept
  EXPECT_NEAR(got[31] * 32.0 / plain[31], 1.0, 1e-12);           // low frequency: / factor
  EXPECT_TRUE(got[16] < plain[16] && got[16] > plain[16] / 32);  // blended
}

TEST(RopeScaling, LinearDividesAndDynamicKeepsFrequencies) {
  const auto plain = rope_inv_freq(16, 10000.0, {});
  const auto linear = rope_inv_freq(16, 10000.0, {.type = RopeScalingType::linear, .factor = 2.5});
  const auto dynamic = rope_inv_freq(
      16, 10000.0, {.type = RopeScalingType::dynamic, .factor = 2, .original_max_positions = 64});
  for (size_t i = 0; i < plain.size(); ++i) {
    EXPECT_DOUBLE_EQ(linear[i], plain[i] / 2.5);
    EXPECT_DOUBLE_EQ(dynamic[i], plain[i]);
  }
  // Past the original context dynamic NTK depends on the sequence length: no table holds it.
  EXPECT_THROW(
      RopeTable(65, 16, 10000.0,
                {.type = RopeScalingType::dynamic, .factor = 2, .original_max_positions = 64}),
      rrt::Error);
}

// The scaled tables rotate by their own frequencies, and backward is still the exact transpose
// (finite differences in double).
TEST_P(Rope, ScaledTablesRotateAndDifferentiate) {
  const RopeCase& c = GetParam();
  const RopeScaling llama3{.type = RopeScalingType::llama3,
                           .factor = 4.0,
                           .low_freq_factor = 1.0,
                           .high_freq_factor = 4.0,
                           .original_max_positions = 16};
  for (const RopeScaling& sc :
       {llama3, RopeScaling{.type = RopeScalingType::linear, .factor = 3}}) {
    const RopeTable table(c.T, c.rot_dim, 500.0, sc);
    const auto inv = rope_inv_freq(c.rot_dim, 500.0, sc);
    const int64_t half = c.rot_dim / 2;
    for (int64_t t = 0; t < c.T; ++t)
      for (int64_t i = 0; i < half; ++i)
        EXPECT_NEAR(table.cos[t * half + i], std::cos(t * inv[i]), 1e-15);
    auto x = random_vector(c.N * c.T * c.H * c.Dh, 14);
    const auto w = random_vector(x.size(), 15);
    std::vector<double> y;
    auto loss = [&] {
      y = x;
      rope_forward(y.data(), table, c.N, c.T, c.H, c.Dh);
      return weighted_sum(y, w);
    };
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
