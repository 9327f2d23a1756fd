// The CPU bf16 backend's projections (CpuBf16Backend::project / project_backward over
// ops/cpu_bf16/gemm.h) and the engine's LoRA row ops against the fp32 CpuBackend on the shared
// op-test table (tests/ops/op_cases.h): the linear cases with each bias mode, the LoRA cases on
// top of a tied weight. Tolerances (relative L2, gemm_tol's kCpuBf16 entries, shared with the
// CUDA backend's GEMMs): bf16 results 1e-2, fp32 weight gradients 1e-3, anything through LoRA's
// bf16 u or du 1e-2. Gradients start from random values (backward adds); the checks are on the
// update.
#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "ops/cpu/backend.h"
#include "ops/cpu_bf16/backend.h"
#include "tests/ops/cpu_bf16/bf16_test.h"
#include "tests/ops/op_cases.h"

namespace rrt::testing {
namespace {

namespace cases = op_cases;
namespace tol = cases::gemm_tol;

class Bf16Linear : public ::testing::TestWithParam<cases::LinearCase> {};
INSTANTIATE_TEST_SUITE_P(Table, Bf16Linear, ::testing::ValuesIn(cases::linear_cases()),
                         cases::kCaseName);

TEST_P(Bf16Linear, ForwardAndBackwardMatchFp32EveryBiasMode) {
  RRT_REQUIRE_CPU_BF16_BACKEND();
  const cases::LinearCase& c = GetParam();
  const int64_t M = c.M, in = c.in, out = c.out;
  CpuBackend cpu(1);
  CpuBf16Backend be(2);
  for (cases::BiasMode mode : cases::kBiasModes) {
    SCOPED_TRACE(cases::bias_name(mode));
    const auto x = random_values(M * in, 1), W = random_values(out * in, 2, 0.05f, 0.5f);
    const auto bias_all = random_values(out + 1, 3);
    const int64_t shift = mode == cases::BiasMode::kMisaligned ? 1 : 0;
    const float* bias = mode == cases::BiasMode::kNone ? nullptr : bias_all.data() + shift;
    std::vector<float> y(M * out);
    cpu.project(x.data(), W.data(), bias, nullptr, nullptr, nullptr, y.data(), M, in, out, 0, 0.f);
    const auto x16 = to_bf16(x), W16 = to_bf16(W), b16 = to_bf16(bias_all);
    auto y16 = poisoned(y.size());
    be.project(x16.data(), W16.data(), bias ? b16.data() + shift : nullptr, nullptr, nullptr,
               nullptr, y16.data(), M, in, out, 0, 0.f);
    EXPECT_LE(relative_l2(to_f32(y16), y), tol::kCpuBf16Out.rel) << "y";

    const auto dy = random_values(M * out, 4), dx0 = random_values(M * in, 5);
    const auto dW0 = random_values(out * in, 6), db0 = random_values(out, 7);
    auto dx = dx0, dW = dW0, db = db0;
    cpu.project_backward(x.data(), W.data(), nullptr, nullptr, nullptr, dy.data(), dx.data(),
                         dW.data(), bias ? db.data() : nullptr, nullptr, nullptr, nullptr, M, in,
                         out, 0, 0.f);
    auto dx16 = to_bf16(dx0);
    auto dW32 = dW0, db32 = db0;
    be.project_backward(x16.data(), W16.data(), nullptr, nullptr, nullptr, to_bf16(dy).data(),
                        dx16.data(), dW32.data(), bias ? db32.data() : nullptr, nullptr, nullptr,
                        nullptr, M, in, out, 0, 0.f);
    EXPECT_LE(relative_l2(minus(to_f32(dx16), dx0), minus(dx, dx0)), tol::kCpuBf16Out.rel) << "dx";
    EXPECT_LE(relative_l2(minus(dW32, dW0), minus(dW, dW0)), tol::kCpuBf16F32Out.rel) << "dW";
    if (bias) {
      EXPECT_LE(relative_l2(minus(db32, db0), minus(db, db0)), tol::kCpuBf16F32Out.rel) << "db";
    }
  }
}

class Bf16Lora : public ::testing::TestWithParam<cases::LoraCase> {};
INSTANTIATE_TEST_SUITE_P(Table, Bf16Lora, ::testing::ValuesIn(cases::lora_cases()),
                         cases::kCaseName);

TEST_P(Bf16Lora, ProjectionWithAdapterMatchesFp32) {
  RRT_REQUIRE_CPU_BF16_BACKEND();
  const cases::LoraCase& c = GetParam();
  const int64_t M = c.M, in = c.in, out = c.out, R = c.R;
  const float s = static_cast<float>(c.scale);
  CpuBackend cpu(1);
  CpuBf16Backend be(2);
  const auto x = random_values(M * in, 11), W = random_values(out * in, 12, 0.05f, 0.5f);
  const auto A = random_values(R * in, 13, 0.05f, 0.5f),
             B = random_values(out * R, 14, 0.05f, 0.5f);
  std::vector<float> y(M * out), u(M * R);
  cpu.project(x.data(), W.data(), nullptr, A.data(), B.data(), u.data(), y.data(), M, in, out, R,
              s);
  const auto x16 = to_bf16(x), W16 = to_bf16(W), A16 = to_bf16(A), B16 = to_bf16(B);
  auto y16 = poisoned(y.size()), u16 = poisoned(u.size());
  be.project(x16.data(), W16.data(), nullptr, A16.data(), B16.data(), u16.data(), y16.data(), M, in,
             out, R, s);
  EXPECT_LE(relative_l2(to_f32(u16), u), tol::kCpuBf16Out.rel) << "u";
  EXPECT_LE(relative_l2(to_f32(y16), y), tol::kCpuBf16Chained.rel) << "y";

  const auto dy = random_values(M * out, 15), dx0 = random_values(M * in, 16);
  const auto dW0 = random_values(out * in, 17), dA0 = random_values(R * in, 18);
  const auto dB0 = random_values(out * R, 19);
  auto dx = dx0, dW = dW0, dA = dA0, dB = dB0;
  std::vector<float> du(M * R);
  cpu.project_backward(x.data(), W.data(), A.data(), B.data(), u.data(), dy.data(), dx.data(),
                       dW.data(), nullptr, dA.data(), dB.data(), du.data(), M, in, out, R, s);
  auto dx16 = to_bf16(dx0), du16 = poisoned(du.size());
  auto dW32 = dW0, dA32 = dA0, dB32 = dB0;
  be.project_backward(x16.data(), W16.data(), A16.data(), B16.data(), u16.data(),
                      to_bf16(dy).data(), dx16.data(), dW32.data(), nullptr, dA32.data(),
                      dB32.data(), du16.data(), M, in, out, R, s);
  EXPECT_LE(relative_l2(minus(to_f32(dx16), dx0), minus(dx, dx0)), tol::kCpuBf16Chained.rel)
      << "dx";
  EXPECT_LE(relative_l2(minus(dW32, dW0), minus(dW, dW0)), tol::kCpuBf16F32Out.rel) << "dW";
  EXPECT_LE(relative_l2(minus(dA32, dA0), minus(dA, dA0)), tol::kCpuBf16Chained.rel) << "dA";
  EXPECT_LE(relative_l2(minus(dB32, dB0), minus(dB, dB0)), tol::kCpuBf16Chained.rel) << "dB";

  // The engine's LoRA: one adapter over all rows, and per-row groups at two stages.
  auto y_add = random_values(M * out, 20);
  auto want = y_add;
  std::vector<float> u_ref(M * R);
  cpu.lora_add(x.data(), A.data(), B.data(), u_ref.data(), want.data(), M, in, out, R, s);
  auto got = to_bf16(y_add);
  std::vector<bf16> u_add(M * R);
  be.lora_add(x16.data(), A16.data(), B16.data(), u_add.data(), got.data(), M, in, out, R, s);
  EXPECT_LE(relative_l2(to_f32(got), want), tol::kCpuBf16Out.rel) << "lora_add";
  const RowAdapter<float> fa[2] = {{nullptr, nullptr, 0, 0.f},
                                   {A.data(), B.data(), static_cast<int32_t>(R), s}};
  const RowAdapter<bf16> ba[2] = {{nullptr, nullptr, 0, 0.f},
                                  {A16.data(), B16.data(), static_cast<int32_t>(R), s}};
  const RowGroup groups[2] = {{0, M / 2, 0}, {M / 2, M, 1}};  // stage 0 (no adapter), stage 1
  want = y_add;
  got = to_bf16(y_add);
  std::vector<float> u_rows(M * R);
  cpu.lora_rows(x.data(), in, want.data(), out, fa, 1, groups, 2, 1, u_rows.data(), R);
  be.lora_rows(x16.data(), in, got.data(), out, ba, 1, groups, 2, 1, u_rows.data(), R);
  EXPECT_LE(relative_l2(to_f32(got), want), tol::kCpuBf16Out.rel) << "lora_rows";
}

}  // namespace
}  // namespace rrt::testing
