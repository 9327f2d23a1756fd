// The CPU bf16 backend's chunked head losses (ops/cpu_bf16/head_loss.cpp) against the fp32
// CpuBackend on the shared op-test table (tests/ops/op_cases.h): the plain CE cases and every
// exit-loss case (each divergence, three exits, self-distillation, head adapters, a teacher of
// another width, ignored rows, chunks that do not divide M, loss-only calls, a frozen head), on
// bf16-representable inputs. Both run the CUDA scheme (bf16 GEMMs, fp32 softmax, bf16 dlogits).
// Tolerances (cross_entropy_tol's and exit_loss_tol's kCpuBf16 entries): the loss and the weighted
// CE 1e-4 relative, KD / SD / each exit's means 2e-3 with a 1e-4 floor (shared with the CUDA
// entries); CE dh and dW 1e-2 relative L2 of the update (the CUDA entry: bf16 dlogits); exit-loss
// gradients 1.5e-2 (the CUDA entry, same argument).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "core/error.h"
#include "ops/cpu/backend.h"
#include "ops/cpu_bf16/backend.h"
#include "tests/ops/cpu_bf16/bf16_test.h"
#include "tests/ops/op_cases.h"

namespace rrt::testing {
namespace {

namespace cases = op_cases;

float rms(const std::vector<float>& v) {
  double sq = 0;
  for (float x : v) sq += double(x) * x;
  return static_cast<float>(std::sqrt(sq / static_cast<double>(v.empty() ? 1 : v.size())));
}

inline float as_float(float x) { return x; }
inline float as_float(bf16 x) { return x.to_float(); }

double rel(double have, double want, double floor) {
  return std::fabs(have - want) / std::max(std::fabs(want), floor);
}

class Bf16CrossEntropy : public ::testing::TestWithParam<cases::CrossEntropyCase> {};
INSTANTIATE_TEST_SUITE_P(Table, Bf16CrossEntropy, ::testing::ValuesIn(cases::cross_entropy_cases()),
                         cases::kCaseName);

TEST_P(Bf16CrossEntropy, LossAndGradientsMatchFp32) {
  RRT_REQUIRE_CPU_BF16_BACKEND();
  namespace tol = cases::cross_entropy_tol;
  const cases::CrossEntropyCase& c = GetParam();
  const int64_t M = c.M, D = c.D, V = c.V;
  CpuBackend cpu(1);
  CpuBf16Backend be(2);
  const auto h = random_uniform(M * D, 1), W = random_uniform(V * D, 2, 0.5f);
  const auto dW0 = random_uniform(V * D, 4, 0.01f);
  std::vector<char> ws(cpu.lm_head_workspace_bytes(V, c.chunk));
  // dh: the fp32 update alone (into zeros); the bf16 one onto a start of its size.
  std::vector<float> dh(M * D);
  auto dW = dW0;
  const float w = static_cast<float>(c.weight);
  const auto want =
      cpu.lm_head_cross_entropy(h.data(), W.data(), c.targets.data(), dh.data(), dW.data(), M, D, V,
                                c.ignore_index, w, ws.data(), ws.size(), c.chunk, c.softcap);
  const auto dh0 = random_uniform(M * D, 3, rms(dh));
  std::vector<char> ws16(be.lm_head_workspace_bytes(V, c.chunk));
  auto dh16 = to_bf16(dh0);
  auto dW32 = dW0;
  const auto got = be.lm_head_cross_entropy(to_bf16(h).data(), to_bf16(W).data(), c.targets.data(),
                                            dh16.data(), dW32.data(), M, D, V, c.ignore_index, w,
                                            ws16.data(), ws16.size(), c.chunk, c.softcap);
  EXPECT_EQ(got.counted, want.counted);
  EXPECT_LT(rel(got.mean_loss, want.mean_loss, 1e-6), tol::kCpuBf16Loss.rel)
      << got.mean_loss << " vs " << want.mean_loss;
  EXPECT_LE(relative_l2(minus(to_f32(dh16), dh0), dh), tol::kCpuBf16Dh.rel) << "dh";
  EXPECT_LE(relative_l2(minus(dW32, dW0), minus(dW, dW0)), tol::kCpuBf16DW.rel) << "dW";
  // Loss only (evaluation): the same loss, nothing written.
  const auto eval = be.lm_head_cross_entropy(to_bf16(h).data(), to_bf16(W).data(), c.targets.data(),
                                             nullptr, nullptr, M, D, V, c.ignore_index, 1.f,
                                             ws16.data(), ws16.size(), c.chunk, c.softcap);
  EXPECT_DOUBLE_EQ(eval.mean_loss, got.mean_loss);
}

// Logits hundreds apart (a near one-hot softmax): the fp32 exp below the clamp of -87 and the
// row maximum must still give the fp32 op's loss and gradients.
TEST(Bf16CrossEntropyEdges, WideLogitRangeMatchesFp32) {
  RRT_REQUIRE_CPU_BF16_BACKEND();
  namespace tol = cases::cross_entropy_tol;
  const int64_t M = 6, D = 16, V = 133, chunk = 4;
  const std::vector<int32_t> targets = {5, 0, -100, 132, 77, 31};
  CpuBackend cpu(1);
  CpuBf16Backend be(2);
  const auto h = random_uniform(M * D, 81, 6.f), W = random_uniform(V * D, 82, 6.f);
  std::vector<char> ws(cpu.lm_head_workspace_bytes(V, chunk));
  std::vector<float> dh(M * D), dW(V * D);
  const auto want =
      cpu.lm_head_cross_entropy(h.data(), W.data(), targets.data(), dh.data(), dW.data(), M, D, V,
                                -100, 1.f, ws.data(), ws.size(), chunk);
  std::vector<char> ws16(be.lm_head_workspace_bytes(V, chunk));
  std::vector<bf16> dh16(M * D);
  std::vector<float> dW32(V * D);
  const auto got =
      be.lm_head_cross_entropy(to_bf16(h).data(), to_bf16(W).data(), targets.data(), dh16.data(),
                               dW32.data(), M, D, V, -100, 1.f, ws16.data(), ws16.size(), chunk);
  EXPECT_GT(want.mean_loss, 10.0) << "the case must reach far into exp's tail";
  EXPECT_LT(rel(got.mean_loss, want.mean_loss, 1e-6), tol::kCpuBf16Loss.rel)
      << got.mean_loss << " vs " << want.mean_loss;
  EXPECT_LE(relative_l2(to_f32(dh16), dh), tol::kCpuBf16Dh.rel) << "dh";
  EXPECT_LE(relative_l2(dW32, dW), tol::kCpuBf16DW.rel) << "dW";
}

// The workspace holds the chunk's fp32 logits and its bf16 dlogits; a smaller one is refused
// with the size it needs, and a target outside the vocabulary names its row.
TEST(Bf16CrossEntropyEdges, RefusesSmallWorkspaceAndBadTargets) {
  RRT_REQUIRE_CPU_BF16_BACKEND();
  const int64_t M = 3, D = 8, V = 10, chunk = 2;
  CpuBf16Backend be(1);
  const auto h = to_bf16(random_uniform(M * D, 1)), W = to_bf16(random_uniform(V * D, 2));
  std::vector<int32_t> targets = {1, 2, 3};
  const size_t need = be.lm_head_workspace_bytes(V, chunk);
  EXPECT_GE(need, sizeof(float) * V * chunk + sizeof(bf16) * V * chunk);
  std::vector<char> ws(need);
  std::vector<bf16> dh(M * D);
  std::vector<float> dW(V * D);
  EXPECT_THROW(be.lm_head_cross_entropy(h.data(), W.data(), targets.data(), dh.data(), dW.data(), M,
                                        D, V, -100, 1.f, ws.data(), need - 1, chunk),
               Error);
  targets[2] = static_cast<int32_t>(V);
  EXPECT_THROW(be.lm_head_cross_entropy(h.data(), W.data(), targets.data(), dh.data(), dW.data(), M,
                                        D, V, -100, 1.f, ws.data(), need, chunk),
               Error);
}

class Bf16ExitLoss : public ::testing::TestWithParam<cases::ExitLossCase> {};
INSTANTIATE_TEST_SUITE_P(Table, Bf16ExitLoss, ::testing::ValuesIn(cases::exit_loss_cases()),
                         cases::kCaseName);

TEST_P(Bf16ExitLoss, LossTermsAndGradientsMatchFp32) {
  RRT_REQUIRE_CPU_BF16_BACKEND();
  namespace tol = cases::exit_loss_tol;
  const cases::ExitLossCase& c = GetParam();
  const int64_t E = c.E, M = c.M, D = c.D, V = c.V, R = c.R, Dt = c.teacher_D;
  std::mt19937 rng(7);
  std::uniform_int_distribution<int32_t> pick(0, static_cast<int32_t>(V - 1));
  std::vector<int32_t> targets(M);
  for (int64_t i = 0; i < M; ++i) targets[i] = i % 4 == 1 ? -1 : pick(rng);
  // Per exit: h, dh (start), adapter A, B and their gradients (start).
  std::vector<std::vector<float>> h(E), dh0(E), A(E), B(E), dA0(E), dB0(E);
  for (int64_t k = 0; k < E; ++k) {
    h[k] = random_uniform(M * D, 10 + k);
    dh0[k] = random_uniform(M * D, 20 + k, 0.01f);
    if (c.has_adapter(k)) {
      A[k] = random_uniform(R * D, 30 + k, 0.5f);
      B[k] = random_uniform(V * R, 40 + k, 0.5f);
      dA0[k] = random_uniform(R * D, 50 + k, 0.01f);
      dB0[k] = random_uniform(V * R, 60 + k, 0.01f);
    }
  }
  const auto W = random_uniform(V * D, 70, 0.5f), dW0 = random_uniform(V * D, 71, 0.01f);
  const auto th = random_uniform(M * Dt, 72), tW = random_uniform(V * Dt, 73, 0.5f);

  // The same call on either backend: T is float or bf16; the gradients are fp32 on both except dh.
  auto run = [&](auto& be, auto convert, std::vector<std::vector<float>>& dh_out,
                 std::vector<float>& dW, std::vector<std::vector<float>>& dA,
                 std::vector<std::vector<float>>& dB, std::vector<double>& terms) {
    using T = typename std::decay_t<decltype(be)>::Act;
    std::vector<std::vector<T>> hs(E), dhs(E), As(E), Bs(E);
    std::vector<const T*> hp(E), Ap(E, nullptr), Bp(E, nullptr);
    std::vector<T*> dhp(E);
    std::vector<float*> dAp(E, nullptr), dBp(E, nullptr);
    for (int64_t k = 0; k < E; ++k) {
      hs[k] = convert(h[k]);
      dhs[k] = convert(dh0[k]);
      hp[k] = hs[k].data();
      dhp[k] = dhs[k].data();
      if (c.has_adapter(k)) {
        As[k] = convert(A[k]);
        Bs[k] = convert(B[k]);
        Ap[k] = As[k].data();
        Bp[k] = Bs[k].data();
        dAp[k] = dA[k].data();
        dBp[k] = dB[k].data();
      }
    }
    const auto W_ = convert(W), th_ = convert(th), tW_ = convert(tW);
    HeadLossArgs<T> a;
    a.M = M, a.D = D, a.V = V, a.exits = E;
    a.h = hp.data();
    a.exit_weights = c.weights.data();
    a.W = W_.data();
    a.targets = targets.data();
    a.ignore_index = -1;
    a.head_lora_rank = R;
    a.lora_A = R > 0 ? Ap.data() : nullptr;
    a.lora_B = R > 0 ? Bp.data() : nullptr;
    if (c.teacher) {
      a.teacher_h = th_.data();
      a.teacher_W = tW_.data();
      a.teacher_D = Dt;
    }
    a.divergence = c.divergence;
    a.temperature = c.tau;
    a.softcap = c.softcap;
    a.teacher_softcap = c.teacher_softcap;
    a.alpha = c.alpha;
    a.self_distill = c.self_distill;
    if (c.backward) {
      a.dh = dhp.data();
      a.dW = c.frozen_head ? nullptr : dW.data();
      a.dA = R > 0 ? dAp.data() : nullptr;
      a.dB = R > 0 ? dBp.data() : nullptr;
    }
    a.weight = 0.5f;
    std::vector<char> ws(be.exit_loss_workspace_bytes(V, c.chunk, E, c.teacher, c.self_distill, R));
    a.workspace = ws.data();
    a.workspace_bytes = ws.size();
    a.chunk = c.chunk;
    std::vector<double> ce(E), kd(E), sd(E);
    a.exit_ce = ce.data();
    a.exit_kd = kd.data();
    a.exit_sd = sd.data();
    const ops::ExitLossResult r = be.exit_loss(a);
    terms = {r.loss, r.ce, r.kd, r.sd};
    for (int64_t k = 0; k < E; ++k) {
      terms.insert(terms.end(), {ce[k], kd[k], sd[k]});
      std::vector<float> f(M * D);
      for (int64_t i = 0; i < M * D; ++i) f[i] = as_float(dhs[k][i]);
      dh_out[k] = f;
    }
  };
  auto grads = [&](std::vector<std::vector<float>>& dA, std::vector<std::vector<float>>& dB) {
    dA = dA0;
    dB = dB0;
  };
  // dh: the fp32 update alone (into zeros); the bf16 one onto starts of its size.
  for (auto& d : dh0) std::fill(d.begin(), d.end(), 0.f);
  std::vector<std::vector<float>> dh_w(E), dh_g(E), dA_w, dB_w, dA_g, dB_g;
  std::vector<float> dW_w = dW0, dW_g = dW0;
  std::vector<double> want, got;
  grads(dA_w, dB_w);
  grads(dA_g, dB_g);
  CpuBackend cpu(1);
  CpuBf16Backend be(2);
  run(
      cpu, [](const std::vector<float>& v) { return v; }, dh_w, dW_w, dA_w, dB_w, want);
  for (int64_t k = 0; k < E; ++k) dh0[k] = random_uniform(M * D, 80 + k, rms(dh_w[k]) + 1e-6f);
  run(
      be, [](const std::vector<float>& v) { return to_bf16(v); }, dh_g, dW_g, dA_g, dB_g, got);

  const char* names[] = {"loss", "ce", "kd", "sd"};
  for (size_t i = 0; i < want.size(); ++i) {
    const bool main = i < 2;  // the total and the weighted CE
    const double t = main ? tol::kCpuBf16Loss.rel : tol::kCpuBf16Term.rel;
    const double floor = main ? 1e-6 : tol::kCpuBf16Term.abs;
    EXPECT_LT(rel(got[i], want[i], floor), t)
        << (i < 4 ? names[i] : "exit term") << " #" << i << ": " << got[i] << " vs " << want[i];
  }
  if (!c.backward) return;
  for (int64_t k = 0; k < E; ++k) {
    EXPECT_LE(relative_l2(minus(dh_g[k], dh0[k]), dh_w[k]), tol::kCpuBf16Dh.rel)
        << "dh of exit " << k;
    if (!c.has_adapter(k)) continue;
    EXPECT_LE(relative_l2(minus(dA_g[k], dA0[k]), minus(dA_w[k], dA0[k])), tol::kCpuBf16Grad.rel)
        << "dA of exit " << k;
    EXPECT_LE(relative_l2(minus(dB_g[k], dB0[k]), minus(dB_w[k], dB0[k])), tol::kCpuBf16Grad.rel)
        << "dB of exit " << k;
  }
  if (c.frozen_head)
    EXPECT_EQ(dW_g, dW0) << "a frozen head got a gradient";
  else
    EXPECT_LE(relative_l2(minus(dW_g, dW0), minus(dW_w, dW0)), tol::kCpuBf16Grad.rel) << "dW";
}

}  // namespace
}  // namespace rrt::testing
