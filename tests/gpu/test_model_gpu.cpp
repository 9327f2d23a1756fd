// The whole model on the GPU (model/cuda/device_model.h) against the CPU fp32 RecursiveModel on
// the same weights: logits, the loss, and the gradient of every registry parameter, over tiny
// random models of every family: a relaxed K = 2 Llama with LoRA and GQA, a plain MQA model with
// odd sizes, Gemma (tied head, (1 + w) norms, embedding scale, GeGLU), NeoX (LayerNorm, biases,
// parallel residual, 25% rotary, per-loop norms), sequence sharing, and activation
// recomputation of some positions, and attention forced onto rrt's own kernels (the fallback of
// ops/cuda/attention_fallback.h) for a relaxed Llama and a Gemma with head dimension 256, and
// the attention masks (documents packed after EOS, sliding windows on some layers, soft-capped
// logits: Gemma 2's attention), which take the fallback for documents and soft-caps.
//
// The weights are rounded to bf16 before either model sees them, so the comparison measures the
// GPU's bf16 activations, not the storage rounding of the weights. Tolerances
// (tests/bf16_model_tolerances.h, shared with the CPU bf16 tests; bf16 has an 8-bit
// significand: one rounding is up to 2^-9 = 0.2% relative, and a position rounds a dozen
// activations on the way forward and as many on the way back):
//   kLogits   = 3e-2  relative L2 of the logits [N, T, V]
//   kLoss     = 1e-2  relative difference of the mean loss
//   kGradient = 8e-2  relative L2 of each parameter's gradient, its reference norm floored at
//                     5% of what a tensor of its size would have at the arena's RMS gradient
//                     (a gradient that nearly cancels, such as a norm weight's sum over rows,
//                     has no meaningful relative error of its own)
//   kArena    = 3e-2  relative L2 of the whole gradient arena
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
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
using rrt::testing::relative_l2;

using rrt::testing::bf16_model_tol::kArena;
using rrt::testing::bf16_model_tol::kArenaSandwich;
using rrt::testing::bf16_model_tol::kGradient;
using rrt::testing::bf16_model_tol::kLogits;
using rrt::testing::bf16_model_tol::kLoss;

struct ModelCase {
  std::string name;
  ModelSpec spec;
  int64_t N, T;
  std::string recompute = "none";
  // Attention through rrt's own kernels instead of cuDNN (RRT_ATTENTION_FALLBACK=1, read when
  // the model's attention context is made): the whole model on the path that shapes cuDNN cannot
  // serve take (Gemma 2B's head dimension 256 on an A100, say).
  bool fallback = false;
  int32_t document_eos = -1;  // >= 0: document-aware batches, with EOS at a few positions
};

// Sets an environment variable for the scope.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, bool set) : name_(name), set_(set) {
    if (set_) setenv(name_, "1", 1);
  }
  ~ScopedEnv() {
    if (set_) unsetenv(name_);
  }

 private:
  const char* name_;
  bool set_;
};

// ctest lists parameterised tests with their parameter: the case's name, not its bytes.
void PrintTo(const ModelCase& c, std::ostream* os) { *os << c.name; }

std::vector<ModelCase> cases() {
  std::vector<ModelCase> c;
  // Heads of 64 dimensions throughout: the head size cuDNN's attention tests cover.
  // Relaxed: K = 2 loops over B = 2 layers, LoRA r = 8 (attention) / 4 (MLP), GQA 4 / 2 heads.
  c.push_back({"llama_relaxed_gqa", llama(97, 256, 4, 2, 176, 2, 2, 8), 2, 33});
  // Plain, MQA, odd vocabulary, an FFN of 100 (rows not 16-byte multiples), one odd sequence.
  c.push_back({"llama_plain_mqa_odd", llama(101, 192, 3, 1, 100, 3, 1, 0), 1, 17});
  {
    ModelSpec s = llama(89, 96, 2, 1, 160, 2, 2, 6);
    apply_family_defaults(s.model, Family::gemma);
    s.model.head_dim = 64;  // Gemma sets the head dimension apart from d_model / heads
    c.push_back({"gemma_relaxed_mqa", s, 2, 20});
  }
  {
    ModelSpec s = llama(83, 128, 2, 2, 192, 2, 2, 8);
    apply_family_defaults(s.model, Family::neox);  // parallel residual, LayerNorm, biases
    s.recursion.per_loop_norms = true;
    c.push_back({"neox_parallel_per_loop_norms", s, 2, 24});
  }
  {
    ModelSpec s = llama(83, 128, 2, 2, 192, 2, 2, 8);
    apply_family_defaults(s.model, Family::neox);
    s.model.parallel_residual = false;
    c.push_back({"neox_sequential", s, 1, 31});
  }
  {
    ModelSpec s = llama(97, 256, 4, 2, 176, 2, 2, 8);
    s.recursion.sharing = Sharing::sequence;
    c.push_back({"llama_sequence_sharing", s, 2, 16});
  }
  {
    ModelSpec s = llama(97, 256, 4, 2, 176, 2, 2, 8);
    apply_family_defaults(s.model, Family::qwen2);  // q, k, v biases, per loop
    s.recursion.per_loop_norms = true;
    s.model.rope_scaling = {.type = ops::RopeScalingType::llama3,
                            .factor = 8.0,
                            .low_freq_factor = 1.0,
                            .high_freq_factor = 4.0,
                            .original_max_positions = 32};
    c.push_back({"qwen2_per_loop_biases_llama3_rope", s, 2, 33});
  }
  {
    ModelSpec s = llama(97, 256, 4, 2, 176, 2, 2, 8);
    apply_family_defaults(s.model, Family::qwen3);  // q/k head norms (tied)
    c.push_back({"qwen3_qk_norm", s, 2, 20});
  }
  {
    // Gemma 3: (1 + w) q/k and sandwich norms per loop, query_pre_attn_scalar != head_dim, local
    // RoPE layers with a window shorter than T (a pattern of 3 over B = 2) beside linearly scaled
    // global ones.
    ModelSpec s = llama(97, 256, 4, 2, 176, 2, 2, 8);
    apply_family_defaults(s.model, Family::gemma3);
    s.recursion.per_loop_norms = true;
    s.model.query_pre_attn_scalar = 40.0;
    s.model.rope_local_theta = 100.0;
    s.model.sliding_window = 7;
    s.model.sliding_layers = {true, true, false};
    s.model.rope_scaling = {.type = ops::RopeScalingType::linear, .factor = 2.0};
    c.push_back({"gemma3_sandwich_local_rope", s, 2, 20});
  }
  c.push_back({"llama_relaxed_recompute_some", llama(97, 256, 4, 2, 176, 2, 2, 8), 2, 33, "0,3"});
  c.push_back(
      {"llama_relaxed_gqa_fallback", llama(97, 256, 4, 2, 176, 2, 2, 8), 2, 33, "none", true});
  {
    ModelSpec s = llama(89, 128, 2, 1, 160, 2, 2, 6);
    apply_family_defaults(s.model, Family::gemma);
    s.model.head_dim = 256;  // Gemma 2B's head size, MQA
    c.push_back({"gemma_dh256_fallback", s, 2, 20, "none", true});
  }
  {
    ModelSpec s = llama(89, 128, 2, 1, 160, 2, 2, 6);
    apply_family_defaults(s.model, Family::gemma);
    s.model.head_dim = 64;
    s.model.sliding_window = 6;
    s.model.sliding_layers = {true, false, true};
    s.model.attn_logit_softcapping = 2.0;
    s.model.final_logit_softcapping = 3.0;  // the head ops' soft-cap kernel and slopes
    c.push_back({"gemma_window_softcap_documents", s, 2, 30, "none", false, 3});
  }
  {
    ModelSpec s = llama(97, 256, 4, 2, 176, 2, 2, 8);
    s.model.sliding_window = 5;  // windows alone: cuDNN's diagonal band where it runs
    c.push_back({"llama_window", s, 2, 33});
  }
  return c;
}

class ModelGpu : public ::testing::TestWithParam<ModelCase> {};

TEST_P(ModelGpu, LogitsLossAndEveryGradientMatchTheCpu) {
  RRT_REQUIRE_GPU();
  const ModelCase& c = GetParam();
  const int64_t N = c.N, T = c.T, V = c.spec.model.vocab;
  RecursiveModel cpu(c.spec, ModelCapacity{.max_batch = N, .max_seq = T, .head_chunk = 16});
  init_bf16_weights(cpu.params(), 7);
  const ScopedEnv fallback("RRT_ATTENTION_FALLBACK", c.fallback);
  DeviceModel gpu(c.spec, {.max_batch = N,
                           .max_seq = T,
                           .head_chunk = 16,
                           .recompute = parse_recompute(c.recompute, c.spec.positions())});
  gpu.upload(cpu.params());
  std::vector<int32_t> tokens, targets;
  random_tokens(N * T, V, 11, tokens, targets);
  if (c.document_eos >= 0) {
    for (int32_t& t : tokens)
      if (t == c.document_eos) t = c.document_eos + 1;
    for (int64_t at : {int64_t{4}, T / 2, T + 9}) tokens[at] = c.document_eos;
    cpu.set_document_eos(c.document_eos);
    gpu.set_document_eos(c.document_eos);
  }

  std::vector<float> cpu_logits(N * T * V), gpu_logits(N * T * V);
  cpu.logits(tokens.data(), N, T, cpu_logits.data());
  gpu.logits(tokens.data(), N, T, gpu_logits.data());
  const double logits_err = relative_l2(gpu_logits, cpu_logits);
  EXPECT_LT(logits_err, kLogits) << c.name;

  ParameterSet got(c.spec);
  const auto losses = forward_backward_both(cpu, gpu, tokens, targets, N, T, 0.5f, got);
  EXPECT_NEAR(losses.gpu, losses.cpu, kLoss * losses.cpu) << c.name;
  EXPECT_DOUBLE_EQ(gpu.last_losses().total, losses.gpu);
  const double arena_tol = c.spec.model.sandwich_norm ? kArenaSandwich : kArena;
  const auto errors = compare_gradients(cpu.params(), got, c.name, kGradient, arena_tol);
  // The margins, for the GPU log: what each tolerance was measured against.
  std::printf(
      "[model %s] logits %.2e (tol %.0e), loss %.5f vs %.5f, gradient arena %.2e (tol %.0e), "
      "worst tensor %s %.2e (tol %.0e)\n",
      c.name.c_str(), logits_err, kLogits, losses.gpu, losses.cpu, errors.arena, arena_tol,
      errors.worst_name.c_str(), errors.worst, kGradient);
}

INSTANTIATE_TEST_SUITE_P(Families, ModelGpu, ::testing::ValuesIn(cases()),
                         [](const auto& info) { return info.param.name; });

// Recomputing every position reruns the same kernels on the same inputs, so the gradients are
// those of storing every position up to the run-to-run noise of the fp32 atomics (norm weight and
// embedding gradients, cuDNN's dQ): kRecompute = 1e-3 relative L2 of the whole gradient arena;
// the loss comes from the forward alone and agrees to 1e-6.
TEST(ModelGpuRecompute, RecomputingEveryPositionMatchesStoringThem) {
  RRT_REQUIRE_GPU();
  constexpr double kRecompute = 1e-3;
  const ModelSpec spec = llama(97, 256, 4, 2, 176, 2, 2, 8);
  const int64_t N = 2, T = 24;
  ParameterSet init(spec);
  init_bf16_weights(init, 3);
  std::vector<int32_t> tokens, targets;
  random_tokens(N * T, spec.model.vocab, 5, tokens, targets);
  std::vector<std::vector<float>> grads;
  std::vector<double> losses;
  for (const char* mode : {"none", "all"}) {
    DeviceModel gpu(
        spec, {.max_batch = N, .max_seq = T, .recompute = parse_recompute(mode, spec.positions())});
    gpu.upload(init);
    gpu.zero_grads();
    losses.push_back(gpu.forward_backward(tokens.data(), targets.data(), N, T));
    ParameterSet got(spec);
    gpu.download_grads(got);
    const float* g = static_cast<const float*>(got.grads_arena().base());
    grads.emplace_back(g, g + got.grads_arena().total_bytes() / sizeof(float));
  }
  EXPECT_NEAR(losses[1], losses[0], 1e-6 * losses[0]);
  EXPECT_LT(relative_l2(grads[1], grads[0]), kRecompute) << "recomputation changed the gradients";
}

// The optimizer step on the device against the CPU AdamW on the same gradients: the fp32 master
// weights after one step (fp32 on both sides; 1e-5 relative L2), and upload/download round trips.
TEST(ModelGpuOptimizer, AdamWStepAndGradNormMatchTheCpu) {
  RRT_REQUIRE_GPU();
  const ModelSpec spec = llama(97, 256, 4, 2, 176, 2, 2, 8);
  const int64_t N = 2, T = 16;
  RecursiveModel cpu(spec, ModelCapacity{.max_batch = N, .max_seq = T});
  init_bf16_weights(cpu.params(), 9);
  DeviceModel gpu(spec, {.max_batch = N, .max_seq = T});
  gpu.upload(cpu.params());
  std::vector<int32_t> tokens, targets;
  random_tokens(N * T, spec.model.vocab, 13, tokens, targets);
  gpu.zero_grads();
  gpu.forward_backward(tokens.data(), targets.data(), N, T);
  // The CPU steps on the GPU's gradients, so only the optimizer is compared.
  gpu.download_grads(cpu.params());
  const float* g = static_cast<const float*>(cpu.params().grads_arena().base());
  double sq = 0;
  for (int64_t i = 0; i < cpu.params().grads_arena().total_bytes() / 4; ++i)
    sq += double(g[i]) * g[i];
  EXPECT_NEAR(gpu.grad_norm(), std::sqrt(sq), 1e-9 * std::sqrt(sq));
  gpu.scale_grads(0.5f);
  EXPECT_NEAR(gpu.grad_norm(), 0.5 * std::sqrt(sq), 1e-9 * std::sqrt(sq));
  gpu.scale_grads(2.0f);

  const ops::AdamWHyper hyper{1e-2, 0.9, 0.95, 1e-8, 0.1};
  AdamW cpu_opt(cpu.params(), hyper);
  cpu_opt.step(3e-3);
  gpu.adamw_step(hyper, 3e-3);
  EXPECT_EQ(gpu.steps_taken(), 1);
  ParameterSet after(spec);
  gpu.download(after);
  const auto flat = [](ParameterSet& p) {
    const float* v = static_cast<const float*>(p.values_arena().base());
    return std::vector<float>(v, v + p.values_arena().total_bytes() / sizeof(float));
  };
  EXPECT_LT(relative_l2(flat(after), flat(cpu.params())), 1e-5);
  AdamW moments(after, hyper);
  gpu.download_optimizer(moments);
  EXPECT_EQ(moments.steps_taken(), 1);
  const float* m_gpu = moments.first_moment().view(0).f32();
  const float* m_cpu = cpu_opt.first_moment().view(0).f32();
  EXPECT_NEAR(m_gpu[0], m_cpu[0], 1e-6 * (std::fabs(m_cpu[0]) + 1e-12));
}

}  // namespace
}  // namespace rrt
