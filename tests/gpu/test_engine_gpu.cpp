// The inference engine on the GPU against the CPU engine (label gpu): the same scripted calls
// through the Engine interface on both (prefill of two prompts, decoding rows at mixed loop
// depths in one call, an exit head per loop, KV propagation and copy read by later tokens), for
// every family, compare every head's logits and a call's saturation scores; and generate() with
// each scheduler on the GPU gives the CPU's greedy tokens. The GPU runs bf16 weights, states and
// KV, so logits are compared with a tolerance relative to their scale, and tokens by agreement (a
// near-tie may flip).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <vector>

#include "inference/device_engine.h"
#include "inference/generate.h"
#include "tests/gpu/gpu_test.h"
#include "tests/inference/tiny_models.h"

namespace rrt {
namespace {

using inference::Engine;
using inference::StageRow;

struct Engines {
  testing::TinyModel tm;
  std::unique_ptr<Engine> gpu;
};

Engines make_engines(const ModelSpec& spec, int64_t slots, int64_t max_rows) {
  Engines e{testing::make_tiny(spec, slots, max_rows), nullptr};
  e.gpu =
      inference::make_device_engine(inference::bind_weights(spec, e.tm.model->params()),
                                    e.tm.model->params(), {.slots = slots, .max_rows = max_rows});
  return e;
}

// Runs one call on both engines.
template <typename F>
void both(Engines& e, F&& f) {
  f(static_cast<Engine&>(*e.tm.engine));
  f(*e.gpu);
}

// The exit heads of `states` on both engines: logits within tol of the CPU's scale, the same
// argmax where the CPU's top two differ by more than the tolerance, close max probabilities.
void compare_heads(Engines& e, const std::vector<int32_t>& loops,
                   const std::vector<int32_t>& states, const char* what) {
  const int64_t n = static_cast<int64_t>(states.size()), V = e.gpu->vocab();
  both(e, [&](Engine& x) { x.exit_heads(loops.data(), states.data(), n, true); });
  const Engine& cpu = *e.tm.engine;
  double scale = 0, err = 0, prob_err = 0;
  for (int64_t i = 0; i < n * V; ++i) {
    scale = std::max(scale, std::fabs(static_cast<double>(cpu.head_logits()[i])));
    err = std::max(err,
                   std::fabs(static_cast<double>(cpu.head_logits()[i]) - e.gpu->head_logits()[i]));
  }
  const double tol = 3e-2 * scale;
  for (int64_t r = 0; r < n; ++r) {
    prob_err = std::max(
        prob_err, std::fabs(cpu.head_max_probability()[r] - e.gpu->head_max_probability()[r]));
    std::vector<float> row(cpu.head_logits() + r * V, cpu.head_logits() + (r + 1) * V);
    std::vector<float> sorted = row;
    std::sort(sorted.begin(), sorted.end(), std::greater<float>());
    if (sorted[0] - sorted[1] > 2 * tol)
      EXPECT_EQ(e.gpu->head_argmax()[r], cpu.head_argmax()[r]) << what << ", row " << r;
  }
  std::printf("%s: max |logit diff| %.3g (scale %.3g), max |p diff| %.3g\n", what, err, scale,
              prob_err);
  EXPECT_LE(err, tol) << what;
  EXPECT_LE(prob_err, 3e-2) << what;
}

class EngineGpuFamilies : public ::testing::TestWithParam<testing::FamilyCase> {};

void scripted_calls_match_the_cpu_engine(const ModelSpec& spec) {
  Engines e = make_engines(spec, 2, 8);
  const int32_t K = 3;
  both(e, [](Engine& x) { x.reserve_states(10); });
  // Prompts: slot 0 has 5 tokens (states 0..4), slot 1 has 3 (states 5..7).
  const std::vector<int32_t> p0 = {3, 17, 42, 8, 29}, p1 = {51, 2, 33};
  const std::vector<int32_t> s0 = {0, 1, 2, 3, 4}, s1 = {5, 6, 7};
  both(e, [&](Engine& x) {
    x.embed_states(p0.data(), s0.data(), 5);
    x.embed_states(p1.data(), s1.data(), 3);
    for (int32_t s = 0; s < K; ++s) {
      std::vector<StageRow> r0, r1;
      for (int32_t t = 0; t < 5; ++t) r0.push_back({0, t, s});
      for (int32_t t = 0; t < 3; ++t) r1.push_back({1, t, s});
      x.run_stage(r0.data(), s0.data(), 5);
      x.run_stage(r1.data(), s1.data(), 3);
    }
  });
  compare_heads(e, {K, K}, {4, 7}, "prefill, final exits");
  // Decoding: slot 0's token at position 5 (state 8), slot 1's at position 3 (state 9).
  const std::vector<int32_t> next = {11, 60}, ns = {8, 9};
  both(e, [&](Engine& x) {
    x.embed_states(next.data(), ns.data(), 2);
    const StageRow r[2] = {{0, 5, 0}, {1, 3, 0}};
    x.run_stage(r, ns.data(), 2);
  });
  compare_heads(e, {1, 1}, ns, "decode, exit 1 (head adapter)");
  // Slot 1's token exits after loop 1: KV propagation fills its loops 2 and 3. Slot 0's runs
  // loop 2, then exits there and copies its KV into loop 3.
  both(e, [&](Engine& x) {
    const StageRow exited = {1, 3, 0};
    x.propagate_kv(&exited, &ns[1], 1);
    const StageRow r = {0, 5, 1};
    x.run_stage(&r, &ns[0], 1);
    x.copy_kv(StageRow{0, 5, 1});
  });
  compare_heads(e, {2}, {8}, "decode, exit 2");
  // The next tokens read the propagated and copied KV: slot 1's runs loop 1 while slot 0's has
  // already run loop 1 in an earlier call, so one call holds rows at two depths.
  const std::vector<int32_t> more = {7, 19}, ms = {0, 5};
  std::vector<std::vector<double>> sims;   // the mixed call's saturation scores, CPU then GPU
  std::vector<std::vector<float>> normed;  // and its normed states (the classifier's features)
  both(e, [&](Engine& x) {
    x.embed_states(more.data(), ms.data(), 2);
    const StageRow first = {0, 6, 0};
    x.run_stage(&first, &ms[0], 1);
    const StageRow mixed[2] = {{0, 6, 1}, {1, 4, 0}};
    x.run_stage_saturation(mixed, ms.data(), 2);
    sims.push_back({x.stage_similarity()[0], x.stage_similarity()[1]});
    normed.emplace_back(x.stage_normed_states(), x.stage_normed_states() + 2 * x.d_model());
    const StageRow last[2] = {{0, 6, 2}, {1, 4, 1}};
    x.run_stage(last, ms.data(), 2);
    const StageRow deepest = {1, 4, 2};
    x.run_stage(&deepest, &ms[1], 1);
  });
  compare_heads(e, {K, K}, ms, "after propagated and copied KV, final exits");
  // The saturation exit's score (cosine of the normed states around the stage) from bf16 states.
  for (size_t r = 0; r < 2; ++r)
    EXPECT_NEAR(sims[1][r], sims[0][r], 3e-2) << "saturation score of the mixed call, row " << r;
  // The classifier exit's features: each row's state after the stage through the final norm.
  double scale = 0, worst = 0;
  for (size_t i = 0; i < normed[0].size(); ++i) {
    scale = std::max(scale, std::abs(static_cast<double>(normed[0][i])));
    worst = std::max(worst, std::abs(static_cast<double>(normed[1][i]) - normed[0][i]));
  }
  EXPECT_GT(scale, 0.0);
  EXPECT_LE(worst, 3e-2 * scale) << "normed states of the mixed call";
}

TEST_P(EngineGpuFamilies, ScriptedCallsMatchTheCpuEngine) {
  RRT_REQUIRE_GPU();
  scripted_calls_match_the_cpu_engine(
      testing::tiny_spec(GetParam().family, GetParam().parallel, 3));
}

// Gemma 2 / 3 attention in decode: a window of 2 on positions 0 and 2 of every 3 (so the mixed
// call's rows at two depths take different windows: one decode attention per group) and
// soft-capped scores, on the GPU's kv_attention against the CPU engine's; soft-capped logits.
TEST_P(EngineGpuFamilies, ScriptedCallsWithWindowsAndSoftcapMatchTheCpuEngine) {
  RRT_REQUIRE_GPU();
  ModelSpec spec = testing::tiny_spec(GetParam().family, GetParam().parallel, 3);
  spec.model.sliding_window = 2;
  spec.model.sliding_layers = {true, false, true};
  spec.model.attn_logit_softcapping = 2.0;
  spec.model.final_logit_softcapping = 1.5;  // the engine's head rows, capped on the device
  scripted_calls_match_the_cpu_engine(spec);
}

INSTANTIATE_TEST_SUITE_P(Families, EngineGpuFamilies, ::testing::ValuesIn(testing::kFamilies),
                         [](const auto& info) { return info.param.name; });

TEST(EngineGpu, GenerateAgreesWithTheCpuForEveryScheduler) {
  RRT_REQUIRE_GPU();
  const ModelSpec spec = testing::tiny_spec(Family::llama, false, 3);
  Engines e = make_engines(spec, 4, 8);
  std::vector<inference::Request> reqs;
  for (int r = 0; r < 6; ++r) {
    inference::Request q;
    for (int t = 0; t < 3 + 2 * r; ++t) q.prompt.push_back((7 * r + 5 * t + 1) % 61);
    q.max_new_tokens = 6 + r;
    reqs.push_back(q);
  }
  inference::GenerateOptions o;
  o.max_batch = 4;
  o.batching = inference::Batching::static_batch;
  const auto ref = inference::generate(*e.tm.engine, reqs, o);
  for (auto b : {inference::Batching::static_batch, inference::Batching::sequence_wise,
                 inference::Batching::depth_wise}) {
    o.batching = b;
    inference::RunStats st;
    const auto out = inference::generate(*e.gpu, reqs, o, &st);
    int64_t same = 0, total = 0;
    for (size_t r = 0; r < reqs.size(); ++r) {
      ASSERT_EQ(out[r].tokens.size(), ref[r].tokens.size());
      for (size_t t = 0; t < ref[r].tokens.size(); ++t)
        same += out[r].tokens[t] == ref[r].tokens[t];
      total += static_cast<int64_t>(ref[r].tokens.size());
      for (int32_t loop : out[r].exit_loops) EXPECT_EQ(loop, 3);
    }
    const double agreement = static_cast<double>(same) / static_cast<double>(total);
    std::printf("%s on the GPU: %ld of %ld tokens equal to the CPU's greedy tokens\n",
                inference::to_string(b).c_str(), static_cast<long>(same), static_cast<long>(total));
    EXPECT_GE(agreement, 0.8) << inference::to_string(b);
    EXPECT_EQ(st.generated, total);
  }
}

}  // namespace
}  // namespace rrt
