// The early-exit / distillation loss on the GPU (ops/cuda/exit_loss.h) against the CPU op
// (ops::exit_loss<float>) on the same bf16-rounded inputs: the total and its CE / KD / SD parts,
// every exit's own means, and every gradient (dh of each exit, added onto its old value; dW, dA,
// dB, fp32, added onto theirs). Cases: each divergence with tau != 1, 3 exits with
// aggressive(0.1) weights, self-distillation, per-exit head LoRA on the intermediate exits, a
// teacher of another width, odd sizes with chunks that do not divide M, ignored rows, a loss-only
// call, frozen (null) gradients, and a bad target (an rrt::Error before any gradient changes).
// The cases are the shared op-test table's (tests/ops/op_cases.h), which the CPU op test runs
// too (with its finite differences in double).
// Tolerances (relative against the CPU; exit_loss_tol in the table):
//   kLoss     = 1e-4 on the total and the weighted CE (fp32 logits of identical inputs, fp32
//               exp/log per row, double sums over rows)
//   kTerm     = 2e-3 on KD, SD and each exit's means, floored at 1e-4 absolute (they are small
//               differences of fp32 log-probabilities)
//   kGradient = 1.5e-2 relative L2 on every gradient: dlogits and the LoRA's u = h A^T are stored
//               in bf16 before the GEMMs that read them
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "ops/cuda/exit_loss.h"
#include "ops/exit_loss.h"
#include "tests/gpu/gpu_test.h"
#include "tests/ops/op_cases.h"

namespace rrt::ops::cuda {
namespace {

using rrt::testing::DeviceBuffer;
using rrt::testing::download;
using rrt::testing::download_f32;
using rrt::testing::random_uniform;
using rrt::testing::relative_l2;
using rrt::testing::round_bf16;
using rrt::testing::to_bf16;
using rrt::testing::upload;

namespace cases = rrt::testing::op_cases;
constexpr double kLoss = cases::exit_loss_tol::kCudaLoss.rel;
constexpr double kTerm = cases::exit_loss_tol::kCudaTerm.rel;
constexpr double kTermFloor = cases::exit_loss_tol::kCudaTerm.abs;
constexpr double kGradient = cases::exit_loss_tol::kCudaGradient.rel;
constexpr int32_t kIgnore = -1;

using ExitCase = cases::ExitLossCase;

std::vector<int32_t> make_targets(int64_t M, int64_t V, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int32_t> dist(0, static_cast<int32_t>(V - 1));
  std::vector<int32_t> t(M);
  for (int64_t i = 0; i < M; ++i) t[i] = i % 4 == 1 ? kIgnore : dist(rng);
  return t;
}

// Relative difference with an absolute floor.
double rel(double have, double want, double floor = kTermFloor) {
  return std::fabs(have - want) / std::max(std::fabs(want), floor);
}

// Where one side's operands live: host fp32 for the CPU op; device bf16 (dh too) with fp32
// parameter gradients for the GPU one. The teacher's and the LoRA's are read only where the case
// has them.
template <typename Value, typename ParamGrad>
struct Operands {
  const Value* const* h = nullptr;       // [E] -> [M, D]
  const Value* W = nullptr;              // [V, D]
  const int32_t* targets = nullptr;      // [M]
  const Value* const* lora_A = nullptr;  // [E] -> [R, D] or null
  const Value* const* lora_B = nullptr;  // [E] -> [V, R] or null
  const Value* teacher_h = nullptr;      // [M, Dt]
  const Value* teacher_W = nullptr;      // [V, Dt]
  Value* const* dh = nullptr;            // [E] -> [M, D]
  ParamGrad* dW = nullptr;               // [V, D]
  ParamGrad* const* dA = nullptr;        // [E] -> [R, D] or null
  ParamGrad* const* dB = nullptr;        // [E] -> [V, R] or null
};

// Per-exit means, [E] each, as both ops report them.
struct ExitMeans {
  std::vector<double> ce, kd, sd;
  explicit ExitMeans(int64_t E) : ce(E), kd(E), sd(E) {}
};

// One case's arguments for either op, filled in one place so that the CPU and the GPU call cannot
// drift apart; only the workspace, whose form differs, is the caller's.
template <typename Args, typename Value, typename ParamGrad>
Args case_args(const ExitCase& c, const Operands<Value, ParamGrad>& in,
               const std::vector<double>& weights, float weight, ExitMeans& out) {
  Args a;
  a.M = c.M;
  a.D = c.D;
  a.V = c.V;
  a.exits = c.E;
  a.h = in.h;
  a.exit_weights = weights.data();
  a.W = in.W;
  a.targets = in.targets;
  a.ignore_index = kIgnore;
  a.head_lora_rank = c.R;
  a.lora_A = c.R > 0 ? in.lora_A : nullptr;
  a.lora_B = c.R > 0 ? in.lora_B : nullptr;
  if (c.teacher) {
    a.teacher_h = in.teacher_h;
    a.teacher_W = in.teacher_W;
    a.teacher_D = c.teacher_D;
  }
  a.divergence = c.divergence;
  a.temperature = c.tau;
  a.alpha = c.alpha;
  a.self_distill = c.self_distill;
  a.softcap = c.softcap;
  a.teacher_softcap = c.teacher_softcap;
  if (c.backward) {
    a.dh = in.dh;
    a.dW = c.frozen_head ? nullptr : in.dW;
    a.dA = in.dA;
    a.dB = in.dB;
  }
  a.weight = weight;
  a.chunk = c.chunk;
  a.exit_ce = out.ce.data();
  a.exit_kd = out.kd.data();
  a.exit_sd = out.sd.data();
  return a;
}

class ExitLossGpu : public ::testing::TestWithParam<ExitCase> {};

TEST_P(ExitLossGpu, TermsAndGradientsMatchTheCpu) {
  RRT_REQUIRE_GPU();
  const ExitCase& c = GetParam();
  const int64_t M = c.M, D = c.D, V = c.V, E = c.E, R = c.R, Dt = c.teacher_D;
  uint32_t seed = 100;
  // Logits of order 1: h uniform in (-1, 1), W in (-0.5, 0.5) for D ~ 40.
  std::vector<std::vector<float>> h(E), dh0(E), A(E), B(E), dA0(E), dB0(E);
  for (int64_t k = 0; k < E; ++k) {
    h[k] = round_bf16(random_uniform(M * D, seed++, 1.f));
    // Small next to the added gradient (the 0.1-weighted exits add ~1e-3): a bf16 sum of two
    // values of one size rounds the smaller one by 2^-9 of the larger.
    dh0[k] = round_bf16(random_uniform(M * D, seed++, 1e-4f));
    if (c.has_adapter(k)) {  // the table's cases: on every exit, or the intermediate ones
      A[k] = round_bf16(random_uniform(R * D, seed++, 0.3f));
      B[k] = round_bf16(random_uniform(V * R, seed++, 0.3f));
      dA0[k] = random_uniform(R * D, seed++, 0.01f);
      dB0[k] = random_uniform(V * R, seed++, 0.01f);
    }
  }
  const auto W = round_bf16(random_uniform(V * D, seed++, 0.5f));
  const auto dW0 = random_uniform(V * D, seed++, 0.01f);
  const auto th =
      c.teacher ? round_bf16(random_uniform(M * Dt, seed++, 1.f)) : std::vector<float>();
  const auto tW =
      c.teacher ? round_bf16(random_uniform(V * Dt, seed++, 0.5f)) : std::vector<float>();
  const auto targets = make_targets(M, V, seed++);
  const std::vector<double>& weights = c.weights;
  const float weight = 0.5f;

  // CPU reference on the same values.
  std::vector<std::vector<float>> cdh = dh0, cdA = dA0, cdB = dB0;
  std::vector<float> cdW = dW0;
  std::vector<const float*> ch(E), cA(E, nullptr), cB(E, nullptr);
  std::vector<float*> cdh_p(E), cdA_p(E, nullptr), cdB_p(E, nullptr);
  for (int64_t k = 0; k < E; ++k) {
    ch[k] = h[k].data();
    cdh_p[k] = cdh[k].data();
    if (!A[k].empty()) {
      cA[k] = A[k].data();
      cB[k] = B[k].data();
      cdA_p[k] = cdA[k].data();
      cdB_p[k] = cdB[k].data();
    }
  }
  ExitMeans cpu_means(E), gpu_means(E);
  const Operands<float, float> cpu_in{.h = ch.data(),
                                      .W = W.data(),
                                      .targets = targets.data(),
                                      .lora_A = cA.data(),
                                      .lora_B = cB.data(),
                                      .teacher_h = th.data(),
                                      .teacher_W = tW.data(),
                                      .dh = cdh_p.data(),
                                      .dW = cdW.data(),
                                      .dA = cdA_p.data(),
                                      .dB = cdB_p.data()};
  auto ca = case_args<ops::ExitLossArgs<float>>(c, cpu_in, weights, weight, cpu_means);
  std::vector<float> cws(ops::exit_loss_workspace_elems(V, c.chunk, c.teacher, c.self_distill, R));
  ca.workspace = cws.data();
  const ExitLossResult want = ops::exit_loss<float>(ca);

  // The GPU on bf16 copies.
  std::vector<std::unique_ptr<DeviceBuffer<bf16>>> gh, gdh, gA, gB;
  std::vector<std::unique_ptr<DeviceBuffer<float>>> gdA, gdB;
  std::vector<const bf16*> gh_p(E), gA_p(E, nullptr), gB_p(E, nullptr);
  std::vector<bf16*> gdh_p(E);
  std::vector<float*> gdA_p(E, nullptr), gdB_p(E, nullptr);
  for (int64_t k = 0; k < E; ++k) {
    gh.push_back(std::make_unique<DeviceBuffer<bf16>>(M * D));
    upload(*gh.back(), to_bf16(h[k]));
    gh_p[k] = gh.back()->get();
    gdh.push_back(std::make_unique<DeviceBuffer<bf16>>(M * D));
    upload(*gdh.back(), to_bf16(dh0[k]));
    gdh_p[k] = gdh.back()->get();
    if (!A[k].empty()) {
      gA.push_back(std::make_unique<DeviceBuffer<bf16>>(R * D));
      upload(*gA.back(), to_bf16(A[k]));
      gA_p[k] = gA.back()->get();
      gB.push_back(std::make_unique<DeviceBuffer<bf16>>(V * R));
      upload(*gB.back(), to_bf16(B[k]));
      gB_p[k] = gB.back()->get();
      gdA.push_back(std::make_unique<DeviceBuffer<float>>(R * D));
      upload(*gdA.back(), dA0[k]);
      gdA_p[k] = gdA.back()->get();
      gdB.push_back(std::make_unique<DeviceBuffer<float>>(V * R));
      upload(*gdB.back(), dB0[k]);
      gdB_p[k] = gdB.back()->get();
    }
  }
  DeviceBuffer<bf16> gW(V * D), gth(std::max<int64_t>(M * Dt, 1)),
      gtW(std::max<int64_t>(V * Dt, 1));
  upload(gW, to_bf16(W));
  if (c.teacher) {
    upload(gth, to_bf16(th));
    upload(gtW, to_bf16(tW));
  }
  DeviceBuffer<float> gdW(V * D);
  upload(gdW, dW0);
  DeviceBuffer<int32_t> gt(M);
  upload(gt, targets);
  const size_t ws_bytes = exit_loss_workspace_bytes(V, c.chunk, E, c.teacher, c.self_distill, R);
  DeviceBuffer<char> gws(ws_bytes);
  rrt::testing::poison(gws);  // nothing may be read before it is written

  GemmContext ctx;
  const Operands<bf16, float> gpu_in{.h = gh_p.data(),
                                     .W = gW.get(),
                                     .targets = gt.get(),
                                     .lora_A = gA_p.data(),
                                     .lora_B = gB_p.data(),
                                     .teacher_h = gth.get(),
                                     .teacher_W = gtW.get(),
                                     .dh = gdh_p.data(),
                                     .dW = gdW.get(),
                                     .dA = gdA_p.data(),
                                     .dB = gdB_p.data()};
  auto ga = case_args<ExitLossArgs>(c, gpu_in, weights, weight, gpu_means);
  ga.workspace = gws.get();
  ga.workspace_bytes = ws_bytes;
  const ExitLossResult have = exit_loss(ctx, ga);

  EXPECT_EQ(have.counted, want.counted);
  ASSERT_GT(want.loss, 0);
  EXPECT_LT(rel(have.loss, want.loss), kLoss) << have.loss << " vs " << want.loss;
  EXPECT_LT(rel(have.ce, want.ce), kLoss) << have.ce << " vs " << want.ce;
  EXPECT_LT(rel(have.kd, want.kd), kTerm) << have.kd << " vs " << want.kd;
  EXPECT_LT(rel(have.sd, want.sd), kTerm) << have.sd << " vs " << want.sd;
  if (c.teacher) EXPECT_GT(want.kd, 0) << "the KD term is zero: the case proves nothing";
  if (c.self_distill && E > 1) EXPECT_GT(want.sd, 0) << "the SD term is zero";
  for (int64_t k = 0; k < E; ++k) {
    EXPECT_LT(rel(gpu_means.ce[k], cpu_means.ce[k]), kTerm) << "exit " << k;
    EXPECT_LT(rel(gpu_means.kd[k], cpu_means.kd[k]), kTerm) << "exit " << k;
    EXPECT_LT(rel(gpu_means.sd[k], cpu_means.sd[k]), kTerm) << "exit " << k;
  }
  // Gradients as what was added: (after - before) on both sides.
  auto added = [](const std::vector<float>& after, const std::vector<float>& before) {
    std::vector<float> d(after.size());
    for (size_t i = 0; i < d.size(); ++i) d[i] = after[i] - before[i];
    return d;
  };
  double worst = 0;
  for (int64_t k = 0; k < E; ++k) {
    const auto got = download_f32(*gdh[k]);
    if (!c.backward) {
      EXPECT_EQ(got, dh0[k]) << "a loss-only call changed dh of exit " << k;
      continue;
    }
    const double e = relative_l2(added(got, dh0[k]), added(cdh[k], dh0[k]));
    worst = std::max(worst, e);
    EXPECT_LT(e, kGradient) << "dh of exit " << k;
  }
  if (c.backward) {
    const auto got_dW = download(gdW);
    if (c.frozen_head) {
      EXPECT_EQ(got_dW, dW0) << "a frozen head's gradient changed";
    } else {
      const double e = relative_l2(added(got_dW, dW0), added(cdW, dW0));
      worst = std::max(worst, e);
      EXPECT_LT(e, kGradient) << "dW";
    }
    size_t j = 0;
    for (int64_t k = 0; k < E; ++k) {
      if (A[k].empty()) continue;
      const double ea = relative_l2(added(download(*gdA[j]), dA0[k]), added(cdA[k], dA0[k]));
      const double eb = relative_l2(added(download(*gdB[j]), dB0[k]), added(cdB[k], dB0[k]));
      ++j;
      worst = std::max({worst, ea, eb});
      EXPECT_LT(ea, kGradient) << "dA of exit " << k;
      EXPECT_LT(eb, kGradient) << "dB of exit " << k;
    }
  }
  std::printf(
      "[exit_loss %s] loss %.6f vs %.6f (ce %.5f kd %.5f sd %.5f), worst gradient %.2e "
      "(tol %.1e)\n",
      c.name.c_str(), have.loss, want.loss, want.ce, want.kd, want.sd, worst, kGradient);
}

INSTANTIATE_TEST_SUITE_P(Table, ExitLossGpu, ::testing::ValuesIn(cases::exit_loss_cases()),
                         cases::kCaseName);

TEST(ExitLossGpuErrors, BadTargetThrowsBeforeAnyGradientChanges) {
  RRT_REQUIRE_GPU();
  const int64_t M = 8, D = 16, V = 50;
  const auto h = round_bf16(random_uniform(M * D, 1, 1.f));
  const auto W = round_bf16(random_uniform(V * D, 2, 0.5f));
  std::vector<int32_t> targets(M, 3);
  targets[5] = static_cast<int32_t>(V);  // one past the vocabulary
  DeviceBuffer<bf16> gh(M * D), gW(V * D), gdh(M * D);
  DeviceBuffer<float> gdW(V * D);
  DeviceBuffer<int32_t> gt(M);
  upload(gh, to_bf16(h));
  upload(gW, to_bf16(W));
  upload(gt, targets);
  RRT_CUDA_CHECK(cudaMemset(gdh.get(), 0, sizeof(bf16) * M * D));
  RRT_CUDA_CHECK(cudaMemset(gdW.get(), 0, sizeof(float) * V * D));
  const size_t bytes = exit_loss_workspace_bytes(V, 4, 1, false, false, 0);
  DeviceBuffer<char> ws(bytes);
  GemmContext ctx;
  const bf16* hp[] = {gh.get()};
  bf16* dhp[] = {gdh.get()};
  const double w[] = {1.0};
  ExitLossArgs a;
  a.M = M;
  a.D = D;
  a.V = V;
  a.h = hp;
  a.exit_weights = w;
  a.W = gW.get();
  a.targets = gt.get();
  a.dh = dhp;
  a.dW = gdW.get();
  a.workspace = ws.get();
  a.workspace_bytes = bytes;
  a.chunk = 4;
  try {
    exit_loss(ctx, a);
    ADD_FAILURE() << "a target outside the vocabulary was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("at row 5"), std::string::npos) << e.what();
  }
  for (float x : download(gdW)) ASSERT_EQ(x, 0.f) << "dW changed before the error";
  a.workspace_bytes = bytes - 1;
  targets[5] = 1;
  upload(gt, targets);
  EXPECT_THROW(exit_loss(ctx, a), Error) << "a short workspace was accepted";
}

}  // namespace
}  // namespace rrt::ops::cuda
