// Chunked early-exit + distillation loss: every term against a naive full-logit reference in
// long double, gradients of h_k, W and the head LoRA by finite differences for every divergence
// and option (teacher or not, self-distillation, LoRA, ignored rows, chunks that do not divide
// M), chunk-size invariance, the single-exit case equal to lm_head_cross_entropy, and the
// scratch bound.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "core/error.h"
#include "ops/cross_entropy.h"
#include "ops/exit_loss.h"
#include "tests/ops/gradcheck.h"
#include "tests/ops/op_cases.h"

namespace rrt::ops {
namespace {

using testing::expect_near_all;
using testing::random_vector;

namespace cases = testing::op_cases;
namespace tol = cases::exit_loss_tol;
using Case = cases::ExitLossCase;

constexpr int64_t kDt = 4;  // the teacher width of the equal-teacher test

const Case& named(const std::string& name) {
  static const std::vector<Case> all = cases::exit_loss_cases();
  return cases::find_case(all, name);
}

// The shared table (tests/ops/op_cases.h): every case runs on every backend.
class ExitLoss : public ::testing::TestWithParam<Case> {};
INSTANTIATE_TEST_SUITE_P(Table, ExitLoss, ::testing::ValuesIn(cases::exit_loss_cases()),
                         cases::kCaseName);

std::vector<int32_t> targets_for(const Case& c) {
  std::vector<int32_t> t(c.M);
  for (int64_t i = 0; i < c.M; ++i) t[i] = static_cast<int32_t>((i * 7 + 3) % c.V);
  if (c.M > 2) t[2] = -1;  // an ignored row
  if (c.M > 6) t[6] = -1;
  return t;
}

// Where each input's gradient sits in the list grad_params returns: h_0..h_{E-1}, then W
// (unless the head is frozen), then A and B of the exits with an adapter.
struct GradSlots {
  int64_t W = -1;
  std::vector<int64_t> A, B;  // -1: no adapter on that exit
};
GradSlots grad_slots(const Case& c) {
  GradSlots s;
  int64_t next = c.E;
  if (!c.frozen_head) s.W = next++;
  s.A.assign(c.E, -1);
  s.B.assign(c.E, -1);
  for (int64_t k = 0; k < c.E; ++k)
    if (c.has_adapter(k)) s.A[k] = next++;
  for (int64_t k = 0; k < c.E; ++k)
    if (c.has_adapter(k)) s.B[k] = next++;
  return s;
}

// The inputs of one case, all in double.
struct Inputs {
  std::vector<std::vector<double>> h, A, B;
  std::vector<double> W, th, tW;
  std::vector<int32_t> targets;
};

Inputs make_inputs(const Case& c, uint64_t seed) {
  Inputs in;
  in.A.resize(c.E);
  in.B.resize(c.E);
  for (int64_t k = 0; k < c.E; ++k) {
    in.h.push_back(random_vector(c.M * c.D, seed + 10 * k + 1));
    if (c.has_adapter(k)) {
      in.A[k] = random_vector(c.R * c.D, seed + 10 * k + 2, 0.5);
      in.B[k] = random_vector(c.V * c.R, seed + 10 * k + 3, 0.5);
    }
  }
  in.W = random_vector(c.V * c.D, seed + 100, 0.7);
  if (c.teacher) {
    in.th = random_vector(c.M * c.teacher_D, seed + 101);
    in.tW = random_vector(c.V * c.teacher_D, seed + 102, 0.8);
  }
  in.targets = targets_for(c);
  return in;
}

struct Output {
  ExitLossResult result;
  std::vector<double> ce, kd, sd;
};

// Runs the op; grads (when non-null) are laid out as grad_slots says.
template <typename S>
Output run(const Case& c, const std::vector<std::vector<S>>& h, const std::vector<S>& W,
           const std::vector<std::vector<S>>& A, const std::vector<std::vector<S>>& B,
           const std::vector<S>& th, const std::vector<S>& tW, const std::vector<int32_t>& targets,
           std::vector<std::vector<S>>* grads, S weight = 1, int64_t chunk = 0) {
  if (chunk == 0) chunk = c.chunk;
  const GradSlots slots = grad_slots(c);
  std::vector<const S*> hp, Ap(c.E, nullptr), Bp(c.E, nullptr);
  std::vector<S*> dh, dA(c.E, nullptr), dB(c.E, nullptr);
  for (int64_t k = 0; k < c.E; ++k) {
    hp.push_back(h[k].data());
    if (c.has_adapter(k)) {
      Ap[k] = A[k].data();
      Bp[k] = B[k].data();
    }
    if (grads) {
      dh.push_back((*grads)[k].data());
      if (c.has_adapter(k)) {
        dA[k] = (*grads)[slots.A[k]].data();
        dB[k] = (*grads)[slots.B[k]].data();
      }
    }
  }
  std::vector<S> workspace(exit_loss_workspace_elems(c.V, chunk, c.teacher, c.self_distill, c.R));
  Output out;
  out.ce.resize(c.E);
  out.kd.resize(c.E);
  out.sd.resize(c.E);
  ExitLossArgs<S> a;
  a.M = c.M, a.D = c.D, a.V = c.V, a.exits = c.E;
  a.h = hp.data();
  a.exit_weights = c.weights.data();
  a.W = W.data();
  a.targets = targets.data();
  a.ignore_index = -1;
  if (c.R > 0) {
    a.head_lora_rank = c.R;
    a.head_lora_scale = S(1.5);
    a.lora_A = Ap.data();
    a.lora_B = Bp.data();
  }
  if (c.teacher) {
    a.teacher_h = th.data();
    a.teacher_W = tW.data();
    a.teacher_D = c.teacher_D;
  }
  a.divergence = c.divergence;
  a.temperature = c.tau;
  a.alpha = c.alpha;
  a.self_distill = c.self_distill;
  a.softcap = c.softcap;
  a.teacher_softcap = c.teacher_softcap;
  if (grads) {
    a.dh = dh.data();
    a.dW = c.frozen_head ? nullptr : (*grads)[slots.W].data();
    if (c.R > 0) {
      a.dA = dA.data();
      a.dB = dB.data();
    }
  }
  a.weight = weight;
  a.workspace = workspace.data();
  a.chunk = chunk;
  a.exit_ce = out.ce.data();
  a.exit_kd = out.kd.data();
  a.exit_sd = out.sd.data();
  out.result = exit_loss(a);
  return out;
}

Output run(const Case& c, const Inputs& in, std::vector<std::vector<double>>* grads = nullptr,
           double weight = 1, int64_t chunk = 0) {
  return run<double>(c, in.h, in.W, in.A, in.B, in.th, in.tW, in.targets, grads, weight, chunk);
}

// ---- Naive reference: full logits, straight from the formulas in ops/exit_loss.h ------------

using LD = long double;

std::vector<LD> logits_row(const std::vector<double>& h, const std::vector<double>& W,
                           const std::vector<double>* A, const std::vector<double>* B, int64_t i,
                           int64_t D, int64_t V, int64_t R, LD scale) {
  std::vector<LD> z(V, 0), u(R, 0);
  for (int64_t r = 0; r < R; ++r)
    for (int64_t d = 0; d < D; ++d) u[r] += static_cast<LD>(h[i * D + d]) * (*A)[r * D + d];
  for (int64_t v = 0; v < V; ++v) {
    for (int64_t d = 0; d < D; ++d) z[v] += static_cast<LD>(h[i * D + d]) * W[v * D + d];
    for (int64_t r = 0; r < R; ++r) z[v] += scale * u[r] * (*B)[v * R + r];
  }
  return z;
}

// The final logit soft-cap, cap tanh(z / cap) (cap 0: z).
std::vector<LD> capped(std::vector<LD> z, double cap) {
  if (cap > 0)
    for (LD& x : z) x = static_cast<LD>(cap) * std::tanh(x / static_cast<LD>(cap));
  return z;
}

std::vector<LD> log_softmax(const std::vector<LD>& z, LD tau) {
  LD m = *std::max_element(z.begin(), z.end()) / tau, s = 0;
  for (LD x : z) s += std::exp(x / tau - m);
  std::vector<LD> out(z.size());
  for (size_t j = 0; j < z.size(); ++j) out[j] = z[j] / tau - m - std::log(s);
  return out;
}

// sd_target: where the self-distillation target q_final comes from (default: `in` itself). The
// op's gradient treats it as a constant (stopgrad), so the finite differences freeze it.
Output naive(const Case& c, const Inputs& in, const Inputs* sd_target = nullptr) {
  if (sd_target == nullptr) sd_target = &in;
  Output out;
  out.ce.assign(c.E, 0);
  out.kd.assign(c.E, 0);
  out.sd.assign(c.E, 0);
  int64_t counted = 0;
  for (int64_t i = 0; i < c.M; ++i) {
    if (in.targets[i] == -1) continue;
    ++counted;
    auto z_of = [&](const Inputs& x, int64_t k) {
      const bool lora = c.has_adapter(k);
      return capped(logits_row(x.h[k], x.W, lora ? &x.A[k] : nullptr, lora ? &x.B[k] : nullptr, i,
                               c.D, c.V, lora ? c.R : 0, 1.5L),
                    c.softcap);
    };
    const auto final_lq = log_softmax(z_of(*sd_target, c.E - 1), 1);
    std::vector<LD> lp;
    if (c.teacher)
      lp = log_softmax(capped(logits_row(in.th, in.tW, nullptr, nullptr, i, c.teacher_D, c.V, 0, 0),
                              c.teacher_softcap),
                       c.tau);
    for (int64_t k = 0; k < c.E; ++k) {
      const auto z = z_of(in, k);
      const auto lq1 = log_softmax(z, 1), lq = log_softmax(z, c.tau);
      out.ce[k] -= lq1[in.targets[i]];
      if (c.teacher) {
        LD d = 0;
        for (int64_t j = 0; j < c.V; ++j) {
          const LD p = std::exp(lp[j]), q = std::exp(lq[j]);
          switch (c.divergence) {
            case Divergence::forward_kl:
              d += p * (lp[j] - lq[j]);
              break;
            case Divergence::reverse_kl:
              d += q * (lq[j] - lp[j]);
              break;
            case Divergence::tv:
              d += 0.5L * std::fabs(p - q);
              break;
          }
        }
        out.kd[k] += static_cast<double>(c.tau * c.tau * d);
      }
      if (c.self_distill && k < c.E - 1) {
        LD d = 0;
        for (int64_t j = 0; j < c.V; ++j) d += std::exp(final_lq[j]) * (final_lq[j] - lq1[j]);
        out.sd[k] += static_cast<double>(d);
      }
    }
  }
  const double a = c.teacher ? c.alpha : 0.0;
  double total = 0;
  for (int64_t k = 0; k < c.E; ++k) {
    out.ce[k] /= counted;
    out.kd[k] /= counted;
    out.sd[k] /= counted;
    total += c.weights[k] * ((1 - a) * out.ce[k] + a * out.kd[k] + out.sd[k]);
  }
  out.result.loss = total;
  out.result.counted = counted;
  return out;
}

std::vector<testing::GradParam> grad_params(const Case& c, Inputs& in) {
  std::vector<testing::GradParam> params;
  for (int64_t k = 0; k < c.E; ++k) params.push_back({"h" + std::to_string(k), &in.h[k]});
  if (!c.frozen_head) params.push_back({"W", &in.W});
  for (int64_t k = 0; k < c.E; ++k)
    if (c.has_adapter(k)) params.push_back({"A" + std::to_string(k), &in.A[k]});
  for (int64_t k = 0; k < c.E; ++k)
    if (c.has_adapter(k)) params.push_back({"B" + std::to_string(k), &in.B[k]});
  return params;
}

TEST_P(ExitLoss, EveryTermMatchesNaiveFullLogits) {
  const Case& c = GetParam();
  {
    Inputs in = make_inputs(c, 1);
    const Output ref = naive(c, in);
    const Output got = run(c, in);
    EXPECT_EQ(got.result.counted, ref.result.counted);
    EXPECT_NEAR(got.result.loss, ref.result.loss, tol::kCpuLossF64.rel * std::abs(ref.result.loss));
    expect_near_all("ce", got.ce, ref.ce, tol::kCpuCeF64.rel, tol::kCpuCeF64.abs);
    expect_near_all("kd", got.kd, ref.kd, tol::kCpuDivergenceF64.rel, tol::kCpuDivergenceF64.abs);
    expect_near_all("sd", got.sd, ref.sd, tol::kCpuDivergenceF64.rel, tol::kCpuDivergenceF64.abs);
    // The same with gradients requested, and in float.
    auto grads = testing::detail::zero_grads(grad_params(c, in));
    EXPECT_NEAR(run(c, in, &grads).result.loss, ref.result.loss,
                tol::kCpuLossF64.rel * ref.result.loss);
    std::vector<std::vector<float>> hf, Af, Bf;
    for (const auto& x : in.h) hf.push_back(testing::to_float(x));
    for (const auto& x : in.A) Af.push_back(testing::to_float(x));
    for (const auto& x : in.B) Bf.push_back(testing::to_float(x));
    const Output f = run<float>(c, hf, testing::to_float(in.W), Af, Bf, testing::to_float(in.th),
                                testing::to_float(in.tW), in.targets, nullptr);
    EXPECT_NEAR(f.result.loss, ref.result.loss, tol::kCpuF32.rel * ref.result.loss);
  }
}

TEST_P(ExitLoss, GradientsMatchFiniteDifferences) {
  const Case& c = GetParam();
  {
    Inputs in = make_inputs(c, 2);
    const Inputs frozen = in;
    // The reference loss with the self-distillation target frozen at the unperturbed inputs.
    auto loss = [&] { return naive(c, in, &frozen).result.loss; };
    auto backward = [&](std::vector<std::vector<double>>& g) { run(c, in, &g); };
    testing::GradCheckOptions opts;
    opts.max_checked = static_cast<size_t>(c.fd_samples);
    testing::check_gradients(grad_params(c, in), loss, backward, opts);
  }
}

TEST_P(ExitLoss, ResultsDoNotDependOnChunkSize) {
  const Case& c = GetParam();
  {
    Inputs in = make_inputs(c, 3);
    auto ref_g = testing::detail::zero_grads(grad_params(c, in));
    const Output ref = run(c, in, &ref_g, 1.0, c.M);
    for (int64_t chunk : {int64_t{1}, int64_t{2}, int64_t{4}, c.M + 3}) {
      SCOPED_TRACE("chunk " + std::to_string(chunk));
      auto g = testing::detail::zero_grads(grad_params(c, in));
      const Output got = run(c, in, &g, 1.0, chunk);
      EXPECT_NEAR(got.result.loss, ref.result.loss, 1e-13);
      for (size_t p = 0; p < g.size(); ++p)
        expect_near_all("grad " + std::to_string(p), g[p], ref_g[p], tol::kCpuChunk.rel,
                        tol::kCpuChunk.abs);
    }
  }
}

TEST(ExitLossEdge, OneExitWithoutTeacherIsTheCrossEntropy) {
  const Case c = named("ce_one_exit");
  const Inputs in = make_inputs(c, 4);
  std::vector<double> dh(in.h[0].size(), 0.0), dW(in.W.size(), 0.0);
  std::vector<double> workspace(lm_head_workspace_elems(c.V, c.chunk));
  const auto ce =
      lm_head_cross_entropy(in.h[0].data(), in.W.data(), in.targets.data(), dh.data(), dW.data(),
                            c.M, c.D, c.V, -1, 0.5, workspace.data(), c.chunk);
  Inputs copy = in;
  auto g = testing::detail::zero_grads(grad_params(c, copy));
  const Output got = run(c, in, &g, 0.5);
  EXPECT_NEAR(got.result.loss, ce.mean_loss, 1e-13);
  EXPECT_EQ(got.result.counted, ce.counted);
  expect_near_all("dh", g[0], dh, 1e-12, 1e-15);
  expect_near_all("dW", g[1], dW, 1e-12, 1e-15);
}

TEST(ExitLossEdge, WeightScalesOnlyTheGradientAndTermsAddUp) {
  Case c = named("forward_kl_tau2_sd");
  Inputs in = make_inputs(c, 5);
  auto g1 = testing::detail::zero_grads(grad_params(c, in));
  auto g4 = testing::detail::zero_grads(grad_params(c, in));
  const Output r1 = run(c, in, &g1, 1.0), r4 = run(c, in, &g4, 0.25);
  EXPECT_DOUBLE_EQ(r1.result.loss, r4.result.loss);
  for (size_t p = 0; p < g1.size(); ++p) {
    for (double& x : g1[p]) x *= 0.25;
    expect_near_all("grad", g4[p], g1[p], 1e-14, 1e-16);
  }
  const ExitLossResult& r = r1.result;
  EXPECT_NEAR(r.loss, (1 - c.alpha) * r.ce + c.alpha * r.kd + r.sd, 1e-14);
  EXPECT_GT(r.kd, 0);
  EXPECT_GT(r.sd, 0);
  EXPECT_EQ(r1.sd[c.E - 1], 0.0);  // the final exit has no self-distillation term
}

TEST(ExitLossEdge, TeacherEqualToStudentGivesZeroDivergence) {
  // The teacher is exit 0 itself (same hidden states and head): the divergence vanishes, and so
  // does its gradient, leaving only the CE part. (TV has no gradient at p = q: not checked.)
  for (Divergence div : {Divergence::forward_kl, Divergence::reverse_kl}) {
    Case c{.name = "same",
           .E = 1,
           .D = kDt,
           .teacher = true,
           .divergence = div,
           .tau = 2.0,
           .weights = {1.0}};
    Inputs in = make_inputs(c, 6);
    in.th = in.h[0];
    in.tW = in.W;
    const Output got = run(c, in);
    EXPECT_NEAR(got.kd[0], 0.0, 1e-14);
    Case ce_only = c;
    ce_only.teacher = false;
    auto g = testing::detail::zero_grads(grad_params(c, in));
    auto g_ce = testing::detail::zero_grads(grad_params(c, in));
    run(c, in, &g);
    run(ce_only, in, &g_ce, 1.0 - c.alpha);
    expect_near_all("dh", g[0], g_ce[0], 1e-12, 1e-14);
  }
}

TEST(ExitLossEdge, IgnoredRowsGetNoGradientAndAllIgnoredIsZero) {
  Case c = named("forward_kl_tau07_lora");
  Inputs in = make_inputs(c, 7);
  auto g = testing::detail::zero_grads(grad_params(c, in));
  run(c, in, &g);
  for (int64_t k = 0; k < c.E; ++k)
    for (int64_t i = 0; i < c.M; ++i) {
      double norm = 0;
      for (int64_t d = 0; d < c.D; ++d) norm += std::abs(g[k][i * c.D + d]);
      EXPECT_EQ(norm == 0.0, in.targets[i] == -1) << "exit " << k << " row " << i;
    }
  std::fill(in.targets.begin(), in.targets.end(), -1);
  auto g2 = testing::detail::zero_grads(grad_params(c, in));
  const Output none = run(c, in, &g2);
  EXPECT_EQ(none.result.counted, 0);
  EXPECT_EQ(none.result.loss, 0.0);
  for (const auto& x : g2) EXPECT_EQ(x, std::vector<double>(x.size(), 0.0));
}

TEST(ExitLossEdge, ScratchIsBoundedByChunkTimesVocab) {
  // The scratch does not depend on M at all: at most three [chunk, V] blocks plus the LoRA's.
  EXPECT_EQ(exit_loss_workspace_elems(32000, 256, true, true, 0), 3 * 256 * 32000);
  EXPECT_EQ(exit_loss_workspace_elems(32000, 256, false, false, 0), 256 * 32000);
  EXPECT_EQ(exit_loss_workspace_elems(100, 8, true, false, 4), 2 * 8 * 100 + 2 * 8 * 4);
}

TEST(ExitLossEdge, TargetOutsideVocabularyThrows) {
  Case c = named("ce_three_exits");
  Inputs in = make_inputs(c, 8);
  in.targets[4] = static_cast<int32_t>(c.V);
  try {
    run(c, in);
    ADD_FAILURE() << "did not throw";
  } catch (const rrt::Error& e) {
    EXPECT_EQ(e.where(), "exit_loss");
    EXPECT_NE(std::string(e.what()).find("row 4"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace rrt::ops
