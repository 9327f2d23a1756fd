// matmul (all four transpose combinations, accumulate) and linear (with and without bias):
// forward against a naive triple loop, backward by finite differences in double.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "ops/matmul.h"
#include "tests/ops/gradcheck.h"

namespace rrt::ops {
namespace {

using testing::check_gradients;
using testing::expect_near_all;
using testing::random_vector;
using testing::weighted_sum;

struct MatmulCase {
  int64_t M, N, K;
  bool trans_a, trans_b;
};

std::string describe(const MatmulCase& c) {
  return "M=" + std::to_string(c.M) + " N=" + std::to_string(c.N) + " K=" + std::to_string(c.K) +
         " trans_a=" + std::to_string(c.trans_a) + " trans_b=" + std::to_string(c.trans_b);
}

// C[m, n] = sum_k op(A)[m, k] op(B)[k, n], straight from the definition.
std::vector<double> naive_matmul(const std::vector<double>& A, const std::vector<double>& B,
                                 const MatmulCase& c) {
  std::vector<double> C(c.M * c.N, 0.0);
  for (int64_t m = 0; m < c.M; ++m)
    for (int64_t n = 0; n < c.N; ++n)
      for (int64_t k = 0; k < c.K; ++k) {
        const double a = c.trans_a ? A[k * c.M + m] : A[m * c.K + k];
        const double b = c.trans_b ? B[n * c.K + k] : B[k * c.N + n];
        C[m * c.N + n] += a * b;
      }
  return C;
}

std::vector<MatmulCase> all_cases() {
  std::vector<MatmulCase> cases;
  const int64_t shapes[][3] = {{1, 1, 1}, {3, 5, 7}, {17, 4, 9}, {1, 13, 2}, {8, 1, 33}};
  for (const auto& s : shapes)
    for (bool ta : {false, true})
      for (bool tb : {false, true}) cases.push_back({s[0], s[1], s[2], ta, tb});
  return cases;
}

TEST(Matmul, ForwardMatchesNaiveAllTransposes) {
  for (const MatmulCase& c : all_cases()) {
    SCOPED_TRACE(describe(c));
    const auto A = random_vector(c.M * c.K, 1), B = random_vector(c.K * c.N, 2);
    const auto expected = naive_matmul(A, B, c);
    std::vector<double> C(c.M * c.N, 99.0);  // overwritten when not accumulating
    matmul_forward(A.data(), B.data(), C.data(), c.M, c.N, c.K, c.trans_a, c.trans_b, false);
    expect_near_all("C (double)", C, expected, 1e-13, 1e-13);

    std::vector<float> Cf(c.M * c.N, 99.0f);
    const auto Af = testing::to_float(A), Bf = testing::to_float(B);
    matmul_forward(Af.data(), Bf.data(), Cf.data(), c.M, c.N, c.K, c.trans_a, c.trans_b, false);
    expect_near_all("C (float)", Cf, expected, 1e-5, 1e-5);
  }
}

TEST(Matmul, AccumulateAddsOntoExistingOutput) {
  for (const MatmulCase& c : all_cases()) {
    SCOPED_TRACE(describe(c));
    const auto A = random_vector(c.M * c.K, 3), B = random_vector(c.K * c.N, 4);
    const auto C0 = random_vector(c.M * c.N, 5);
    auto expected = naive_matmul(A, B, c);
    for (size_t i = 0; i < expected.size(); ++i) expected[i] += C0[i];
    std::vector<double> C = C0;
    matmul_forward(A.data(), B.data(), C.data(), c.M, c.N, c.K, c.trans_a, c.trans_b, true);
    expect_near_all("C", C, expected, 1e-13, 1e-13);
  }
}

TEST(Matmul, GradientsMatchFiniteDifferencesAllTransposes) {
  for (const MatmulCase& c : all_cases()) {
    SCOPED_TRACE(describe(c));
    auto A = random_vector(c.M * c.K, 6), B = random_vector(c.K * c.N, 7);
    const auto w = random_vector(c.M * c.N, 8);
    std::vector<double> C(c.M * c.N);
    auto loss = [&] {
      matmul_forward(A.data(), B.data(), C.data(), c.M, c.N, c.K, c.trans_a, c.trans_b, false);
      return weighted_sum(C, w);
    };
    // dL/dC = w.
    auto backward = [&](std::vector<std::vector<double>>& g) {
      matmul_backward(A.data(), B.data(), w.data(), g[0].data(), g[1].data(), c.M, c.N, c.K,
                      c.trans_a, c.trans_b);
    };
    check_gradients({{"A", &A}, {"B", &B}}, loss, backward);
  }
}

TEST(Matmul, NullGradientIsSkipped) {
  const MatmulCase c{4, 3, 5, true, false};
  const auto A = random_vector(c.M * c.K, 9), B = random_vector(c.K * c.N, 10);
  const auto dC = random_vector(c.M * c.N, 11);
  std::vector<double> dA(A.size(), 0.0), dB(B.size(), 0.0), dA_only(A.size(), 0.0);
  std::vector<double> dB_only(B.size(), 0.0);
  matmul_backward(A.data(), B.data(), dC.data(), dA.data(), dB.data(), c.M, c.N, c.K, true, false);
  matmul_backward(A.data(), B.data(), dC.data(), dA_only.data(), static_cast<double*>(nullptr), c.M,
                  c.N, c.K, true, false);
  matmul_backward(A.data(), B.data(), dC.data(), static_cast<double*>(nullptr), dB_only.data(), c.M,
                  c.N, c.K, true, false);
  EXPECT_EQ(dA_only, dA);
  EXPECT_EQ(dB_only, dB);
}

struct LinearCase {
  int64_t M, in, out;
  bool bias;
};

// y[m, o] = sum_i x[m, i] W[o, i] + bias[o]
std::vector<double> naive_linear(const std::vector<double>& x, const std::vector<double>& W,
                                 const std::vector<double>* bias, const LinearCase& c) {
  std::vector<double> y(c.M * c.out);
  for (int64_t m = 0; m < c.M; ++m)
    for (int64_t o = 0; o < c.out; ++o) {
      double sum = bias ? (*bias)[o] : 0.0;
      for (int64_t i = 0; i < c.in; ++i) sum += x[m * c.in + i] * W[o * c.in + i];
      y[m * c.out + o] = sum;
    }
  return y;
}

const LinearCase kLinearCases[] = {
    {1, 1, 1, true}, {1, 7, 3, false}, {5, 9, 6, true}, {17, 4, 11, true}, {17, 4, 11, false}};

TEST(Linear, ForwardMatchesNaiveWithAndWithoutBiasAndAccumulate) {
  for (const LinearCase& c : kLinearCases) {
    SCOPED_TRACE("M=" + std::to_string(c.M) + " in=" + std::to_string(c.in) +
                 " out=" + std::to_string(c.out) + " bias=" + std::to_string(c.bias));
    const auto x = random_vector(c.M * c.in, 1), W = random_vector(c.out * c.in, 2);
    const auto bias = random_vector(c.out, 3), y0 = random_vector(c.M * c.out, 4);
    const auto expected = naive_linear(x, W, c.bias ? &bias : nullptr, c);
    std::vector<double> y(c.M * c.out, -5.0);
    linear_forward(x.data(), W.data(), c.bias ? bias.data() : nullptr, y.data(), c.M, c.in, c.out,
                   false);
    expect_near_all("y", y, expected, 1e-13, 1e-13);

    std::vector<double> y_acc = y0, expected_acc = expected;
    for (size_t i = 0; i < y_acc.size(); ++i) expected_acc[i] += y0[i];
    linear_forward(x.data(), W.data(), c.bias ? bias.data() : nullptr, y_acc.data(), c.M, c.in,
                   c.out, true);
    expect_near_all("y accumulated", y_acc, expected_acc, 1e-13, 1e-13);
  }
}

TEST(Linear, GradientsMatchFiniteDifferences) {
  for (const LinearCase& c : kLinearCases) {
    SCOPED_TRACE("M=" + std::to_string(c.M) + " in=" + std::to_string(c.in) +
                 " out=" + std::to_string(c.out) + " bias=" + std::to_string(c.bias));
    auto x = random_vector(c.M * c.in, 5), W = random_vector(c.out * c.in, 6);
    auto bias = random_vector(c.out, 7);
    const auto w = random_vector(c.M * c.out, 8);
    std::vector<double> y(c.M * c.out);
    auto loss = [&] {
      linear_forward(x.data(), W.data(), c.bias ? bias.data() : nullptr, y.data(), c.M, c.in, c.out,
                     false);
      return weighted_sum(y, w);
    };
    auto backward = [&](std::vector<std::vector<double>>& g) {
      linear_backward(x.data(), W.data(), w.data(), g[0].data(), g[1].data(),
                      c.bias ? g[2].data() : nullptr, c.M, c.in, c.out);
    };
    if (c.bias) {
      check_gradients({{"x", &x}, {"W", &W}, {"bias", &bias}}, loss, backward);
    } else {
      check_gradients({{"x", &x}, {"W", &W}}, loss, backward);
    }
  }
}

}  // namespace
}  // namespace rrt::ops
