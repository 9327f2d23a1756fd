// cuBLASLt GEMM wrapper, linear and LoRA on the GPU against the CPU fp32 ops (ops/matmul.h,
// ops/lora.h) run on the same bf16-rounded inputs, so only the GPU's arithmetic is measured.
// The cases are the shared op-test table's (tests/ops/op_cases.h), which the CPU op tests run
// too: M = 1, 3, 257 and K, N not multiples of 8 (the wrapper passes the real pointer alignment
// to cuBLASLt, which then picks a kernel that handles them).
// Tolerances (relative L2 against the CPU; gemm_tol in the table):
//   kBf16Out = 1e-2: bf16 outputs (rounding of the result, 2^-9 relative, plus accumulation order)
//   kF32Out  = 1e-3: fp32 outputs of bf16 operands (only the accumulation order differs)
//   kChained = 1e-2: results that pass through a bf16 intermediate (LoRA's u and du)
// Outputs written with beta = 0 are poisoned (NaN) first; accumulating outputs start from random
// values of the size of the update, so that both the old value and the update are checked.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "ops/cuda/gemm.h"
#include "ops/cuda/lora.h"
#include "ops/lora.h"
#include "ops/matmul.h"
#include "tests/gpu/gpu_test.h"
#include "tests/ops/op_cases.h"

namespace rrt::ops::cuda {
namespace {

using rrt::testing::DeviceBuffer;
using rrt::testing::download;
using rrt::testing::download_f32;
using rrt::testing::poison;
using rrt::testing::relative_l2;
using rrt::testing::round_bf16;
using rrt::testing::to_bf16;
using rrt::testing::upload;

namespace cases = rrt::testing::op_cases;
constexpr double kBf16Out = cases::gemm_tol::kCudaBf16Out.rel;
constexpr double kF32Out = cases::gemm_tol::kCudaF32Out.rel;
constexpr double kChained = cases::gemm_tol::kCudaChained.rel;

// Uniform(-scale, scale), rounded to bf16 values (what the GPU will see exactly).
std::vector<float> random_bf16_values(size_t n, uint32_t seed, float scale = 1.f) {
  return round_bf16(rrt::testing::random_uniform(n, seed, scale));
}
std::vector<float> random_f32(size_t n, uint32_t seed, float scale = 1.f) {
  return rrt::testing::random_uniform(n, seed, scale);
}
float rms(const std::vector<float>& v) {
  double s = 0;
  for (float x : v) s += double(x) * x;
  return v.empty() ? 0.f : static_cast<float>(std::sqrt(s / v.size()) + 1e-6);
}
std::vector<float> sub(const std::vector<float>& a, const std::vector<float>& b) {
  std::vector<float> d(a.size());
  for (size_t i = 0; i < a.size(); ++i) d[i] = a[i] - b[i];
  return d;
}

// Device copies of host values (DeviceBuffer cannot move: these are returned as prvalues).
struct Bf16Buffer : DeviceBuffer<bf16> {
  explicit Bf16Buffer(const std::vector<float>& h) : DeviceBuffer<bf16>(h.size()) {
    upload(*this, to_bf16(h));
  }
};
struct F32Buffer : DeviceBuffer<float> {
  explicit F32Buffer(const std::vector<float>& h) : DeviceBuffer<float>(h.size()) {
    upload(*this, h);
  }
};
Bf16Buffer device_bf16(const std::vector<float>& h) { return Bf16Buffer(h); }
F32Buffer device_f32(const std::vector<float>& h) { return F32Buffer(h); }

struct Shape {
  int64_t M, N, K;
};

std::string describe(const Shape&, bool ta, bool tb) {
  return "trans_a=" + std::to_string(ta) + " trans_b=" + std::to_string(tb);
}

// The table's shapes, each in all four transpose combinations.
class GemmGpu : public ::testing::TestWithParam<cases::GemmCase> {
 protected:
  Shape shape() const { return {GetParam().M, GetParam().N, GetParam().K}; }
};
INSTANTIATE_TEST_SUITE_P(Table, GemmGpu, ::testing::ValuesIn(cases::gemm_cases()),
                         cases::kCaseName);

// CPU row-major reference: C = alpha op(A) op(B) + beta C.
void cpu_gemm(bool ta, bool tb, const Shape& s, float alpha, const std::vector<float>& A,
              const std::vector<float>& B, float beta, std::vector<float>& C) {
  ops::gemm<float>(ta, tb, s.M, s.N, s.K, alpha, A.data(), ta ? s.M : s.K, B.data(), tb ? s.K : s.N,
                   beta, C.data(), s.N);
}

TEST_P(GemmGpu, Bf16OutputAllTransposesOverwriteAndAccumulate) {
  RRT_REQUIRE_GPU();
  GemmContext ctx;
  uint32_t seed = 1;
  const Shape s = shape();
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      SCOPED_TRACE(describe(s, ta, tb));
      const auto A = random_bf16_values(s.M * s.K, seed++);
      const auto B = random_bf16_values(s.K * s.N, seed++);
      auto dA = device_bf16(A), dB = device_bf16(B);
      // beta = 0 on a poisoned output: every element must be written, C never read.
      std::vector<float> expected(s.M * s.N, 0.f);
      cpu_gemm(ta, tb, s, 0.5f, A, B, 0.f, expected);
      DeviceBuffer<bf16> dC(s.M * s.N);
      poison(dC);
      gemm(ctx, ta, tb, s.M, s.N, s.K, 0.5f, dA.get(), dB.get(), 0.f, dC.get());
      EXPECT_LE(relative_l2(download_f32(dC), expected), kBf16Out);
      // beta = 1 onto values of the update's size.
      const auto C0 = random_bf16_values(s.M * s.N, seed++, rms(expected));
      auto dC1 = device_bf16(C0);
      std::vector<float> expected1 = C0;
      cpu_gemm(ta, tb, s, 0.5f, A, B, 1.f, expected1);
      gemm(ctx, ta, tb, s.M, s.N, s.K, 0.5f, dA.get(), dB.get(), 1.f, dC1.get());
      EXPECT_LE(relative_l2(download_f32(dC1), expected1), kBf16Out);
    }
}

TEST_P(GemmGpu, F32OutputAllTransposesOverwriteAndAccumulate) {
  RRT_REQUIRE_GPU();
  GemmContext ctx;
  uint32_t seed = 100;
  const Shape s = shape();
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      SCOPED_TRACE(describe(s, ta, tb));
      const auto A = random_bf16_values(s.M * s.K, seed++);
      const auto B = random_bf16_values(s.K * s.N, seed++);
      auto dA = device_bf16(A), dB = device_bf16(B);
      std::vector<float> expected(s.M * s.N, 0.f);
      cpu_gemm(ta, tb, s, 1.f, A, B, 0.f, expected);
      DeviceBuffer<float> dC(s.M * s.N);
      poison(dC);
      gemm(ctx, ta, tb, s.M, s.N, s.K, 1.f, dA.get(), dB.get(), 0.f, dC.get());
      EXPECT_LE(relative_l2(download(dC), expected), kF32Out);
      const auto C0 = random_f32(s.M * s.N, seed++, rms(expected));
      auto dC1 = device_f32(C0);
      std::vector<float> expected1 = C0;
      cpu_gemm(ta, tb, s, 1.f, A, B, 1.f, expected1);
      gemm(ctx, ta, tb, s.M, s.N, s.K, 1.f, dA.get(), dB.get(), 1.f, dC1.get());
      EXPECT_LE(relative_l2(download(dC1), expected1), kF32Out);
    }
}

TEST(GemmGpuEdge, PlansAreCachedPerShape) {
  RRT_REQUIRE_GPU();
  GemmContext ctx;
  const Shape s{16, 32, 64};
  auto A = device_bf16(random_bf16_values(s.M * s.K, 7));
  auto B = device_bf16(random_bf16_values(s.N * s.K, 8));
  DeviceBuffer<bf16> C(s.M * s.N);
  for (int i = 0; i < 3; ++i)
    gemm(ctx, false, true, s.M, s.N, s.K, 1.f, A.get(), B.get(), 0.f, C.get());
  EXPECT_EQ(ctx.cached_plans(), 1u);
  gemm(ctx, false, false, s.M, s.N, s.K, 1.f, A.get(), B.get(), 0.f, C.get());
  EXPECT_EQ(ctx.cached_plans(), 2u);
}

TEST(GemmGpuEdge, RejectsMisalignedAndNegativeOperandsWithAClearError) {
  RRT_REQUIRE_GPU();
  GemmContext ctx;
  DeviceBuffer<bf16> A(64), B(64), C(64);
  const bf16* odd = reinterpret_cast<const bf16*>(reinterpret_cast<const char*>(A.get()) + 1);
  EXPECT_THROW(gemm(ctx, false, false, 4, 4, 4, 1.f, odd, B.get(), 0.f, C.get()), rrt::Error);
  EXPECT_THROW(gemm(ctx, false, false, -1, 4, 4, 1.f, A.get(), B.get(), 0.f, C.get()), rrt::Error);
  try {
    gemm(ctx, false, false, 4, 4, 4, 1.f, odd, B.get(), 0.f, C.get());
  } catch (const rrt::Error& e) {
    EXPECT_NE(std::string(e.what()).find("not aligned"), std::string::npos) << e.what();
  }
}

using LinearShape = cases::LinearCase;
class LinearGpu : public ::testing::TestWithParam<LinearShape> {};
INSTANTIATE_TEST_SUITE_P(Table, LinearGpu, ::testing::ValuesIn(cases::linear_cases()),
                         cases::kCaseName);

TEST_P(LinearGpu, LinearForwardWithAndWithoutBias) {
  RRT_REQUIRE_GPU();
  GemmContext ctx;
  uint32_t seed = 200;
  const LinearShape& s = GetParam();
  // none, aligned (fused epilogue), misaligned (fallback): the table's BiasMode in order.
  for (cases::BiasMode mode : cases::kBiasModes) {
    const int bias_mode = static_cast<int>(mode);
    SCOPED_TRACE(std::string("bias ") + cases::bias_name(mode));
    const auto x = random_bf16_values(s.M * s.in, seed++);
    const auto W = random_bf16_values(s.out * s.in, seed++);
    const auto bias = random_bf16_values(s.out + 1, seed++);
    auto dx = device_bf16(x), dW = device_bf16(W), dbias = device_bf16(bias);
    const bf16* bias_ptr = bias_mode == 0 ? nullptr : dbias.get() + (bias_mode == 2 ? 1 : 0);
    const float* bias_cpu = bias_mode == 0 ? nullptr : bias.data() + (bias_mode == 2 ? 1 : 0);
    std::vector<float> expected(s.M * s.out, 0.f);
    ops::linear_forward<float>(x.data(), W.data(), bias_cpu, expected.data(), s.M, s.in, s.out,
                               false);
    DeviceBuffer<bf16> dy(s.M * s.out);
    poison(dy);
    linear_forward(ctx, dx.get(), dW.get(), bias_ptr, dy.get(), s.M, s.in, s.out, false);
    EXPECT_LE(relative_l2(download_f32(dy), expected), kBf16Out);
    // accumulate: y += x W^T + bias
    const auto y0 = random_bf16_values(s.M * s.out, seed++, rms(expected));
    auto dy1 = device_bf16(y0);
    std::vector<float> expected1 = y0;
    ops::linear_forward<float>(x.data(), W.data(), bias_cpu, expected1.data(), s.M, s.in, s.out,
                               true);
    linear_forward(ctx, dx.get(), dW.get(), bias_ptr, dy1.get(), s.M, s.in, s.out, true);
    EXPECT_LE(relative_l2(download_f32(dy1), expected1), kBf16Out);
  }
}

TEST_P(LinearGpu, LinearBackwardAddsIntoBf16DxAndF32DwDbias) {
  RRT_REQUIRE_GPU();
  GemmContext ctx;
  uint32_t seed = 300;
  const LinearShape& s = GetParam();
  {
    const auto x = random_bf16_values(s.M * s.in, seed++);
    const auto W = random_bf16_values(s.out * s.in, seed++);
    const auto dy = random_bf16_values(s.M * s.out, seed++);
    // The update alone, to size the starting values of the accumulators.
    std::vector<float> gx(s.M * s.in, 0.f), gW(s.out * s.in, 0.f), gb(s.out, 0.f);
    ops::linear_backward<float>(x.data(), W.data(), dy.data(), gx.data(), gW.data(), gb.data(), s.M,
                                s.in, s.out);
    const auto dx0 = random_bf16_values(gx.size(), seed++, rms(gx));
    const auto dW0 = random_f32(gW.size(), seed++, rms(gW));
    const auto db0 = random_f32(gb.size(), seed++, rms(gb));
    std::vector<float> ex = dx0, eW = dW0, eb = db0;
    ops::linear_backward<float>(x.data(), W.data(), dy.data(), ex.data(), eW.data(), eb.data(), s.M,
                                s.in, s.out);
    auto d_x = device_bf16(x), d_W = device_bf16(W), d_dy = device_bf16(dy);
    auto d_dx = device_bf16(dx0);
    auto d_dW = device_f32(dW0), d_db = device_f32(db0);
    linear_backward(ctx, d_x.get(), d_W.get(), d_dy.get(), d_dx.get(), d_dW.get(), d_db.get(), s.M,
                    s.in, s.out);
    EXPECT_LE(relative_l2(download_f32(d_dx), ex), kBf16Out);
    EXPECT_LE(relative_l2(download(d_dW), eW), kF32Out);
    EXPECT_LE(relative_l2(download(d_db), eb), kF32Out);
    // Once more: the fp32 gradient keeps accumulating (the tied block over loops).
    linear_backward(ctx, d_x.get(), d_W.get(), d_dy.get(), nullptr, d_dW.get(), nullptr, s.M, s.in,
                    s.out);
    for (size_t i = 0; i < eW.size(); ++i) eW[i] += gW[i];
    EXPECT_LE(relative_l2(download(d_dW), eW), kF32Out);
  }
}

class LoraGpu : public ::testing::TestWithParam<cases::LoraCase> {};
INSTANTIATE_TEST_SUITE_P(Table, LoraGpu, ::testing::ValuesIn(cases::lora_cases()),
                         cases::kCaseName);

TEST_P(LoraGpu, ForwardAndBackwardMatchTheCpu) {
  RRT_REQUIRE_GPU();
  GemmContext ctx;
  uint32_t seed = 400;
  struct {
    int64_t M, in, out, R;
    float scale;
  } const s{GetParam().M, GetParam().in, GetParam().out, GetParam().R,
            static_cast<float>(GetParam().scale)};
  {
    const auto x = random_bf16_values(s.M * s.in, seed++);
    const auto A = random_bf16_values(s.R * s.in, seed++);
    const auto B = random_bf16_values(s.out * s.R, seed++);
    const auto dy = random_bf16_values(s.M * s.out, seed++);
    // Forward: y += s u B^T with u = x A^T stashed.
    std::vector<float> u(s.M * s.R), delta(s.M * s.out, 0.f);
    ops::lora_forward<float>(x.data(), A.data(), B.data(), u.data(), delta.data(), s.M, s.in, s.out,
                             s.R, s.scale);
    const auto y0 = random_bf16_values(delta.size(), seed++, rms(delta));
    std::vector<float> ey = y0;
    ops::lora_forward<float>(x.data(), A.data(), B.data(), u.data(), ey.data(), s.M, s.in, s.out,
                             s.R, s.scale);
    auto d_x = device_bf16(x), d_A = device_bf16(A), d_B = device_bf16(B), d_dy = device_bf16(dy);
    auto d_y = device_bf16(y0);
    DeviceBuffer<bf16> d_u(s.M * s.R), d_du(s.M * s.R);
    poison(d_u);
    poison(d_du);
    lora_forward(ctx, d_x.get(), d_A.get(), d_B.get(), d_u.get(), d_y.get(), s.M, s.in, s.out, s.R,
                 s.scale);
    EXPECT_LE(relative_l2(download_f32(d_u), u), kBf16Out);
    EXPECT_LE(relative_l2(download_f32(d_y), ey), kChained);
    // The overwriting form: y = s u B^T whatever y held (NaN here), i.e. the CPU's delta.
    DeviceBuffer<bf16> d_y_over(delta.size()), d_u_over(s.M * s.R);
    poison(d_y_over);
    lora_forward_overwrite(ctx, d_x.get(), d_A.get(), d_B.get(), d_u_over.get(), d_y_over.get(),
                           s.M, s.in, s.out, s.R, s.scale);
    EXPECT_LE(relative_l2(download_f32(d_y_over), delta), kChained);

    // Backward from the GPU's own u (as training would), rounded values on the CPU too.
    const auto u_gpu = download_f32(d_u);
    std::vector<float> gx(s.M * s.in, 0.f), gA(s.R * s.in, 0.f), gB(s.out * s.R, 0.f);
    std::vector<float> scratch(s.M * s.R);
    ops::lora_backward<float>(x.data(), A.data(), B.data(), u_gpu.data(), dy.data(), gx.data(),
                              gA.data(), gB.data(), scratch.data(), s.M, s.in, s.out, s.R, s.scale);
    const auto dx0 = random_bf16_values(gx.size(), seed++, rms(gx));
    const auto dA0 = random_f32(gA.size(), seed++, rms(gA));
    const auto dB0 = random_f32(gB.size(), seed++, rms(gB));
    std::vector<float> ex = dx0, eA = dA0, eB = dB0;
    ops::lora_backward<float>(x.data(), A.data(), B.data(), u_gpu.data(), dy.data(), ex.data(),
                              eA.data(), eB.data(), scratch.data(), s.M, s.in, s.out, s.R, s.scale);
    auto d_dx = device_bf16(dx0);
    auto d_dA = device_f32(dA0), d_dB = device_f32(dB0);
    lora_backward(ctx, d_x.get(), d_A.get(), d_B.get(), d_u.get(), d_dy.get(), d_dx.get(),
                  d_dA.get(), d_dB.get(), d_du.get(), s.M, s.in, s.out, s.R, s.scale);
    EXPECT_LE(relative_l2(download_f32(d_du), scratch), kBf16Out);
    EXPECT_LE(relative_l2(download_f32(d_dx), ex), kChained);
    EXPECT_LE(relative_l2(download(d_dA), eA), kChained);
    EXPECT_LE(relative_l2(download(d_dB), eB), kF32Out);
  }
}

TEST(LoraGpuEdge, RankZeroIsANoOp) {
  RRT_REQUIRE_GPU();
  GemmContext ctx;
  const auto y0 = random_bf16_values(12, 9);
  auto d_y = device_bf16(y0);
  DeviceBuffer<bf16> x(12), A(1), B(1), u(1);
  lora_forward(ctx, x.get(), A.get(), B.get(), u.get(), d_y.get(), 3, 4, 4, 0, 1.f);
  EXPECT_EQ(download_f32(d_y), y0);
}

}  // namespace
}  // namespace rrt::ops::cuda
