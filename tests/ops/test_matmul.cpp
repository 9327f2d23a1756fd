// matmul (all four transpose combinations, accumulate) and linear (with and without bias):
// forward against a naive triple loop, backward by finite differences in double.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "ops/matmul.h"
#include "tests/ops/gradcheck.h"
#include "tests/ops/op_cases.h"

namespace rrt::ops {
namespace {

using testing::check_gradients;
using testing::expect_near_all;
using testing::random_vector;
using testing::weighted_sum;

namespace cases = testing::op_cases;
namespace tol = cases::gemm_tol;

struct MatmulCase {
  int64_t M, N, K;
  bool trans_a, trans_b;
};

std::string describe(const MatmulCase& c) {
  return "trans_a=" + std::to_string(c.trans_a) + " trans_b=" + std::to_string(c.trans_b);
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

// The shared table's shape (tests/ops/op_cases.h) in all four transpose combinations.
class Matmul : public ::testing::TestWithParam<cases::GemmCase> {
 protected:
  std::vector<MatmulCase> all_cases() const {
    std::vector<MatmulCase> out;
    const cases::GemmCase& s = GetParam();
    for (bool ta : {false, true})
      for (bool tb : {false, true}) out.push_back({s.M, s.N, s.K, ta, tb});
    return out;
  }
};
INSTANTIATE_TEST_SUITE_P(Table, Matmul, ::testing::ValuesIn(cases::gemm_cases()), cases::kCaseName);

TEST_P(Matmul, ForwardMatchesNaiveAllTransposes) {
  for (const MatmulCase& c : all_cases()) {
    SCOPED_TRACE(describe(c));
    const auto A = random_vector(c.M * c.K, 1), B = random_vector(c.K * c.N, 2);
    const auto expected = naive_matmul(A, B, c);
    std::vector<double> C(c.M * c.N, 99.0);  // overwritten when not accumulating
    matmul_forward(A.data(), B.data(), C.data(), c.M, c.N, c.K, c.trans_a, c.trans_b, false);
    expect_near_all("C (double)", C, expected, tol::kCpuF64.rel, tol::kCpuF64.abs);

    std::vector<float> Cf(c.M * c.N, 99.0f);
    const auto Af = testing::to_float(A), Bf = testing::to_float(B);
    matmul_forward(Af.data(), Bf.data(), Cf.data(), c.M, c.N, c.K, c.trans_a, c.trans_b, false);
    const cases::Tolerance f32 = tol::cpu_f32_for_sum(c.K);
    expect_near_all("C (float)", Cf, expected, f32.rel, f32.abs);
  }
}

TEST_P(Matmul, AccumulateAddsOntoExistingOutput) {
  for (const MatmulCase& c : all_cases()) {
    SCOPED_TRACE(describe(c));
    const auto A = random_vector(c.M * c.K, 3), B = random_vector(c.K * c.N, 4);
    const auto C0 = random_vector(c.M * c.N, 5);
    auto expected = naive_matmul(A, B, c);
    for (size_t i = 0; i < expected.size(); ++i) expected[i] += C0[i];
    std::vector<double> C = C0;
    matmul_forward(A.data(), B.data(), C.data(), c.M, c.N, c.K, c.trans_a, c.trans_b, true);
    expect_near_all("C", C, expected, tol::kCpuF64.rel, tol::kCpuF64.abs);
  }
}

TEST_P(Matmul, GradientsMatchFiniteDifferencesAllTransposes) {
  testing::GradCheckOptions opts;
  opts.max_checked = static_cast<size_t>(GetParam().fd_samples);
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
    check_gradients({{"A", &A}, {"B", &B}}, loss, backward, opts);
  }
}

TEST(MatmulEdge, NullGradientIsSkipped) {
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

using cases::BiasMode;
using cases::LinearCase;

// y[m, o] = sum_i x[m, i] W[o, i] + bias[o]
std::vector<double> naive_linear(const std::vector<double>& x, const std::vector<double>& W,
                                 const double* bias, const LinearCase& c) {
  std::vector<double> y(c.M * c.out);
  for (int64_t m = 0; m < c.M; ++m)
    for (int64_t o = 0; o < c.out; ++o) {
      double sum = bias ? bias[o] : 0.0;
      for (int64_t i = 0; i < c.in; ++i) sum += x[m * c.in + i] * W[o * c.in + i];
      y[m * c.out + o] = sum;
    }
  return y;
}

// The shared table (tests/ops/op_cases.h), each case with every bias mode: none, aligned, and
// one element into its buffer (misaligned).
class Linear : public ::testing::TestWithParam<LinearCase> {};
INSTANTIATE_TEST_SUITE_P(Table, Linear, ::testing::ValuesIn(cases::linear_cases()),
                         cases::kCaseName);

TEST_P(Linear, ForwardMatchesNaiveWithAndWithoutBiasAndAccumulate) {
  const LinearCase& c = GetParam();
  for (BiasMode mode : cases::kBiasModes) {
    SCOPED_TRACE(std::string("bias ") + cases::bias_name(mode));
    const auto x = random_vector(c.M * c.in, 1), W = random_vector(c.out * c.in, 2);
    auto bias_storage = random_vector(c.out, 3);
    const auto y0 = random_vector(c.M * c.out, 4);
    if (mode == BiasMode::kMisaligned) bias_storage.insert(bias_storage.begin(), 99.0);
    const double* bias = mode == BiasMode::kNone      ? nullptr
                         : mode == BiasMode::kAligned ? bias_storage.data()
                                                      : bias_storage.data() + 1;
    const auto expected = naive_linear(x, W, bias, c);
    std::vector<double> y(c.M * c.out, -5.0);
    linear_forward(x.data(), W.data(), bias, y.data(), c.M, c.in, c.out, false);
    expect_near_all("y", y, expected, tol::kCpuF64.rel, tol::kCpuF64.abs);

    std::vector<double> y_acc = y0, expected_acc = expected;
    for (size_t i = 0; i < y_acc.size(); ++i) expected_acc[i] += y0[i];
    linear_forward(x.data(), W.data(), bias, y_acc.data(), c.M, c.in, c.out, true);
    expect_near_all("y accumulated", y_acc, expected_acc, tol::kCpuF64.rel, tol::kCpuF64.abs);
  }
}

TEST_P(Linear, GradientsMatchFiniteDifferences) {
  const LinearCase& c = GetParam();
  testing::GradCheckOptions opts;
  opts.max_checked = static_cast<size_t>(c.fd_samples);
  for (BiasMode mode : cases::kBiasModes) {
    SCOPED_TRACE(std::string("bias ") + cases::bias_name(mode));
    const bool has_bias = mode != BiasMode::kNone;
    const int64_t shift = mode == BiasMode::kMisaligned ? 1 : 0;
    auto x = random_vector(c.M * c.in, 5), W = random_vector(c.out * c.in, 6);
    auto bias = random_vector(c.out, 7);
    const auto w = random_vector(c.M * c.out, 8);
    std::vector<double> y(c.M * c.out), bias_buf(c.out + shift), dbias_buf(c.out + shift);
    // The op reads the bias (and adds its gradient) `shift` elements into its buffer.
    auto bias_ptr = [&] {
      std::copy(bias.begin(), bias.end(), bias_buf.begin() + shift);
      return bias_buf.data() + shift;
    };
    auto loss = [&] {
      linear_forward(x.data(), W.data(), has_bias ? bias_ptr() : nullptr, y.data(), c.M, c.in,
                     c.out, false);
      return weighted_sum(y, w);
    };
    auto backward = [&](std::vector<std::vector<double>>& g) {
      double* db = nullptr;
      if (has_bias) {
        std::copy(g[2].begin(), g[2].end(), dbias_buf.begin() + shift);
        db = dbias_buf.data() + shift;
      }
      linear_backward(x.data(), W.data(), w.data(), g[0].data(), g[1].data(), db, c.M, c.in, c.out);
      if (has_bias) std::copy(dbias_buf.begin() + shift, dbias_buf.end(), g[2].begin());
    };
    if (has_bias) {
      check_gradients({{"x", &x}, {"W", &W}, {"bias", &bias}}, loss, backward, opts);
    } else {
      check_gradients({{"x", &x}, {"W", &W}}, loss, backward, opts);
    }
  }
}

}  // namespace
}  // namespace rrt::ops
