// The whole model on the CPU bf16 backend (RecursiveCore<CpuBf16Backend>, ops/cpu_bf16/) against
// the fp32 RecursiveModel on the same bf16-rounded weights and batch: logits, the loss and the
// gradient of every registry parameter, for the tiny relaxed models of each family (Llama GQA,
// Gemma MQA with (1 + w) norms and GeGLU, NeoX with LayerNorm, biases, parallel residual and
// per-loop norms) and, as tests/gpu/test_exits_gpu.cpp runs the CUDA model, a relaxed model with
// exits at every loop, aggressive(0.1) weights, self-distillation, head adapters on the
// intermediate exits and a forward-only teacher of another shape, for each divergence. And the
// serving engine on the same backend against the fp32 engine's logits.
//
// The bf16 model is owned here as its trainer will own it: the fp32 values rounded to a bf16
// compute copy (CpuBf16Backend::upload_bf16), fp32 gradients in a ParameterSet's arena.
// Tolerances: the CUDA model's, shared in tests/bf16_model_tolerances.h (the argument is the same
// bf16 storage of activations):
//   kLogits 3e-2 relative L2 of the logits; kLoss 1e-2 relative on the loss and the weighted CE;
//   kTerm 3e-2 relative (1e-2 floor) on KD, SD and each exit's means; kGradient 8e-2 relative L2
//   per parameter, its norm floored at 5% of a tensor of its size at the arena's RMS gradient;
//   kArena 3e-2 relative L2 of the whole gradient arena.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "core/rng.h"
#include "inference/cpu_bf16_engine.h"
#include "inference/cpu_engine.h"
#include "inference/weights.h"
#include "model/cpu_bf16_model.h"
#include "model/parameters.h"
#include "model/presets.h"
#include "model/recursive_core.h"
#include "model/recursive_model.h"
#include "ops/cpu_bf16/backend.h"
#include "tests/bf16_model_tolerances.h"
#include "tests/ops/cpu_bf16/bf16_test.h"

namespace rrt {
namespace {

using testing::relative_l2;

using testing::bf16_model_tol::kArena;
using testing::bf16_model_tol::kArenaSandwich;
using testing::bf16_model_tol::kGradient;
using testing::bf16_model_tol::kLogits;
using testing::bf16_model_tol::kLoss;
using testing::bf16_model_tol::kTerm;

// Seeded weights (LoRA B non-zero, so every adapter gets a gradient), rounded to bf16.
void init_bf16_weights(ParameterSet& p, uint64_t seed) {
  p.init({.seed = seed, .std = 0.05, .lora_b_zero = false});
  // Biases and norm gains away from 0 and 1, so that every one of them changes the outputs.
  const ParamRegistry& reg = p.registry();
  for (int i = 0; i < reg.size(); ++i) {
    const ParamKind k = reg[i].kind;
    if (k == ParamKind::bias) fill_normal(p.value(i), p.numel(i), 0.0, 0.1, seed + 1, i);
    if (k == ParamKind::norm || k == ParamKind::final_norm) {
      const double gain = p.value(i)[0];  // init's: 1, or 0 for Gemma's (1 + w)
      fill_normal(p.value(i), p.numel(i), gain, 0.1, seed + 2, i);
    }
  }
  float* v = static_cast<float*>(p.values_arena().base());
  const int64_t n = p.values_arena().total_bytes() / static_cast<int64_t>(sizeof(float));
  for (int64_t i = 0; i < n; ++i) v[i] = bf16::from_float(v[i]).to_float();
}

// The bf16 model of `values`' weights: a bf16 compute copy, fp32 gradients (none forward only).
struct Bf16Model {
  CpuBf16Backend backend{2};
  ParameterSet grads;
  std::vector<bf16> compute;
  std::unique_ptr<RecursiveCore<CpuBf16Backend>> core;

  Bf16Model(const ModelSpec& spec, ParameterSet& values, const CoreCapacity& cap,
            const TrainingLoss& loss)
      : grads(spec) {
    Arena& arena = values.values_arena();
    const auto* base = static_cast<const float*>(arena.base());
    compute.resize(static_cast<size_t>(arena.total_bytes()) / sizeof(float));
    backend.upload_bf16(compute.data(), base, static_cast<int64_t>(compute.size()), "test");
    const bool train = !cap.forward_only;
    const ParameterBinding<CpuBf16Backend> binding{
        [&, base](int i) -> const bf16* { return compute.data() + (values.value(i) - base); },
        [&, train](int i) -> float* {
          return train && values.registry()[i].trainable ? grads.grad(i) : nullptr;
        }};
    core = std::make_unique<RecursiveCore<CpuBf16Backend>>(backend, spec, values.registry(),
                                                           binding, cap, loss);
  }
};

void random_batch(int64_t n, int64_t vocab, uint32_t seed, std::vector<int32_t>& tokens,
                  std::vector<int32_t>& targets) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int32_t> dist(0, static_cast<int32_t>(vocab - 1));
  tokens.resize(n);
  targets.resize(n);
  for (auto& t : tokens) t = dist(rng);
  for (auto& t : targets) t = dist(rng);
  targets[1] = RecursiveModel::kIgnoreIndex;
}

double rel(double have, double want, double floor) {
  return std::fabs(have - want) / std::max(std::fabs(want), floor);
}

// Every trainable parameter's gradient within kGradient (floored as in tests/gpu/
// device_vs_cpu.h), the arena within kArena; returns the worst tensor's error.
double compare_gradients(const ParameterSet& want, const ParameterSet& got, const std::string& what,
                         double arena_tol = kArena) {
  const ParamRegistry& reg = want.registry();
  std::vector<float> all_w, all_g;
  for (int i = 0; i < reg.size(); ++i) {
    all_w.insert(all_w.end(), want.grad(i), want.grad(i) + want.numel(i));
    all_g.insert(all_g.end(), got.grad(i), got.grad(i) + got.numel(i));
  }
  double sq = 0;
  for (float x : all_w) sq += double(x) * x;
  const double rms = std::sqrt(sq / static_cast<double>(all_w.size()));
  EXPECT_GT(rms, 0) << what << ": the fp32 gradients are all zero: the test would prove nothing";
  EXPECT_LT(relative_l2(all_g, all_w), arena_tol) << what;
  double worst = 0;
  for (int i = 0; i < reg.size(); ++i) {
    double num = 0, den = 0;
    for (int64_t j = 0; j < want.numel(i); ++j) {
      const double d = double(got.grad(i)[j]) - want.grad(i)[j];
      num += d * d;
      den += double(want.grad(i)[j]) * want.grad(i)[j];
    }
    const double floor = 0.05 * rms * std::sqrt(static_cast<double>(want.numel(i)));
    const double err = std::sqrt(num) / std::max(std::sqrt(den), floor);
    worst = std::max(worst, err);
    EXPECT_LT(err, kGradient) << what << ": gradient of " << reg[i].name;
  }
  return worst;
}

struct FamilyCase {
  std::string name;
  ModelSpec spec;
  int32_t document_eos = -1;  // >= 0: document-aware batches, EOS at a few positions
};

// Gemma 2's attention: sliding windows on alternate positions, soft-capped logits, and packed
// documents (issues 24, 25).
ModelSpec gemma_masked() {
  ModelSpec s = presets::tiny_relaxed(Family::gemma);
  s.model.sliding_window = 4;
  s.model.sliding_layers = {true, false};
  s.model.attn_logit_softcapping = 1.0;
  s.model.final_logit_softcapping = 2.0;  // and the LM head's (Gemma 2's final_logit_softcapping)
  return s;
}
void PrintTo(const FamilyCase& c, std::ostream* os) { *os << c.name; }

class CoreBf16 : public ::testing::TestWithParam<FamilyCase> {};
INSTANTIATE_TEST_SUITE_P(
    Families, CoreBf16,
    ::testing::Values(FamilyCase{"llama", presets::tiny_relaxed(Family::llama)},
                      FamilyCase{"gemma", presets::tiny_relaxed(Family::gemma)},
                      FamilyCase{"neox_parallel", presets::tiny_relaxed(Family::neox, true)},
                      FamilyCase{"qwen2", presets::tiny_relaxed(Family::qwen2)},
                      FamilyCase{"qwen3", presets::tiny_relaxed(Family::qwen3)},
                      FamilyCase{"gemma3", presets::tiny_relaxed(Family::gemma3)},
                      FamilyCase{"gemma2", presets::tiny_relaxed(Family::gemma2)},
                      FamilyCase{"gemma_window_softcap_documents", gemma_masked(), 2}),
    [](const auto& info) { return info.param.name; });

TEST_P(CoreBf16, LogitsLossAndGradientsMatchFp32) {
  RRT_REQUIRE_CPU_BF16_BACKEND();
  const ModelSpec spec = GetParam().spec;
  const int64_t N = 2, T = 13, V = spec.model.vocab;
  RecursiveModel cpu(spec, {.max_batch = N, .max_seq = T, .head_chunk = 8});
  init_bf16_weights(cpu.params(), 3);
  Bf16Model bf(spec, cpu.params(), {.max_batch = N, .max_seq = T, .head_chunk = 8}, TrainingLoss{});
  std::vector<int32_t> tokens, targets;
  random_batch(N * T, V, 4, tokens, targets);
  if (const int32_t eos = GetParam().document_eos; eos >= 0) {
    for (int32_t& t : tokens)
      if (t == eos) t = eos + 1;
    for (int64_t at : {int64_t{3}, int64_t{8}, T + 5}) tokens[at] = eos;
    cpu.set_document_eos(eos);
    bf.core->set_document_eos(eos);
  }

  std::vector<float> want(N * T * V), got(want.size());
  cpu.logits(tokens.data(), N, T, want.data());
  bf.core->logits(tokens.data(), N, T, got.data());
  const double logits_err = relative_l2(got, want);
  EXPECT_LT(logits_err, kLogits);

  cpu.params().zero_grads();
  const double loss_w = cpu.forward_backward(tokens.data(), targets.data(), N, T, 0.5f);
  const double loss_g = bf.core->forward_backward(tokens.data(), targets.data(), N, T, 0.5f);
  EXPECT_LT(rel(loss_g, loss_w, 1e-2), kLoss) << loss_g << " vs " << loss_w;
  const double worst = compare_gradients(cpu.params(), bf.grads, GetParam().name,
                                         spec.model.sandwich_norm ? kArenaSandwich : kArena);
  std::printf("[bf16 %s] logits %.2e, loss %.5f vs %.5f, worst tensor %.2e\n",
              GetParam().name.c_str(), logits_err, loss_g, loss_w, worst);
}

// Exits at every loop, head adapters, self-distillation and a teacher (test_exits_gpu.cpp's
// student and teacher), for each divergence.
class ExitsBf16 : public ::testing::TestWithParam<ops::Divergence> {};
std::string divergence_name(const ::testing::TestParamInfo<ops::Divergence>& info) {
  const char* names[] = {"forward_kl", "reverse_kl", "tv"};
  return names[static_cast<int>(info.param)];
}
INSTANTIATE_TEST_SUITE_P(Divergences, ExitsBf16,
                         ::testing::Values(ops::Divergence::forward_kl, ops::Divergence::reverse_kl,
                                           ops::Divergence::tv),
                         divergence_name);

ModelSpec tiny_llama(int64_t vocab, int64_t D, int64_t H, int64_t Hkv, int64_t F, int64_t B,
                     int64_t K, int64_t rank) {
  ModelSpec s;
  s.model = {
      .vocab = vocab, .d_model = D, .n_heads = H, .n_kv_heads = Hkv, .ffn = F, .max_seq_len = 64};
  s.recursion = {.block_layers = B, .loops = K};
  s.lora = {.rank_attention = rank, .rank_mlp = rank / 2};
  return s;
}

TEST_P(ExitsBf16, ExitsSelfDistillationAndTeacherMatchFp32) {
  RRT_REQUIRE_CPU_BF16_BACKEND();
  ModelSpec spec = tiny_llama(97, 128, 2, 1, 160, 1, 3, 8);
  spec.exit_head = {.lora_rank = 4, .loops = {1, 2}};
  const ModelSpec tspec = tiny_llama(97, 128, 2, 2, 224, 2, 1, 0);
  TrainingLoss loss;
  loss.exit_loops = {1, 2, 3};
  loss.exit_weights = {0.1, 0.1, 1.0};
  loss.self_distill = true;
  loss.teacher = true;
  loss.divergence = GetParam();
  loss.temperature = 2.0;
  loss.alpha = 0.5;
  const int64_t N = 2, T = 19;
  RecursiveModel cpu(spec, {.max_batch = N, .max_seq = T, .head_chunk = 16}, loss);
  RecursiveModel cpu_teacher(tspec, {.max_batch = N, .max_seq = T, .forward_only = true});
  init_bf16_weights(cpu.params(), 21);
  init_bf16_weights(cpu_teacher.params(), 22);
  cpu.set_teacher(&cpu_teacher);
  Bf16Model bf(spec, cpu.params(), {.max_batch = N, .max_seq = T, .head_chunk = 16}, loss);
  Bf16Model bf_teacher(tspec, cpu_teacher.params(),
                       {.max_batch = N, .max_seq = T, .forward_only = true}, TrainingLoss{});
  bf.core->set_teacher(bf_teacher.core.get());

  std::vector<int32_t> tokens, targets;
  random_batch(N * T, spec.model.vocab, 23, tokens, targets);
  cpu.params().zero_grads();
  const double want = cpu.forward_backward(tokens.data(), targets.data(), N, T, 0.5f);
  const double have = bf.core->forward_backward(tokens.data(), targets.data(), N, T, 0.5f);
  const LossBreakdown& w = cpu.last_losses();
  const LossBreakdown& h = bf.core->last_losses();
  ASSERT_GT(w.kd, 0);
  ASSERT_GT(w.sd, 0);
  EXPECT_LT(rel(have, want, 1e-2), kLoss) << have << " vs " << want;
  EXPECT_LT(rel(h.ce, w.ce, 1e-2), kLoss);
  EXPECT_LT(rel(h.kd, w.kd, 1e-2), kTerm) << h.kd << " vs " << w.kd;
  EXPECT_LT(rel(h.sd, w.sd, 1e-2), kTerm) << h.sd << " vs " << w.sd;
  for (size_t k = 0; k < 3; ++k) {
    EXPECT_LT(rel(h.exit_ce[k], w.exit_ce[k], 1e-2), kTerm) << "exit " << k;
    EXPECT_LT(rel(h.exit_kd[k], w.exit_kd[k], 1e-2), kTerm) << "exit " << k;
    EXPECT_LT(rel(h.exit_sd[k], w.exit_sd[k], 1e-2), kTerm) << "exit " << k;
  }
  const double worst = compare_gradients(cpu.params(), bf.grads, "exits");
  std::printf("[bf16 exits] loss %.5f vs %.5f (kd %.4f sd %.4f), worst tensor %.2e\n", have, want,
              w.kd, w.sd, worst);
}

// The engine on the bf16 backend: prefill of a prompt through every stage, then the exit logits
// of each loop (and before the last, the saturation score and the normed states the classifier
// exit reads), against the fp32 engine's; Llama, and Qwen2 (per-loop q/k/v biases) and Qwen3
// (q/k head norms, llama3 RoPE scaling) and Gemma 3 (sandwich norms, the query scale, local
// and global RoPE per group of rows) for the rows their layers add.
TEST(EngineBf16, PrefillExitLogitsMatchFp32Engine) {
  RRT_REQUIRE_CPU_BF16_BACKEND();
  for (Family family : {Family::llama, Family::qwen2, Family::qwen3, Family::gemma3}) {
    SCOPED_TRACE(to_string(family));
    ModelSpec spec = presets::tiny_relaxed(family);
    RecursiveModel model(spec, {.max_batch = 1, .max_seq = 16});
    init_bf16_weights(model.params(), 5);
    const inference::ModelWeights weights = inference::bind_weights(spec, model.params());
    const inference::EngineCapacity cap{.slots = 2, .max_seq = 16, .max_rows = 16, .threads = 2};
    inference::CpuEngine fp32(weights, cap);
    std::unique_ptr<inference::Engine> bf =
        inference::make_cpu_bf16_engine(weights, model.params(), cap);
    EXPECT_STREQ(bf->device(), "cpu-bf16");
    const int64_t n = 9, K = spec.recursion.loops, V = spec.model.vocab;
    std::vector<int32_t> tokens(n), states(n);
    for (int64_t i = 0; i < n; ++i) {
      tokens[i] = static_cast<int32_t>((7 * i + 3) % V);
      states[i] = static_cast<int32_t>(i);
    }
    for (inference::Engine* e : {static_cast<inference::Engine*>(&fp32), bf.get()}) {
      e->reserve_states(n);
      e->embed_states(tokens.data(), states.data(), n);
    }
    std::vector<inference::StageRow> rows(n);
    std::vector<int32_t> loops(n);
    for (int64_t s = 0; s < K; ++s) {
      for (int64_t i = 0; i < n; ++i) {
        rows[i] = {.slot = 1, .pos = static_cast<int32_t>(i), .stage = static_cast<int32_t>(s)};
        loops[i] = static_cast<int32_t>(s + 1);
      }
      if (s + 1 < K) {
        // The saturation and classifier exits' scores and features from bf16 states.
        fp32.run_stage_saturation(rows.data(), states.data(), n);
        bf->run_stage_saturation(rows.data(), states.data(), n);
        const int64_t D = spec.model.d_model;
        const std::vector<float> want(fp32.stage_normed_states(),
                                      fp32.stage_normed_states() + n * D);
        const std::vector<float> got(bf->stage_normed_states(), bf->stage_normed_states() + n * D);
        EXPECT_LT(relative_l2(got, want), kLogits) << "normed states, loop " << s + 1;
        for (int64_t i = 0; i < n; ++i)
          EXPECT_NEAR(bf->stage_similarity()[i], fp32.stage_similarity()[i], 3e-2)
              << "loop " << s + 1 << " row " << i;
      } else {
        fp32.run_stage(rows.data(), states.data(), n);
        bf->run_stage(rows.data(), states.data(), n);
      }
      fp32.exit_heads(loops.data(), states.data(), n, true);
      bf->exit_heads(loops.data(), states.data(), n, true);
      const std::vector<float> want(fp32.head_logits(), fp32.head_logits() + n * V);
      const std::vector<float> got(bf->head_logits(), bf->head_logits() + n * V);
      EXPECT_LT(relative_l2(got, want), kLogits) << "loop " << s + 1;
    }
  }
}

}  // namespace
}  // namespace rrt

namespace rrt {
namespace {

// The trainer's memory check plans a bf16 teacher before its compute copy exists: the plan must
// be what the built model then holds (activations exactly; the copy up to the arena's alignment
// padding, which the plan, made from the registry alone, cannot see).
TEST(CpuBf16ModelPlan, IsWhatTheBuiltModelHolds) {
  RRT_REQUIRE_CPU_BF16_BACKEND();
  ModelSpec spec = tiny_llama(97, 128, 2, 1, 160, 1, 3, 8);
  spec.exit_head = {.lora_rank = 4, .loops = {1, 2}};
  TrainingLoss loss;
  loss.exit_loops = {1, 2, 3};
  loss.exit_weights = {0.1, 0.1, 1.0};
  for (const bool forward_only : {false, true}) {
    const ModelCapacity cap{
        .max_batch = 3, .max_seq = 17, .head_chunk = 16, .forward_only = forward_only};
    const TrainingLoss l = forward_only ? TrainingLoss{} : loss;
    RecursiveModel masters(spec, {.max_batch = 1, .max_seq = 1}, l);
    const CpuBf16Model built(masters.params(), spec, cap, l);
    const CpuBf16Plan plan = CpuBf16Model::plan(spec, cap, l);
    EXPECT_EQ(plan.activation_bytes, built.activation_bytes()) << "forward_only " << forward_only;
    EXPECT_GT(plan.activation_bytes, 0);
    const int64_t padding = built.compute_copy_bytes() - plan.compute_copy_bytes;
    EXPECT_GE(padding, 0);
    EXPECT_LE(padding, ParamRegistry(spec).size() * 64) << "at most an alignment per tensor";
  }
}

}  // namespace
}  // namespace rrt
