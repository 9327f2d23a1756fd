// Early exits, distillation and freezing on the GPU (model/cuda/device_model.h with a
// TrainingLoss) against the CPU fp32 RecursiveModel on the same bf16-rounded weights: a relaxed
// K = 3 model with exits at every loop end, aggressive(0.1) weights, self-distillation, head
// adapters on the intermediate exits and a forward-only teacher of another shape, for each
// divergence (tau = 2): every loss term (total, CE, KD, SD and each exit's means) and the gradient
// of every registry parameter. Then freezing (train: lora / head_lora): frozen parameters get
// exactly zero gradient and keep their weights through AdamW, the trained ones match the CPU
// (with every position recomputed for head_lora).
// And a forward-only device model gives the logits of a training one.
// Tolerances (bf16 activations; tests/bf16_model_tolerances.h, shared with the CPU bf16 tests):
//   kLoss     = 1e-2  relative, the total and the weighted CE
//   kTerm     = 3e-2  relative with a 1e-2 absolute floor, KD, SD and each exit's means (small
//                     differences of log-probabilities of bf16 hidden states)
//   kGradient = 8e-2  relative L2 of each parameter's gradient, floored as in device_vs_cpu.h
//   kArena    = 3e-2  relative L2 of the whole gradient arena
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "core/error.h"
#include "model/cuda/device_model.h"
#include "model/optimizer.h"
#include "model/parameters.h"
#include "model/recursive_model.h"
#include "tests/bf16_model_tolerances.h"
#include "tests/gpu/device_vs_cpu.h"
#include "tests/gpu/gpu_test.h"

namespace rrt {
namespace {

using rrt::testing::compare_gradients;
using rrt::testing::forward_backward_both;
using rrt::testing::init_bf16_weights;
using rrt::testing::llama;
using rrt::testing::random_tokens;
using rrt::testing::rel;
using rrt::testing::relative_l2;

using rrt::testing::bf16_model_tol::kArena;
using rrt::testing::bf16_model_tol::kGradient;
using rrt::testing::bf16_model_tol::kLoss;
using rrt::testing::bf16_model_tol::kTerm;

// The student: relaxed, K = 3 loops of B = 1 layer (heads of 64), head adapters of rank 4 on
// the exits at loops 1 and 2. The teacher: a plain 2-layer model of another FFN width.
ModelSpec student_spec() {
  ModelSpec s = llama(97, 128, 2, 1, 160, 1, 3, 8);
  s.exit_head = {.lora_rank = 4, .loops = {1, 2}};
  return s;
}
ModelSpec teacher_spec() { return llama(97, 128, 2, 2, 224, 2, 1, 0); }

TrainingLoss exits_loss(bool teacher, ops::Divergence divergence) {
  TrainingLoss l;
  l.exit_loops = {1, 2, 3};
  l.exit_weights = {0.1, 0.1, 1.0};  // aggressive(0.1)
  l.self_distill = true;
  l.teacher = teacher;
  l.divergence = divergence;
  l.temperature = 2.0;
  l.alpha = 0.5;
  return l;
}

struct DivergenceCase {
  std::string name;
  ops::Divergence divergence;
};
void PrintTo(const DivergenceCase& c, std::ostream* os) { *os << c.name; }

class ExitsGpu : public ::testing::TestWithParam<DivergenceCase> {};

TEST_P(ExitsGpu, ExitsSelfDistillationAndTeacherMatchTheCpu) {
  RRT_REQUIRE_GPU();
  const DivergenceCase& c = GetParam();
  const ModelSpec spec = student_spec(), tspec = teacher_spec();
  const int64_t N = 2, T = 19;
  const TrainingLoss loss = exits_loss(true, c.divergence);
  RecursiveModel cpu(spec, ModelCapacity{.max_batch = N, .max_seq = T, .head_chunk = 16}, loss);
  RecursiveModel cpu_teacher(tspec,
                             ModelCapacity{.max_batch = N, .max_seq = T, .forward_only = true});
  init_bf16_weights(cpu.params(), 21);
  init_bf16_weights(cpu_teacher.params(), 22);
  cpu.set_teacher(&cpu_teacher);
  DeviceModel gpu(spec, {.max_batch = N, .max_seq = T, .head_chunk = 16}, loss);
  DeviceModel gpu_teacher(tspec,
                          {.max_batch = N, .max_seq = T, .recompute = {}, .forward_only = true});
  gpu.upload(cpu.params());
  gpu_teacher.upload(cpu_teacher.params());
  gpu.set_teacher(&gpu_teacher);

  std::vector<int32_t> tokens, targets;
  random_tokens(N * T, spec.model.vocab, 23, tokens, targets);
  ParameterSet got(spec);
  const auto losses = forward_backward_both(cpu, gpu, tokens, targets, N, T, 0.5f, got);
  const double want = losses.cpu, have = losses.gpu;
  const LossBreakdown& w = cpu.last_losses();
  const LossBreakdown& h = gpu.last_losses();
  ASSERT_GT(w.kd, 0);
  ASSERT_GT(w.sd, 0);
  EXPECT_LT(rel(have, want, 1e-2), kLoss) << have << " vs " << want;
  EXPECT_DOUBLE_EQ(h.total, have);
  EXPECT_LT(rel(h.ce, w.ce, 1e-2), kLoss);
  EXPECT_LT(rel(h.kd, w.kd, 1e-2), kTerm) << h.kd << " vs " << w.kd;
  EXPECT_LT(rel(h.sd, w.sd, 1e-2), kTerm) << h.sd << " vs " << w.sd;
  ASSERT_EQ(h.exit_ce.size(), 3u);
  for (size_t k = 0; k < 3; ++k) {
    EXPECT_LT(rel(h.exit_ce[k], w.exit_ce[k], 1e-2), kTerm) << "exit " << k;
    EXPECT_LT(rel(h.exit_kd[k], w.exit_kd[k], 1e-2), kTerm) << "exit " << k;
    EXPECT_LT(rel(h.exit_sd[k], w.exit_sd[k], 1e-2), kTerm) << "exit " << k;
  }
  const double worst = compare_gradients(cpu.params(), got, c.name, kGradient, kArena).worst;
  std::printf(
      "[exits %s] loss %.5f vs %.5f (ce %.4f kd %.4f sd %.4f), worst tensor %.2e (tol %.0e)\n",
      c.name.c_str(), have, want, w.ce, w.kd, w.sd, worst, kGradient);
}

INSTANTIATE_TEST_SUITE_P(
    Divergences, ExitsGpu,
    ::testing::Values(DivergenceCase{"forward_kl", ops::Divergence::forward_kl},
                      DivergenceCase{"reverse_kl", ops::Divergence::reverse_kl},
                      DivergenceCase{"tv", ops::Divergence::tv}),
    [](const auto& info) { return info.param.name; });

// train: lora and head_lora (the latter with every position recomputed). The frozen parameters'
// gradients are exactly zero on the GPU (their pointers are null) and AdamW leaves their masters
// as uploaded; the trained ones match the CPU.
TEST(ExitsGpuFreezing, FrozenParametersGetNoGradientAndNoUpdate) {
  RRT_REQUIRE_GPU();
  const ModelSpec spec = student_spec();
  const int64_t N = 2, T = 16;
  for (TrainScope scope : {TrainScope::lora, TrainScope::head_lora}) {
    const std::string what = scope == TrainScope::lora ? "train lora" : "train head_lora";
    TrainingLoss loss = exits_loss(false, ops::Divergence::forward_kl);
    loss.train = scope;
    RecursiveModel cpu(spec, ModelCapacity{.max_batch = N, .max_seq = T, .head_chunk = 16}, loss);
    init_bf16_weights(cpu.params(), 31);
    // head_lora also recomputes every position: exits read the stored loop-end residuals.
    const char* recompute = scope == TrainScope::lora ? "none" : "all";
    DeviceModel gpu(spec,
                    {.max_batch = N,
                     .max_seq = T,
                     .head_chunk = 16,
                     .recompute = parse_recompute(recompute, spec.positions())},
                    loss);
    gpu.upload(cpu.params());
    std::vector<int32_t> tokens, targets;
    random_tokens(N * T, spec.model.vocab, 33, tokens, targets);
    ParameterSet got(spec);
    const auto losses = forward_backward_both(cpu, gpu, tokens, targets, N, T, 1.0f, got);
    EXPECT_LT(rel(losses.gpu, losses.cpu, 1e-2), kLoss) << what;
    compare_gradients(cpu.params(), got, what, kGradient, kArena);

    gpu.adamw_step({1e-2, 0.9, 0.95, 1e-8, 0.1}, 1e-2);
    ParameterSet after(spec);
    gpu.download(after);
    const ParamRegistry& reg = cpu.params().registry();
    int moved = 0;
    for (int i = 0; i < reg.size(); ++i) {
      const float* a = after.value(i);
      const float* b = cpu.params().value(i);
      const bool same = std::equal(a, a + after.numel(i), b);
      if (!reg[i].trainable) EXPECT_TRUE(same) << what << ": frozen " << reg[i].name << " moved";
      moved += !same;
    }
    EXPECT_GT(moved, 0) << what << ": nothing trained";
  }
}

// A forward-only model (two residual buffers in turn, one stash) computes what a training one does.
TEST(ExitsGpuTeacher, ForwardOnlyGivesTheLogitsOfATrainingModel) {
  RRT_REQUIRE_GPU();
  const ModelSpec spec = teacher_spec();
  const int64_t N = 2, T = 12, V = spec.model.vocab;
  ParameterSet init(spec);
  init_bf16_weights(init, 41);
  DeviceModel full(spec, {.max_batch = N, .max_seq = T});
  DeviceModel forward_only(spec,
                           {.max_batch = N, .max_seq = T, .recompute = {}, .forward_only = true});
  full.upload(init);
  forward_only.upload(init);
  EXPECT_LT(forward_only.parameter_bytes(), full.parameter_bytes() / 4)
      << "a forward-only model keeps bf16 weights only";
  std::vector<int32_t> tokens, targets;
  random_tokens(N * T, V, 43, tokens, targets);
  std::vector<float> a(N * T * V), b(N * T * V);
  full.logits(tokens.data(), N, T, a.data());
  forward_only.logits(tokens.data(), N, T, b.data());
  // The same kernels on the same shapes: equal up to any run-to-run GEMM noise (1e-4); a wrong
  // buffer in the two-buffer residual stream would be off by O(1).
  EXPECT_LT(relative_l2(b, a), 1e-4);
  EXPECT_THROW(forward_only.forward_backward(tokens.data(), targets.data(), N, T), Error);
  // A teacher of another vocabulary is refused, naming distill.teacher.
  ModelSpec other = student_spec();
  other.model.vocab = 101;
  DeviceModel student(other, {.max_batch = N, .max_seq = T},
                      exits_loss(true, ops::Divergence::forward_kl));
  try {
    student.set_teacher(&forward_only);
    ADD_FAILURE() << "a teacher of another vocabulary was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.where(), "distill.teacher") << e.what();
  }
}

}  // namespace
}  // namespace rrt

namespace rrt {
namespace {

// rrt eval on train.device: cuda: every loop end's exit logits, with the exits' head adapters,
// from the device model (planned with the default loss, as evaluation plans it) for scattered
// rows of the batch, against the CPU model's exit_logits on the same rows. Tolerance kLogits:
// the relative L2 of test_model_gpu.cpp's logits (bf16 activations through K loops).
TEST(ExitsGpuEvaluation, LoopEndExitLogitsMatchTheCpu) {
  RRT_REQUIRE_GPU();
  using rrt::testing::bf16_model_tol::kLogits;
  const ModelSpec spec = student_spec();
  const int64_t N = 2, T = 19, D = spec.model.d_model, V = spec.model.vocab;
  RecursiveModel cpu(spec, ModelCapacity{.max_batch = N, .max_seq = T, .head_chunk = 16});
  init_bf16_weights(cpu.params(), 41);
  DeviceModel gpu(spec, {.max_batch = N, .max_seq = T, .head_chunk = 16});
  gpu.upload(cpu.params());
  std::vector<int32_t> tokens, targets;
  random_tokens(N * T, V, 42, tokens, targets);
  cpu.forward_loop_ends(tokens.data(), N, T);
  gpu.forward_loop_ends(tokens.data(), N, T);
  const std::vector<int32_t> rows = {37, 0, 5, 18, 19, 30, 2};  // both sequences, out of order
  const int64_t n = static_cast<int64_t>(rows.size());
  ASSERT_LE(n, gpu.exit_chunk());
  for (int64_t k = 1; k <= spec.recursion.loops; ++k) {
    std::vector<float> resid(static_cast<size_t>(n * D)), h(resid.size());
    for (int64_t r = 0; r < n; ++r)
      std::copy_n(cpu.loop_end_residual(k) + rows[r] * D, D, resid.begin() + r * D);
    std::vector<float> want(static_cast<size_t>(n * V)), have(want.size());
    cpu.exit_logits(k, resid.data(), n, h.data(), want.data());
    gpu.exit_logits_of_rows(k, rows.data(), n, have.data());
    const double err = relative_l2(have, want);
    EXPECT_LT(err, kLogits) << "exit " << k;
    std::printf("[eval on the GPU] exit %ld logits %.2e (tol %.0e)\n", static_cast<long>(k), err,
                kLogits);
  }
}

}  // namespace
}  // namespace rrt
