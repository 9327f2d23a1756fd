// The CPU bf16 backend's element-wise ops (ops/cpu_bf16/elementwise.cpp: embedding, norms, RoPE,
// activations, add) against the fp32 CpuBackend on the shared op-test table (tests/ops/op_cases.h),
// forward and backward, on bf16-representable inputs; outputs start as NaN so an element the op
// forgets fails, and bf16 gradients start from random values (backward adds; compared whole, as
// the CUDA tests do: an update that cancels, such as RMSNorm's dx at D = 1, has no relative error
// of its own), fp32 weight gradients likewise but compared on the update. Tolerances, relative L2
// against fp32 (the table's kCpuBf16 entries, shared with the CUDA backend's):
//   bf16 outputs (activations, dx)                    kCpuBf16    = 1e-2
//   fp32 outputs (rstd, mean, weight gradients)       kCpuBf16F32 = 1e-5
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "ops/cpu/backend.h"
#include "ops/cpu_bf16/backend.h"
#include "tests/ops/cpu_bf16/bf16_test.h"
#include "tests/ops/op_cases.h"

namespace rrt::testing {
namespace {

namespace cases = op_cases;
const double kBf16Tol = cases::kCpuBf16.rel;
const double kF32Tol = cases::kCpuBf16F32.rel;

BackendPlan plan_for(int64_t T, int64_t rot_dim, int64_t Dh) {
  return {.max_attention = {1, T, 1, 1, Dh},
          .rot_dim = rot_dim,
          .rope_theta = 10000.0,
          .backward = true};
}

// ---- embedding ------------------------------------------------------------------------------

class Bf16Embedding : public ::testing::TestWithParam<cases::EmbeddingCase> {};
INSTANTIATE_TEST_SUITE_P(Table, Bf16Embedding, ::testing::ValuesIn(cases::embedding_cases()),
                         cases::kCaseName);

TEST_P(Bf16Embedding, ForwardAndBackwardMatchFp32) {
  RRT_REQUIRE_CPU_BF16_BACKEND();
  const cases::EmbeddingCase& c = GetParam();
  const int64_t M = static_cast<int64_t>(c.tokens.size()), D = c.D, V = c.V;
  const float scale = static_cast<float>(c.scale);
  CpuBackend cpu(1);
  CpuBf16Backend be(2);
  const auto table = random_values(static_cast<size_t>(V * D), 2);
  std::vector<float> ref(static_cast<size_t>(M * D));
  cpu.embedding_forward(c.tokens.data(), table.data(), ref.data(), M, D, V, scale);
  const auto table16 = to_bf16(table);
  auto out = poisoned(ref.size());
  be.embedding_forward(c.tokens.data(), table16.data(), out.data(), M, D, V, scale);
  EXPECT_LE(relative_l2(to_f32(out), ref), kBf16Tol) << "forward";

  const auto dout = random_values(static_cast<size_t>(M * D), 5);
  const auto dtable0 = random_values(static_cast<size_t>(V * D), 6);
  auto want = dtable0, got = dtable0;
  cpu.embedding_backward(c.tokens.data(), dout.data(), want.data(), M, D, V, scale);
  be.embedding_backward(c.tokens.data(), to_bf16(dout).data(), got.data(), M, D, V, scale);
  EXPECT_LE(relative_l2(minus(got, dtable0), minus(want, dtable0)), kF32Tol) << "backward";
}

// ---- RMSNorm / LayerNorm ----------------------------------------------------------------------

class Bf16Norm : public ::testing::TestWithParam<cases::NormCase> {};
INSTANTIATE_TEST_SUITE_P(Table, Bf16Norm, ::testing::ValuesIn(cases::norm_cases()),
                         cases::kCaseName);

// One norm flavour: forward (y, mean, rstd) and backward (dx, dw, dbias) against fp32; the
// backward runs from the fp32 statistics, so it measures the backward alone.
void check_norm(bool layer_norm, bool unit_offset, bool with_bias, int64_t M, int64_t D) {
  const float eps = 1e-5f;
  const size_t n = static_cast<size_t>(M * D);
  CpuBackend cpu(1);
  CpuBf16Backend be(2);
  const auto x = random_values(n, 10), w = random_values(D, 11, 0.5f, 1.5f);
  const auto b = random_values(D, 12), dy = random_values(n, 13);
  const auto dx0 = random_values(n, 14), dw0 = random_values(D, 15), db0 = random_values(D, 16);
  const float* bias = with_bias ? b.data() : nullptr;
  std::vector<float> y(n), mean(M), rstd(M), dx = dx0, dw = dw0, db = db0;
  cpu.norm_forward(layer_norm, x.data(), w.data(), bias, y.data(), mean.data(), rstd.data(), M, D,
                   eps, unit_offset);
  cpu.norm_backward(layer_norm, x.data(), w.data(), mean.data(), rstd.data(), dy.data(), dx.data(),
                    dw.data(), with_bias ? db.data() : nullptr, M, D, unit_offset);

  const auto x16 = to_bf16(x), w16 = to_bf16(w), b16 = to_bf16(b);
  auto y16 = poisoned(n);
  std::vector<float> mean16(M, NAN), rstd16(M, NAN);
  be.norm_forward(layer_norm, x16.data(), w16.data(), with_bias ? b16.data() : nullptr, y16.data(),
                  mean16.data(), rstd16.data(), M, D, eps, unit_offset);
  EXPECT_LE(relative_l2(to_f32(y16), y), kBf16Tol) << "y";
  EXPECT_LE(relative_l2(rstd16, rstd), kF32Tol) << "rstd";
  if (layer_norm) {
    EXPECT_LE(relative_l2(mean16, mean), kF32Tol) << "mean";
  }

  auto dx16 = to_bf16(dx0);
  std::vector<float> dw16 = dw0, db16 = db0;
  be.norm_backward(layer_norm, x16.data(), w16.data(), mean.data(), rstd.data(), to_bf16(dy).data(),
                   dx16.data(), dw16.data(), with_bias ? db16.data() : nullptr, M, D, unit_offset);
  EXPECT_LE(relative_l2(to_f32(dx16), dx), kBf16Tol) << "dx";
  EXPECT_LE(relative_l2(minus(dw16, dw0), minus(dw, dw0)), kF32Tol) << "dw";
  if (with_bias) {
    EXPECT_LE(relative_l2(minus(db16, db0), minus(db, db0)), kF32Tol) << "dbias";
  }
}

TEST_P(Bf16Norm, RmsNormMatchesFp32) {
  RRT_REQUIRE_CPU_BF16_BACKEND();
  for (bool unit_offset : {false, true}) {
    SCOPED_TRACE("unit_offset=" + std::to_string(unit_offset));
    check_norm(false, unit_offset, false, GetParam().M, GetParam().D);
  }
}

TEST_P(Bf16Norm, LayerNormMatchesFp32) {
  RRT_REQUIRE_CPU_BF16_BACKEND();
  for (bool with_bias : {true, false}) {
    SCOPED_TRACE("bias=" + std::to_string(with_bias));
    check_norm(true, false, with_bias, GetParam().M, GetParam().D);
  }
}

// ---- RoPE ------------------------------------------------------------------------------------

class Bf16Rope : public ::testing::TestWithParam<cases::RopeCase> {};
INSTANTIATE_TEST_SUITE_P(Table, Bf16Rope, ::testing::ValuesIn(cases::rope_cases()),
                         cases::kCaseName);

TEST_P(Bf16Rope, ForwardBackwardAndRowsMatchFp32) {
  RRT_REQUIRE_CPU_BF16_BACKEND();
  const cases::RopeCase& c = GetParam();
  CpuBackend cpu(1);
  CpuBf16Backend be(2);
  cpu.prepare(plan_for(c.T, c.rot_dim, c.Dh));
  be.prepare(plan_for(c.T, c.rot_dim, c.Dh));
  const size_t n = static_cast<size_t>(c.N * c.T * c.H * c.Dh);
  const auto x = random_values(n, 30);
  for (bool backward : {false, true}) {
    SCOPED_TRACE(backward ? "backward" : "forward");
    auto want = x;
    auto got = to_bf16(x);
    if (backward) {
      cpu.rope_backward(want.data(), c.N, c.T, c.H, c.Dh);
      be.rope_backward(got.data(), c.N, c.T, c.H, c.Dh);
    } else {
      cpu.rope_forward(want.data(), c.N, c.T, c.H, c.Dh);
      be.rope_forward(got.data(), c.N, c.T, c.H, c.Dh);
    }
    EXPECT_LE(relative_l2(to_f32(got), want), kBf16Tol);
  }
  // The engine's per-row RoPE: row i = (n, t) at its own position t.
  std::vector<int32_t> pos(static_cast<size_t>(c.N * c.T));
  for (size_t i = 0; i < pos.size(); ++i) pos[i] = static_cast<int32_t>(i % c.T);
  auto want = x;
  auto got = to_bf16(x);
  cpu.rope_rows(want.data(), pos.data(), c.N * c.T, c.H, c.Dh);
  be.rope_rows(got.data(), pos.data(), c.N * c.T, c.H, c.Dh);
  EXPECT_LE(relative_l2(to_f32(got), want), kBf16Tol) << "rope_rows";
}

// Gemma 3's second table (BackendPlan::rope_local_theta): `local` rotates with its base, which
// differs from the global table's, on both backends and in the engine's per-row RoPE.
TEST_P(Bf16Rope, LocalTableMatchesFp32AndItsOwnBase) {
  RRT_REQUIRE_CPU_BF16_BACKEND();
  const cases::RopeCase& c = GetParam();
  BackendPlan plan = plan_for(c.T, c.rot_dim, c.Dh);
  plan.rope_local_theta = 50.0;
  CpuBackend cpu(1);
  CpuBf16Backend be(2);
  cpu.prepare(plan);
  be.prepare(plan);
  const size_t n = static_cast<size_t>(c.N * c.T * c.H * c.Dh);
  const auto x = random_values(n, 31);
  auto want = x;
  ops::rope_forward<float>(want.data(), ops::RopeTable(c.T, c.rot_dim, 50.0), c.N, c.T, c.H, c.Dh);
  auto fp32 = x;
  cpu.rope_forward(fp32.data(), c.N, c.T, c.H, c.Dh, nullptr, true);
  EXPECT_EQ(fp32, want);
  auto got = to_bf16(x);
  be.rope_forward(got.data(), c.N, c.T, c.H, c.Dh, nullptr, true);
  EXPECT_LE(relative_l2(to_f32(got), want), kBf16Tol) << "forward";
  be.rope_backward(got.data(), c.N, c.T, c.H, c.Dh, nullptr, true);
  EXPECT_LE(relative_l2(to_f32(got), x), kBf16Tol) << "backward undoes forward";
  std::vector<int32_t> pos(static_cast<size_t>(c.N * c.T));
  for (size_t i = 0; i < pos.size(); ++i) pos[i] = static_cast<int32_t>(i % c.T);
  auto rows = to_bf16(x);
  be.rope_rows(rows.data(), pos.data(), c.N * c.T, c.H, c.Dh, true);
  EXPECT_LE(relative_l2(to_f32(rows), want), kBf16Tol) << "rope_rows";
  if (c.T > 1) {  // the global table rotates otherwise
    auto global = x;
    cpu.rope_forward(global.data(), c.N, c.T, c.H, c.Dh);
    EXPECT_GT(relative_l2(global, want), 1e-3);
  }
}

TEST(Bf16RopeEdge, LocalTableNeedsItsBase) {
  RRT_REQUIRE_CPU_BF16_BACKEND();
  CpuBackend cpu(1);
  CpuBf16Backend be(1);
  cpu.prepare(plan_for(4, 8, 8));
  be.prepare(plan_for(4, 8, 8));
  std::vector<float> x(32);
  auto x16 = to_bf16(x);
  EXPECT_THROW(cpu.rope_forward(x.data(), 1, 4, 1, 8, nullptr, true), Error);
  EXPECT_THROW(be.rope_forward(x16.data(), 1, 4, 1, 8, nullptr, true), Error);
}

// ---- activations and add ---------------------------------------------------------------------

class Bf16Activation : public ::testing::TestWithParam<cases::ElementCase> {};
INSTANTIATE_TEST_SUITE_P(Table, Bf16Activation, ::testing::ValuesIn(cases::element_cases()),
                         cases::kCaseName);

enum class Act { swiglu, geglu, gelu_erf, gelu_tanh, add };

void check_activation(Act a, int64_t count, int64_t offset) {
  const size_t n = static_cast<size_t>(count), total = n + static_cast<size_t>(offset);
  CpuBackend cpu(1);
  CpuBf16Backend be(2);
  const auto gate = random_values(total, 40), up = random_values(total, 41);
  const auto dout = random_values(total, 42), dg0 = random_values(total, 43);
  const auto du0 = random_values(total, 44);
  std::vector<float> out(total), dg = dg0, du = du0;
  const auto gate16 = to_bf16(gate), up16 = to_bf16(up), dout16 = to_bf16(dout);
  auto out16 = poisoned(total);
  auto dg16 = to_bf16(dg0), du16 = to_bf16(du0);
  const int64_t o = offset;
  switch (a) {
    case Act::swiglu:
      cpu.swiglu_forward(gate.data() + o, up.data() + o, out.data() + o, count);
      cpu.swiglu_backward(gate.data() + o, up.data() + o, dout.data() + o, dg.data() + o,
                          du.data() + o, count);
      be.swiglu_forward(gate16.data() + o, up16.data() + o, out16.data() + o, count);
      be.swiglu_backward(gate16.data() + o, up16.data() + o, dout16.data() + o, dg16.data() + o,
                         du16.data() + o, count);
      break;
    case Act::geglu:
      cpu.geglu_forward(gate.data() + o, up.data() + o, out.data() + o, count);
      cpu.geglu_backward(gate.data() + o, up.data() + o, dout.data() + o, dg.data() + o,
                         du.data() + o, count);
      be.geglu_forward(gate16.data() + o, up16.data() + o, out16.data() + o, count);
      be.geglu_backward(gate16.data() + o, up16.data() + o, dout16.data() + o, dg16.data() + o,
                        du16.data() + o, count);
      break;
    case Act::gelu_erf:
    case Act::gelu_tanh: {
      const bool t = a == Act::gelu_tanh;
      cpu.gelu_forward(gate.data() + o, out.data() + o, count, t);
      cpu.gelu_backward(gate.data() + o, dout.data() + o, dg.data() + o, count, t);
      be.gelu_forward(gate16.data() + o, out16.data() + o, count, t);
      be.gelu_backward(gate16.data() + o, dout16.data() + o, dg16.data() + o, count, t);
      break;
    }
    case Act::add:
      cpu.add(gate.data() + o, up.data() + o, out.data() + o, count);
      be.add(gate16.data() + o, up16.data() + o, out16.data() + o, count);
      break;
  }
  auto tail = [&](const std::vector<float>& v) {
    return std::vector<float>(v.begin() + offset, v.end());
  };
  EXPECT_LE(relative_l2(tail(to_f32(out16)), tail(out)), kBf16Tol) << "out";
  if (offset > 0) {
    EXPECT_EQ(out16[0].bits, 0xFFFF) << "wrote before the start";
  }
  if (a == Act::add) return;
  EXPECT_LE(relative_l2(tail(to_f32(dg16)), tail(dg)), kBf16Tol) << "dgate";
  if (a == Act::swiglu || a == Act::geglu) {
    EXPECT_LE(relative_l2(tail(to_f32(du16)), tail(du)), kBf16Tol) << "dup";
  }
}

TEST_P(Bf16Activation, EveryActivationAndAddMatchFp32) {
  RRT_REQUIRE_CPU_BF16_BACKEND();
  const auto names = {"swiglu", "geglu", "gelu_erf", "gelu_tanh", "add"};
  int i = 0;
  for (const char* name : names) {
    SCOPED_TRACE(name);
    check_activation(static_cast<Act>(i++), GetParam().n, GetParam().offset);
  }
}

TEST_P(Bf16Activation, ScaleMatchesFp32) {
  RRT_REQUIRE_CPU_BF16_BACKEND();
  const cases::ElementCase& c = GetParam();
  const size_t total = static_cast<size_t>(c.n + c.offset);
  CpuBackend cpu(1);
  CpuBf16Backend be(2);
  auto want = random_values(total, 45);
  auto got = to_bf16(want);
  cpu.scale(want.data() + c.offset, 0.7f, c.n);
  be.scale(got.data() + c.offset, 0.7f, c.n);
  EXPECT_LE(relative_l2(to_f32(got), want), kBf16Tol);
}

}  // namespace
}  // namespace rrt::testing
