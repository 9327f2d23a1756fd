// Structure of the recursive model: registry, sharing maps, config validation, per-loop norms,
// gradient accumulation and thread-count independence.
#include <gtest/gtest.h>

#include <omp.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "core/error.h"
#include "core/safetensors.h"
#include "model/recursive_model.h"

namespace rrt {
namespace {

ModelSpec small_spec() {
  ModelSpec s;
  s.model = {.vocab = 97, .d_model = 24, .n_heads = 6, .n_kv_heads = 2, .ffn = 40,
             .max_seq_len = 67};
  s.recursion = {.block_layers = 2, .loops = 3};
  s.lora = {.rank_attention = 3, .rank_mlp = 2};
  return s;
}

struct Batch {
  std::vector<int32_t> tokens, targets;
  int64_t N, T;
};

Batch make_batch(int64_t N, int64_t T, int64_t vocab) {
  Batch b{std::vector<int32_t>(N * T), std::vector<int32_t>(N * T), N, T};
  for (int64_t i = 0; i < N * T; ++i) {
    b.tokens[i] = static_cast<int32_t>((i * 31 + 7) % vocab);
    b.targets[i] = i % 9 == 4 ? RecursiveModel::kIgnoreIndex : static_cast<int32_t>((i * 17) % vocab);
  }
  return b;
}

std::vector<float> all_grads(const ParameterSet& p) {
  std::vector<float> out;
  for (int i = 0; i < p.registry().size(); ++i)
    out.insert(out.end(), p.grad(i), p.grad(i) + p.numel(i));
  return out;
}

TEST(Registry, ListsEveryTensorOnceWithKindAndDecay) {
  ModelSpec s = small_spec();
  ParamRegistry reg(s);
  // embed + B * (2 norms + 7 weights) + K*B * 7 * (A, B) + final norm + head
  EXPECT_EQ(reg.size(), 1 + 2 * 9 + 6 * 14 + 1 + 1);
  EXPECT_EQ(reg[reg.index("lora.2.1.down.A")].shape, (Shape{2, 40}));
  EXPECT_EQ(reg[reg.index("lora.2.1.down.B")].shape, (Shape{24, 2}));
  EXPECT_EQ(reg[reg.index("block.0.attn.k.weight")].shape, (Shape{8, 24}));
  EXPECT_EQ(reg[reg.index("lora.1.0.q.A")].loop, 1);
  EXPECT_EQ(reg[reg.index("lora.1.0.q.A")].kind, ParamKind::lora_a);
  EXPECT_FALSE(reg[reg.index("block.1.mlp_norm.weight")].decay);
  EXPECT_TRUE(reg[reg.index("block.1.mlp.up.weight")].decay);
  EXPECT_THROW(reg.index("lora.3.0.q.A"), Error);

  s.model.tied_head = true;
  s.lora = {};
  s.recursion.per_loop_norms = true;
  ParamRegistry tied(s);
  EXPECT_FALSE(tied.has("head.weight"));
  EXPECT_TRUE(tied.has("loop.2.block.1.attn_norm.weight"));
  EXPECT_FALSE(tied.has("block.0.attn_norm.weight"));
  // Non-embedding parameters of the tied block do not grow with K.
  EXPECT_EQ(tied.numel_of(ParamKind::tied_block), ParamRegistry(small_spec()).numel_of(ParamKind::tied_block));
}

TEST(Sharing, CycleAndSequenceMaps) {
  RecursionConfig cycle{.block_layers = 3, .loops = 2, .sharing = Sharing::cycle};
  RecursionConfig seq{.block_layers = 3, .loops = 2, .sharing = Sharing::sequence};
  const int64_t cycle_layers[] = {0, 1, 2, 0, 1, 2}, cycle_loops[] = {0, 0, 0, 1, 1, 1};
  const int64_t seq_layers[] = {0, 0, 1, 1, 2, 2}, seq_loops[] = {0, 1, 0, 1, 0, 1};
  for (int l = 0; l < 6; ++l) {
    EXPECT_EQ(position_of(cycle, l).layer, cycle_layers[l]);
    EXPECT_EQ(position_of(cycle, l).loop, cycle_loops[l]);
    EXPECT_EQ(position_of(seq, l).layer, seq_layers[l]);
    EXPECT_EQ(position_of(seq, l).loop, seq_loops[l]);
  }
}

void expect_invalid(const ModelSpec& s, const std::string& where) {
  try {
    validate(s);
    ADD_FAILURE() << "expected an error naming " << where;
  } catch (const Error& e) {
    EXPECT_EQ(e.where(), where) << e.what();
  }
}

TEST(Validate, ImpossibleConfigsNameTheField) {
  ModelSpec s = small_spec();
  s.model.n_kv_heads = 4;  // does not divide 6 heads
  expect_invalid(s, "model.n_kv_heads");
  s = small_spec();
  s.lora.rank_mlp = -1;
  expect_invalid(s, "lora.rank");
  s = small_spec();
  s.model.d_model = 25;  // not divisible by 6 heads, no head_dim
  expect_invalid(s, "model.head_dim");
  EXPECT_NO_THROW(validate(small_spec()));
}

TEST(Validate, LoraRankIsCappedPerProjection) {
  ModelSpec s = small_spec();
  s.lora.rank_attention = s.lora.rank_mlp = 1000;
  for (int p = 0; p < kNumProj; ++p) {
    auto [out, in] = proj_shape(s.model, static_cast<Proj>(p));
    EXPECT_EQ(s.lora_rank(static_cast<Proj>(p)), std::min(out, in)) << kProjNames[p];
  }
  EXPECT_LT(s.lora_rank(Proj::k), s.lora_rank(Proj::q));  // GQA: k is narrower than q
  s.lora.rank_attention = 2;
  EXPECT_EQ(s.lora_rank(Proj::q), 2);
  // A family without a gate projection has no gate LoRA.
  apply_family_defaults(s.model, Family::neox);
  EXPECT_EQ(s.lora_rank(Proj::gate), 0);
  EXPECT_GT(s.lora_rank(Proj::up), 0);
}

TEST(RecursiveModel, PerLoopNormsEqualTiedNormsWhenEqual) {
  ModelSpec tied = small_spec(), per_loop = small_spec();
  per_loop.recursion.per_loop_norms = true;
  const Batch b = make_batch(2, 19, tied.model.vocab);
  RecursiveModel a(tied, {.max_batch = 2, .max_seq = 19}), c(per_loop, {.max_batch = 2, .max_seq = 19});
  a.params().init({.seed = 3, .lora_b_zero = false});
  // Copy every shared tensor; per-loop norms get their block layer's (perturbed) tied norm.
  for (int i = 0; i < a.params().registry().size(); ++i) {
    const ParamInfo& p = a.params().registry()[i];
    if (p.kind == ParamKind::norm) {
      for (int64_t j = 0; j < p.shape.numel(); ++j) a.params().value(i)[j] = 1.0f + 0.01f * (j % 7);
      continue;
    }
    std::memcpy(c.params().value(p.name), a.params().value(i), p.shape.numel() * sizeof(float));
  }
  for (const ParamInfo& p : c.params().registry().params())
    if (p.kind == ParamKind::norm) {
      const std::string tied_name = ParamRegistry::norm_name(p.layer, -1, p.name.find("attn_norm") != std::string::npos, false);
      std::memcpy(c.params().value(p.name), a.params().value(tied_name), p.shape.numel() * sizeof(float));
    }
  const double la = a.forward_backward(b.tokens.data(), b.targets.data(), b.N, b.T);
  const double lc = c.forward_backward(b.tokens.data(), b.targets.data(), b.N, b.T);
  EXPECT_NEAR(la, lc, 1e-6);
  // The tied norm's gradient is the sum of its per-loop copies' gradients.
  for (int64_t layer = 0; layer < 2; ++layer)
    for (bool attn : {true, false}) {
      const float* g = a.params().grad(ParamRegistry::norm_name(layer, -1, attn, false));
      for (int64_t j = 0; j < 24; ++j) {
        double sum = 0;
        for (int64_t k = 0; k < 3; ++k) sum += c.params().grad(ParamRegistry::norm_name(layer, k, attn, true))[j];
        EXPECT_NEAR(sum, g[j], 1e-5 * (1 + std::fabs(g[j])));
      }
    }
}

TEST(RecursiveModel, GradientsAccumulateAcrossCalls) {
  const ModelSpec s = small_spec();
  const Batch b = make_batch(2, 67, s.model.vocab);
  RecursiveModel m(s, {.max_batch = 2, .max_seq = 67});
  m.params().init({.seed = 9, .lora_b_zero = false});
  m.forward_backward(b.tokens.data(), b.targets.data(), b.N, b.T, 1.0f);
  const auto once = all_grads(m.params());
  m.params().zero_grads();
  m.forward_backward(b.tokens.data(), b.targets.data(), b.N, b.T, 0.25f);
  m.forward_backward(b.tokens.data(), b.targets.data(), b.N, b.T, 0.75f);
  const auto twice = all_grads(m.params());
  double max_err = 0, max_mag = 0;
  for (size_t i = 0; i < once.size(); ++i) {
    max_err = std::max(max_err, std::fabs(double(once[i]) - twice[i]));
    max_mag = std::max(max_mag, std::fabs(double(once[i])));
  }
  EXPECT_GT(max_mag, 0);
  EXPECT_LE(max_err, 1e-5 * max_mag);
}

TEST(RecursiveModel, ThreadCountDoesNotChangeResults) {
  const ModelSpec s = small_spec();
  const Batch b = make_batch(3, 67, s.model.vocab);
  std::vector<float> grads[2];
  double loss[2];
  const int saved = omp_get_max_threads();
  for (int threads : {1, 2}) {
    omp_set_num_threads(threads);
    RecursiveModel m(s, {.max_batch = 3, .max_seq = 67, .threads = threads});
    m.params().init({.seed = 11, .lora_b_zero = false});
    loss[threads - 1] = m.forward_backward(b.tokens.data(), b.targets.data(), b.N, b.T);
    grads[threads - 1] = all_grads(m.params());
  }
  omp_set_num_threads(saved);
  EXPECT_NEAR(loss[0], loss[1], 1e-6);
  double max_err = 0, max_mag = 0;
  for (size_t i = 0; i < grads[0].size(); ++i) {
    max_err = std::max(max_err, std::fabs(double(grads[0][i]) - grads[1][i]));
    max_mag = std::max(max_mag, std::fabs(double(grads[0][i])));
  }
  EXPECT_LE(max_err, 1e-5 * max_mag);
}

}  // namespace
}  // namespace rrt

namespace rrt {
namespace {

TEST(ParameterSet, SaveLoadRoundTripAndMismatchErrors) {
  const ModelSpec s = small_spec();
  ParameterSet a(s), b(s);
  a.init({.seed = 21, .lora_b_zero = false});
  const std::string path = ::testing::TempDir() + "/params_roundtrip.safetensors";
  a.save(path, {{"note", "round trip"}});
  SafetensorsFile file(path);
  EXPECT_EQ(file.metadata().at("note"), "round trip");
  b.load(file);
  for (int i = 0; i < a.registry().size(); ++i)
    ASSERT_EQ(std::memcmp(a.value(i), b.value(i), a.numel(i) * sizeof(float)), 0) << a.registry()[i].name;

  ModelSpec other = s;
  other.lora.rank_mlp = 1;  // different LoRA shapes
  ParameterSet c(other);
  try {
    c.load(file);
    ADD_FAILURE() << "shape mismatch must throw";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("lora.0.0.gate.A"), std::string::npos) << e.what();
  }
}

// The gradient-ready hook (for overlapping the all-reduce): a parameter reported final at hook(v)
// never changes afterwards in that backward, and the tied block is final only at the first loop.
TEST(GradReadyHook, ReportedGradientsAreFinal) {
  for (bool per_loop : {false, true}) {
    ModelSpec s = small_spec();
    s.recursion.per_loop_norms = per_loop;
    RecursiveModel model(s, {.max_batch = 2, .max_seq = 9});
    model.params().init({.seed = 5, .lora_b_zero = false});
    const ParameterSet& p = model.params();
    const std::vector<int64_t>& ready = model.grad_ready_after();
    const ParamRegistry& reg = p.registry();
    EXPECT_EQ(ready[reg.index("head.weight")], s.positions());
    EXPECT_EQ(ready[reg.index("final_norm.weight")], s.positions());
    EXPECT_EQ(ready[reg.index("embed.weight")], -1);
    EXPECT_EQ(ready[reg.index("block.1.attn.q.weight")], 1);      // first loop, layer 1
    EXPECT_EQ(ready[reg.index("lora.2.1.q.A")], 2 * 2 + 1);       // loop 2, layer 1
    std::vector<std::vector<float>> snapshot(reg.size());
    std::vector<int64_t> calls;
    model.set_grad_ready_hook([&](int64_t v) {
      calls.push_back(v);
      for (int i = 0; i < reg.size(); ++i)
        if (ready[i] >= v && snapshot[i].empty()) snapshot[i].assign(p.grad(i), p.grad(i) + p.numel(i));
    });
    Batch b = make_batch(2, 9, s.model.vocab);
    model.forward_backward(b.tokens.data(), b.targets.data(), 2, 9);
    std::vector<int64_t> expected;
    for (int64_t v = s.positions(); v >= -1; --v) expected.push_back(v);
    EXPECT_EQ(calls, expected);
    for (int i = 0; i < reg.size(); ++i) {
      ASSERT_FALSE(snapshot[i].empty()) << reg[i].name;
      bool nonzero = false;
      for (int64_t j = 0; j < p.numel(i); ++j) nonzero |= p.grad(i)[j] != 0.0f;
      EXPECT_TRUE(nonzero) << reg[i].name << " has no gradient at all";
      EXPECT_EQ(std::memcmp(snapshot[i].data(), p.grad(i), p.numel(i) * sizeof(float)), 0)
          << reg[i].name << " changed after the hook said it was final (" << ready[i] << ")";
    }
  }
}

}  // namespace
}  // namespace rrt
