// SwiGLU, GeGLU, GELU (exact erf and tanh approximation) and add: forward against the formulas
// and known values, gradients by finite differences in double.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "ops/activation.h"
#include "tests/ops/gradcheck.h"

namespace rrt::ops {
namespace {

using testing::check_gradients;
using testing::expect_near_all;
using testing::random_vector;
using testing::weighted_sum;

const int64_t kSizes[] = {1, 37, 1000};

// Inputs spread over [-6, 6] plus a few exact values where the curves bend.
std::vector<double> activation_inputs(int64_t n, uint64_t seed) {
  auto x = random_vector(n, seed, 2.5);
  const double fixed[] = {0.0, -6.0, 6.0, 1.0, -1.0};
  for (int64_t i = 0; i < n && i < 5; ++i) x[i] = fixed[i];
  return x;
}

double silu(double x) { return x / (1 + std::exp(-x)); }
double gelu_erf(double x) { return 0.5 * x * (1 + std::erf(x / std::sqrt(2.0))); }
double gelu_tanh(double x) {
  return 0.5 * x * (1 + std::tanh(std::sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x)));
}

TEST(Gelu, KnownValues) {
  const std::vector<double> x = {0.0, 1.0, -1.0, 3.0};
  std::vector<double> erf_out(4), tanh_out(4);
  gelu_forward(x.data(), erf_out.data(), 4, false);
  gelu_forward(x.data(), tanh_out.data(), 4, true);
  // x * Phi(x) and its tanh approximation, evaluated independently with Python math.erf/tanh.
  EXPECT_EQ(erf_out[0], 0.0);
  EXPECT_NEAR(erf_out[1], 0.8413447460685429, 1e-15);
  EXPECT_NEAR(erf_out[2], -0.15865525393145707, 1e-15);
  EXPECT_NEAR(tanh_out[1], 0.8411919906082768, 1e-15);
  EXPECT_NEAR(erf_out[3], 2.99595030590511, 1e-14);
  EXPECT_NEAR(tanh_out[3], 2.996362607918227, 1e-14);
}

TEST(Activations, ForwardMatchesFormulas) {
  for (int64_t n : kSizes) {
    SCOPED_TRACE("n=" + std::to_string(n));
    const auto gate = activation_inputs(n, 1), up = random_vector(n, 2);
    std::vector<double> out(n), expected(n);

    swiglu_forward(gate.data(), up.data(), out.data(), n);
    for (int64_t i = 0; i < n; ++i) expected[i] = silu(gate[i]) * up[i];
    expect_near_all("swiglu", out, expected, 1e-14, 1e-15);

    geglu_forward(gate.data(), up.data(), out.data(), n);
    for (int64_t i = 0; i < n; ++i) expected[i] = gelu_tanh(gate[i]) * up[i];
    expect_near_all("geglu", out, expected, 1e-14, 1e-15);

    gelu_forward(gate.data(), out.data(), n, false);
    for (int64_t i = 0; i < n; ++i) expected[i] = gelu_erf(gate[i]);
    expect_near_all("gelu erf", out, expected, 1e-14, 1e-15);

    gelu_forward(gate.data(), out.data(), n, true);
    for (int64_t i = 0; i < n; ++i) expected[i] = gelu_tanh(gate[i]);
    expect_near_all("gelu tanh", out, expected, 1e-14, 1e-15);

    add_forward(gate.data(), up.data(), out.data(), n);
    for (int64_t i = 0; i < n; ++i) expected[i] = gate[i] + up[i];
    EXPECT_EQ(out, expected);

    const auto gate_f = testing::to_float(gate), up_f = testing::to_float(up);
    std::vector<float> out_f(n);
    swiglu_forward(gate_f.data(), up_f.data(), out_f.data(), n);
    for (int64_t i = 0; i < n; ++i) expected[i] = silu(gate[i]) * up[i];
    expect_near_all("swiglu float", out_f, expected, 1e-5, 1e-6);
  }
}

// Gated activations: out = act(gate) * up, gradients for both inputs.
void check_gated(const char* name, void (*forward)(const double*, const double*, double*, int64_t),
                 void (*backward)(const double*, const double*, const double*, double*, double*,
                                  int64_t)) {
  for (int64_t n : kSizes) {
    SCOPED_TRACE(std::string(name) + " n=" + std::to_string(n));
    auto gate = activation_inputs(n, 3), up = random_vector(n, 4);
    const auto w = random_vector(n, 5);
    std::vector<double> out(n);
    check_gradients(
        {{"gate", &gate}, {"up", &up}},
        [&] {
          forward(gate.data(), up.data(), out.data(), n);
          return weighted_sum(out, w);
        },
        [&](std::vector<std::vector<double>>& g) {
          backward(gate.data(), up.data(), w.data(), g[0].data(), g[1].data(), n);
        });
  }
}

TEST(SwiGlu, GradientsMatchFiniteDifferences) {
  check_gated("swiglu", swiglu_forward<double>, swiglu_backward<double>);
}

TEST(GeGlu, GradientsMatchFiniteDifferences) {
  check_gated("geglu", geglu_forward<double>, geglu_backward<double>);
}

TEST(Gelu, GradientsMatchFiniteDifferencesErfAndTanh) {
  for (bool tanh_approx : {false, true})
    for (int64_t n : kSizes) {
      SCOPED_TRACE("tanh=" + std::to_string(tanh_approx) + " n=" + std::to_string(n));
      auto x = activation_inputs(n, 6);
      const auto w = random_vector(n, 7);
      std::vector<double> out(n);
      check_gradients(
          {{"x", &x}},
          [&] {
            gelu_forward(x.data(), out.data(), n, tanh_approx);
            return weighted_sum(out, w);
          },
          [&](std::vector<std::vector<double>>& g) {
            gelu_backward(x.data(), w.data(), g[0].data(), n, tanh_approx);
          });
    }
}

TEST(Gelu, ErfAndTanhDifferButStayClose) {
  const auto x = activation_inputs(1000, 8);
  std::vector<double> a(x.size()), b(x.size());
  gelu_forward(x.data(), a.data(), 1000, false);
  gelu_forward(x.data(), b.data(), 1000, true);
  double max_diff = 0;
  for (size_t i = 0; i < x.size(); ++i) max_diff = std::max(max_diff, std::abs(a[i] - b[i]));
  EXPECT_GT(max_diff, 1e-5);  // the flag is honoured
  EXPECT_LT(max_diff, 1e-3);  // and the approximation is good
}

TEST(Add, GradientsMatchFiniteDifferencesAndNullIsSkipped) {
  for (int64_t n : kSizes) {
    SCOPED_TRACE("n=" + std::to_string(n));
    auto a = random_vector(n, 9), b = random_vector(n, 10);
    const auto w = random_vector(n, 11);
    std::vector<double> out(n);
    check_gradients(
        {{"a", &a}, {"b", &b}},
        [&] {
          add_forward(a.data(), b.data(), out.data(), n);
          return weighted_sum(out, w);
        },
        [&](std::vector<std::vector<double>>& g) {
          add_backward(w.data(), g[0].data(), g[1].data(), n);
        });
    std::vector<double> da(n, 1.0);
    add_backward(w.data(), da.data(), static_cast<double*>(nullptr), n);
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(da[i], 1.0 + w[i]);
  }
}

}  // namespace
}  // namespace rrt::ops
