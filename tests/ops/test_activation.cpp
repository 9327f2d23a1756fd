// SwiGLU, GeGLU, GELU (exact erf and tanh approximation) and add: forward against the formulas
// and known values, gradients by finite differences in double.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "ops/activation.h"
#include "tests/ops/gradcheck.h"
#include "tests/ops/op_cases.h"

namespace rrt::ops {
namespace {

using testing::check_gradients;
using testing::expect_near_all;
using testing::random_vector;
using testing::weighted_sum;

namespace cases = testing::op_cases;
namespace tol = cases::activation_tol;
using cases::ElementCase;

// The shared table (tests/ops/op_cases.h): every case runs on every backend. A case's offset
// shifts every pointer by that many elements (buffers of n + offset): the forward checks run on
// the shifted pointers; the gradient checks, which perturb whole buffers, on n aligned elements.
class Activations : public ::testing::TestWithParam<ElementCase> {};
INSTANTIATE_TEST_SUITE_P(Table, Activations, ::testing::ValuesIn(cases::element_cases()),
                         cases::kCaseName);

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

// v with `offset` elements in front (zeros): the op reads and writes from data() + offset.
template <typename S>
std::vector<S> shifted(const std::vector<S>& v, int64_t offset) {
  std::vector<S> out(static_cast<size_t>(offset), S(0));
  out.insert(out.end(), v.begin(), v.end());
  return out;
}
template <typename S>
std::vector<S> unshifted(const std::vector<S>& v, int64_t offset) {
  return std::vector<S>(v.begin() + offset, v.end());
}

TEST_P(Activations, ForwardMatchesFormulas) {
  const int64_t n = GetParam().n, off = GetParam().offset;
  {
    const auto gate = activation_inputs(n, 1), up = random_vector(n, 2);
    const auto gate_s = shifted(gate, off), up_s = shifted(up, off);
    const double* g = gate_s.data() + off;
    const double* u = up_s.data() + off;
    std::vector<double> out_s(n + off), expected(n);
    double* o = out_s.data() + off;
    auto out = [&] { return unshifted(out_s, off); };

    swiglu_forward(g, u, o, n);
    for (int64_t i = 0; i < n; ++i) expected[i] = silu(gate[i]) * up[i];
    expect_near_all("swiglu", out(), expected, tol::kCpuF64.rel, tol::kCpuF64.abs);

    geglu_forward(g, u, o, n);
    for (int64_t i = 0; i < n; ++i) expected[i] = gelu_tanh(gate[i]) * up[i];
    expect_near_all("geglu", out(), expected, tol::kCpuF64.rel, tol::kCpuF64.abs);

    gelu_forward(g, o, n, false);
    for (int64_t i = 0; i < n; ++i) expected[i] = gelu_erf(gate[i]);
    expect_near_all("gelu erf", out(), expected, tol::kCpuF64.rel, tol::kCpuF64.abs);

    gelu_forward(g, o, n, true);
    for (int64_t i = 0; i < n; ++i) expected[i] = gelu_tanh(gate[i]);
    expect_near_all("gelu tanh", out(), expected, tol::kCpuF64.rel, tol::kCpuF64.abs);

    add_forward(g, u, o, n);
    for (int64_t i = 0; i < n; ++i) expected[i] = gate[i] + up[i];
    EXPECT_EQ(out(), expected);

    const auto gate_f = shifted(testing::to_float(gate), off);
    const auto up_f = shifted(testing::to_float(up), off);
    std::vector<float> out_f(n + off);
    swiglu_forward(gate_f.data() + off, up_f.data() + off, out_f.data() + off, n);
    for (int64_t i = 0; i < n; ++i) expected[i] = silu(gate[i]) * up[i];
    expect_near_all("swiglu float", unshifted(out_f, off), expected, tol::kCpuF32.rel,
                    tol::kCpuF32.abs);
  }
}

// Gated activations: out = act(gate) * up, gradients for both inputs.
void check_gated(int64_t n, const char* name,
                 void (*forward)(const double*, const double*, double*, int64_t),
                 void (*backward)(const double*, const double*, const double*, double*, double*,
                                  int64_t)) {
  {
    SCOPED_TRACE(name);
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

TEST_P(Activations, SwiGluGradientsMatchFiniteDifferences) {
  check_gated(GetParam().n, "swiglu", swiglu_forward<double>, swiglu_backward<double>);
}

TEST_P(Activations, GeGluGradientsMatchFiniteDifferences) {
  check_gated(GetParam().n, "geglu", geglu_forward<double>, geglu_backward<double>);
}

TEST_P(Activations, GeluGradientsMatchFiniteDifferencesErfAndTanh) {
  const int64_t n = GetParam().n;
  for (bool tanh_approx : {false, true}) {
    SCOPED_TRACE("tanh=" + std::to_string(tanh_approx));
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

TEST_P(Activations, AddGradientsMatchFiniteDifferencesAndNullIsSkipped) {
  const int64_t n = GetParam().n;
  {
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
