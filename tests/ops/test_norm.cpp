// RMSNorm (plain and Gemma's unit offset) and LayerNorm (with and without bias): forward and
// stored statistics against a naive reference, gradients by finite differences in double.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "ops/norm.h"
#include "tests/ops/gradcheck.h"
#include "tests/ops/op_cases.h"

namespace rrt::ops {
namespace {

using testing::check_gradients;
using testing::expect_near_all;
using testing::random_vector;
using testing::weighted_sum;

namespace cases = testing::op_cases;
namespace tol = cases::norm_tol;
constexpr double kEps = 1e-5;

testing::GradCheckOptions fd_options() {
  testing::GradCheckOptions opts;
  opts.max_checked =
      static_cast<size_t>(::testing::TestWithParam<cases::NormCase>::GetParam().fd_samples);
  return opts;
}

// The shared table (tests/ops/op_cases.h): every case runs on every backend.
class RmsNorm : public ::testing::TestWithParam<cases::NormCase> {};
class LayerNorm : public ::testing::TestWithParam<cases::NormCase> {};
INSTANTIATE_TEST_SUITE_P(Table, RmsNorm, ::testing::ValuesIn(cases::norm_cases()),
                         cases::kCaseName);
INSTANTIATE_TEST_SUITE_P(Table, LayerNorm, ::testing::ValuesIn(cases::norm_cases()),
                         cases::kCaseName);

TEST_P(RmsNorm, ForwardMatchesNaive) {
  const cases::NormCase& s = GetParam();
  for (bool unit_offset : {false, true}) {
    SCOPED_TRACE("unit_offset=" + std::to_string(unit_offset));
    const auto x = random_vector(s.M * s.D, 1, 2.0), w = random_vector(s.D, 2);
    std::vector<double> expected(x.size()), expected_rstd(s.M);
    for (int64_t i = 0; i < s.M; ++i) {
      double ss = 0;
      for (int64_t j = 0; j < s.D; ++j) ss += x[i * s.D + j] * x[i * s.D + j];
      expected_rstd[i] = 1.0 / std::sqrt(ss / s.D + kEps);
      for (int64_t j = 0; j < s.D; ++j)
        expected[i * s.D + j] =
            x[i * s.D + j] * expected_rstd[i] * ((unit_offset ? 1.0 : 0.0) + w[j]);
    }
    std::vector<double> y(x.size()), rstd(s.M);
    rmsnorm_forward(x.data(), w.data(), y.data(), rstd.data(), s.M, s.D, kEps, unit_offset);
    expect_near_all("y", y, expected, tol::kCpuRmsF64.rel, tol::kCpuRmsF64.abs);
    expect_near_all("rstd", rstd, expected_rstd, tol::kCpuRstdF64.rel, tol::kCpuRstdF64.abs);

    const auto xf = testing::to_float(x), wf = testing::to_float(w);
    std::vector<float> yf(x.size()), rstdf(s.M);
    rmsnorm_forward(xf.data(), wf.data(), yf.data(), rstdf.data(), s.M, s.D, 1e-5f, unit_offset);
    expect_near_all("y (float)", yf, expected, tol::kCpuF32.rel, tol::kCpuF32.abs);
  }
}

TEST_P(RmsNorm, GradientsMatchFiniteDifferences) {
  const cases::NormCase& s = GetParam();
  for (bool unit_offset : {false, true}) {
    SCOPED_TRACE("unit_offset=" + std::to_string(unit_offset));
    auto x = random_vector(s.M * s.D, 3), w = random_vector(s.D, 4);
    const auto dy = random_vector(x.size(), 5);
    std::vector<double> y(x.size()), rstd(s.M);
    auto loss = [&] {
      rmsnorm_forward(x.data(), w.data(), y.data(), rstd.data(), s.M, s.D, kEps, unit_offset);
      return weighted_sum(y, dy);
    };
    auto backward = [&](std::vector<std::vector<double>>& g) {
      rmsnorm_forward(x.data(), w.data(), y.data(), rstd.data(), s.M, s.D, kEps, unit_offset);
      rmsnorm_backward(x.data(), w.data(), rstd.data(), dy.data(), g[0].data(), g[1].data(), s.M,
                       s.D, unit_offset);
    };
    check_gradients({{"x", &x}, {"w", &w}}, loss, backward, fd_options());
  }
}

TEST(RmsNormEdge, UnitOffsetWithZeroWeightIsPlainNormalisation) {
  const int64_t M = 3, D = 10;
  const auto x = random_vector(M * D, 6);
  const std::vector<double> zeros(D, 0.0), ones(D, 1.0);
  std::vector<double> y_offset(x.size()), y_plain(x.size()), rstd(M);
  rmsnorm_forward(x.data(), zeros.data(), y_offset.data(), rstd.data(), M, D, kEps, true);
  rmsnorm_forward(x.data(), ones.data(), y_plain.data(), rstd.data(), M, D, kEps, false);
  EXPECT_EQ(y_offset, y_plain);
  for (int64_t i = 0; i < M; ++i) {  // unit RMS per row (up to eps)
    double ss = 0;
    for (int64_t j = 0; j < D; ++j) ss += y_plain[i * D + j] * y_plain[i * D + j];
    EXPECT_NEAR(ss / D, 1.0, 1e-3);
  }
}

TEST_P(LayerNorm, ForwardMatchesNaive) {
  const cases::NormCase& s = GetParam();
  {
    // An offset mean checks the centring.
    auto x = random_vector(s.M * s.D, 7, 1.5);
    for (double& v : x) v += 3.0;
    const auto w = random_vector(s.D, 8), b = random_vector(s.D, 9);
    std::vector<double> expected(x.size()), expected_mean(s.M), expected_rstd(s.M);
    for (int64_t i = 0; i < s.M; ++i) {
      double mu = 0, var = 0;
      for (int64_t j = 0; j < s.D; ++j) mu += x[i * s.D + j] / s.D;
      for (int64_t j = 0; j < s.D; ++j) var += (x[i * s.D + j] - mu) * (x[i * s.D + j] - mu) / s.D;
      expected_mean[i] = mu;
      expected_rstd[i] = 1.0 / std::sqrt(var + kEps);
      for (int64_t j = 0; j < s.D; ++j)
        expected[i * s.D + j] = (x[i * s.D + j] - mu) * expected_rstd[i] * w[j] + b[j];
    }
    std::vector<double> y(x.size()), mean(s.M), rstd(s.M);
    layernorm_forward(x.data(), w.data(), b.data(), y.data(), mean.data(), rstd.data(), s.M, s.D,
                      kEps);
    expect_near_all("y", y, expected, tol::kCpuLayerF64.rel, tol::kCpuLayerF64.abs);
    expect_near_all("mean", mean, expected_mean, tol::kCpuMeanF64.rel, tol::kCpuMeanF64.abs);
    expect_near_all("rstd", rstd, expected_rstd, tol::kCpuLayerF64.rel, 0.0);

    std::vector<double> y_nobias(x.size());
    layernorm_forward(x.data(), w.data(), static_cast<const double*>(nullptr), y_nobias.data(),
                      mean.data(), rstd.data(), s.M, s.D, kEps);
    for (size_t k = 0; k < y.size(); ++k) expected[k] -= b[k % s.D];
    expect_near_all("y without bias", y_nobias, expected, tol::kCpuLayerF64.rel,
                    tol::kCpuLayerF64.abs);
  }
}

TEST_P(LayerNorm, GradientsMatchFiniteDifferences) {
  const cases::NormCase& s = GetParam();
  for (bool with_bias : {true, false}) {
    SCOPED_TRACE("bias=" + std::to_string(with_bias));
    auto x = random_vector(s.M * s.D, 10), w = random_vector(s.D, 11);
    auto b = random_vector(s.D, 12);
    const auto dy = random_vector(x.size(), 13);
    std::vector<double> y(x.size()), mean(s.M), rstd(s.M);
    const double* bias = with_bias ? b.data() : nullptr;
    auto loss = [&] {
      layernorm_forward(x.data(), w.data(), bias, y.data(), mean.data(), rstd.data(), s.M, s.D,
                        kEps);
      return weighted_sum(y, dy);
    };
    auto backward = [&](std::vector<std::vector<double>>& g) {
      layernorm_forward(x.data(), w.data(), bias, y.data(), mean.data(), rstd.data(), s.M, s.D,
                        kEps);
      layernorm_backward(x.data(), w.data(), mean.data(), rstd.data(), dy.data(), g[0].data(),
                         g[1].data(), with_bias ? g[2].data() : nullptr, s.M, s.D);
    };
    if (with_bias) {
      check_gradients({{"x", &x}, {"w", &w}, {"b", &b}}, loss, backward, fd_options());
    } else {
      check_gradients({{"x", &x}, {"w", &w}}, loss, backward, fd_options());
    }
  }
}

}  // namespace
}  // namespace rrt::ops
