// LoRA adapter y += s (x A^T) B^T: forward against a naive reference (it adds onto y and stashes
// u = x A^T), gradients for x, A and B by finite differences (rank 1 and 4), rank 0 a no-op.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "ops/lora.h"
#include "tests/ops/gradcheck.h"
#include "tests/ops/op_cases.h"

namespace rrt::ops {
namespace {

using testing::check_gradients;
using testing::expect_near_all;
using testing::random_vector;
using testing::weighted_sum;

namespace cases = testing::op_cases;
namespace tol = cases::lora_tol;
using cases::LoraCase;

// The shared table (tests/ops/op_cases.h): every case runs on every backend.
class Lora : public ::testing::TestWithParam<LoraCase> {};
INSTANTIATE_TEST_SUITE_P(Table, Lora, ::testing::ValuesIn(cases::lora_cases()), cases::kCaseName);

TEST_P(Lora, ForwardAddsScaledLowRankProductAndStashesU) {
  const LoraCase& c = GetParam();
  {
    const auto x = random_vector(c.M * c.in, 1), A = random_vector(c.R * c.in, 2);
    const auto B = random_vector(c.out * c.R, 3), y0 = random_vector(c.M * c.out, 4);
    std::vector<double> expected_u(c.M * c.R, 0.0), expected_y = y0;
    for (int64_t m = 0; m < c.M; ++m)
      for (int64_t r = 0; r < c.R; ++r)
        for (int64_t i = 0; i < c.in; ++i)
          expected_u[m * c.R + r] += x[m * c.in + i] * A[r * c.in + i];
    for (int64_t m = 0; m < c.M; ++m)
      for (int64_t o = 0; o < c.out; ++o)
        for (int64_t r = 0; r < c.R; ++r)
          expected_y[m * c.out + o] += c.scale * expected_u[m * c.R + r] * B[o * c.R + r];

    std::vector<double> u(c.M * c.R, 123.0), y = y0;
    lora_forward(x.data(), A.data(), B.data(), u.data(), y.data(), c.M, c.in, c.out, c.R, c.scale);
    expect_near_all("u", u, expected_u, tol::kCpuF64.rel, tol::kCpuF64.abs);
    expect_near_all("y", y, expected_y, tol::kCpuF64.rel, tol::kCpuF64.abs);

    const auto xf = testing::to_float(x), Af = testing::to_float(A), Bf = testing::to_float(B);
    std::vector<float> uf(c.M * c.R), yf = testing::to_float(y0);
    lora_forward(xf.data(), Af.data(), Bf.data(), uf.data(), yf.data(), c.M, c.in, c.out, c.R,
                 static_cast<float>(c.scale));
    const cases::Tolerance f32 = tol::cpu_f32_for(c.in, c.R, c.scale);
    expect_near_all("y float", yf, expected_y, f32.rel, f32.abs);
  }
}

TEST_P(Lora, GradientsMatchFiniteDifferences) {
  const LoraCase& c = GetParam();
  {
    auto x = random_vector(c.M * c.in, 5), A = random_vector(c.R * c.in, 6);
    auto B = random_vector(c.out * c.R, 7);
    const auto y0 = random_vector(c.M * c.out, 8), dy = random_vector(c.M * c.out, 9);
    std::vector<double> u(c.M * c.R), y, du(c.M * c.R);
    auto loss = [&] {
      y = y0;
      lora_forward(x.data(), A.data(), B.data(), u.data(), y.data(), c.M, c.in, c.out, c.R,
                   c.scale);
      return weighted_sum(y, dy);
    };
    auto backward = [&](std::vector<std::vector<double>>& g) {
      y = y0;
      lora_forward(x.data(), A.data(), B.data(), u.data(), y.data(), c.M, c.in, c.out, c.R,
                   c.scale);
      std::fill(du.begin(), du.end(), -7.0);  // scratch: contents must not matter
      lora_backward(x.data(), A.data(), B.data(), u.data(), dy.data(), g[0].data(), g[1].data(),
                    g[2].data(), du.data(), c.M, c.in, c.out, c.R, c.scale);
    };
    // y is linear in x, A and B: a larger step (tests/ops/op_cases.h says why).
    testing::GradCheckOptions opts;
    opts.h = tol::kCpuFdStep;
    check_gradients({{"x", &x}, {"A", &A}, {"B", &B}}, loss, backward, opts);
  }
}

TEST(LoraEdge, ZeroInitialisedBGivesZeroOutputButNonZeroBGradient) {
  // The standard LoRA init (B = 0): the adapter starts as a no-op yet B still learns.
  const LoraCase c{"zero_b", 6, 8, 4, 2, 2.0};
  const auto x = random_vector(c.M * c.in, 10), A = random_vector(c.R * c.in, 11);
  const std::vector<double> B(c.out * c.R, 0.0);
  const auto y0 = random_vector(c.M * c.out, 12), dy = random_vector(c.M * c.out, 13);
  std::vector<double> u(c.M * c.R), y = y0, du(c.M * c.R);
  lora_forward(x.data(), A.data(), B.data(), u.data(), y.data(), c.M, c.in, c.out, c.R, c.scale);
  EXPECT_EQ(y, y0);
  std::vector<double> dx(x.size(), 0.0), dA(A.size(), 0.0), dB(B.size(), 0.0);
  lora_backward(x.data(), A.data(), B.data(), u.data(), dy.data(), dx.data(), dA.data(), dB.data(),
                du.data(), c.M, c.in, c.out, c.R, c.scale);
  EXPECT_EQ(dx, std::vector<double>(x.size(), 0.0));
  EXPECT_EQ(dA, std::vector<double>(A.size(), 0.0));
  double norm = weighted_sum(dB, dB);
  EXPECT_GT(norm, 1e-6);
}

TEST(LoraEdge, RankZeroIsANoOp) {
  const int64_t M = 3, in = 4, out = 5;
  const auto x = random_vector(M * in, 14), y0 = random_vector(M * out, 15);
  std::vector<double> y = y0, dx(M * in, 0.5);
  lora_forward(x.data(), static_cast<const double*>(nullptr), static_cast<const double*>(nullptr),
               static_cast<double*>(nullptr), y.data(), M, in, out, 0, 1.0);
  EXPECT_EQ(y, y0);
  lora_backward(x.data(), static_cast<const double*>(nullptr), static_cast<const double*>(nullptr),
                static_cast<const double*>(nullptr), y0.data(), dx.data(),
                static_cast<double*>(nullptr), static_cast<double*>(nullptr),
                static_cast<double*>(nullptr), M, in, out, 0, 1.0);
  EXPECT_EQ(dx, std::vector<double>(M * in, 0.5));
}

}  // namespace
}  // namespace rrt::ops
