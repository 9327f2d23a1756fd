// Converting a plain model into a recursive / relaxed recursive one (model/convert.h): exact
// reproduction at full rank, rank 0 as the pure recursive model, the approximation improving with
// rank, every family's norms and biases, and bad inputs refused. The layer selection tables and
// the SVD are tested in test_convert_init.cpp.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "core/error.h"
#include "core/rng.h"
#include "model/convert.h"
#include "model/recursive_model.h"
#include "tests/error_helpers.h"
#include "tests/model/families.h"

namespace rrt {
namespace {

using Table = std::vector<std::vector<int64_t>>;

// ---------------------------------------------------------------------------------------------
// Models. GQA with head_dim 8: q_dim 32, kv_dim 16 >= d_model 16, so every projection has
// min(in, out) = 16 and rank 16 is full rank everywhere.
constexpr int64_t kFull = 16;

ModelSpec original_spec(int64_t L) {
  ModelSpec s;
  s.model = {.vocab = 53,
             .d_model = 16,
             .n_heads = 4,
             .n_kv_heads = 2,
             .head_dim = 8,
             .ffn = 40,
             .max_seq_len = 12};
  s.recursion = {.block_layers = L, .loops = 1};
  return s;
}

std::unique_ptr<ParameterSet> random_original(const ModelSpec& spec, bool random_norms = false) {
  auto p = std::make_unique<ParameterSet>(spec);
  p->init({.seed = 4321, .std = 0.2, .lora_b_zero = false});
  if (random_norms)
    for (int i = 0; i < p->registry().size(); ++i)
      if (p->registry()[i].kind == ParamKind::norm)
        fill_normal(p->value(i), p->numel(i), 1.0, 0.3, 77, i);
  return p;
}

// Layers that differ like pretrained ones: a common base plus a per-layer deviation with a
// decaying spectrum, D_l = sum_j 0.1 * 0.6^j x_j y_j^T (x, y standard normal). Truncated SVD then
// captures the largest part of what tying loses first.
std::unique_ptr<ParameterSet> structured_original(const ModelSpec& spec) {
  auto p = random_original(spec);
  const int64_t L = spec.recursion.block_layers;
  for (int proj = 0; proj < kNumProj; ++proj) {
    auto [out, in] = proj_shape(spec.model, static_cast<Proj>(proj));
    std::vector<float> base(out * in);
    fill_normal(base.data(), out * in, 0.0, 0.15, 11, proj);
    for (int64_t l = 0; l < L; ++l) {
      float* W = p->value(ParamRegistry::block_name(l, static_cast<Proj>(proj)));
      std::vector<float> x(out), y(in);
      for (int64_t i = 0; i < out * in; ++i) W[i] = base[i];
      for (int64_t j = 0; j < std::min(out, in); ++j) {
        const uint64_t stream = 1000 + (l * kNumProj + proj) * 64 + j;
        fill_normal(x.data(), out, 0.0, 1.0, 12, stream);
        fill_normal(y.data(), in, 0.0, 1.0, 13, stream);
        const double c = 0.1 * std::pow(0.6, double(j));
        for (int64_t a = 0; a < out; ++a)
          for (int64_t b = 0; b < in; ++b) W[a * in + b] += static_cast<float>(c * x[a] * y[b]);
      }
    }
  }
  return p;
}

constexpr int64_t kN = 2, kT = 10;

std::vector<int32_t> tokens(int64_t vocab) {
  std::vector<int32_t> t(kN * kT);
  for (int64_t i = 0; i < kN * kT; ++i) t[i] = static_cast<int32_t>((i * 37 + 11) % vocab);
  return t;
}
std::vector<int32_t> targets(int64_t vocab) {
  std::vector<int32_t> t(kN * kT);
  for (int64_t i = 0; i < kN * kT; ++i) t[i] = static_cast<int32_t>((i * 13 + 5) % vocab);
  return t;
}

std::unique_ptr<RecursiveModel> build(const ModelSpec& spec, const ParameterSet& params) {
  auto model = std::make_unique<RecursiveModel>(
      spec, ModelCapacity{.max_batch = kN, .max_seq = kT, .threads = 1});
  ParameterSet& dst = model->params();
  EXPECT_EQ(dst.registry().size(), params.registry().size());
  for (int i = 0; i < params.registry().size(); ++i) {
    const std::string& name = params.registry()[i].name;
    const int j = dst.registry().index(name);
    EXPECT_EQ(dst.numel(j), params.numel(i)) << name;
    std::memcpy(dst.value(j), params.value(i), params.numel(i) * sizeof(float));
  }
  return model;
}

std::vector<float> logits_of(const ModelSpec& spec, const ParameterSet& params) {
  auto model = build(spec, params);
  std::vector<float> out(kN * kT * spec.model.vocab);
  std::vector<int32_t> tok = tokens(spec.model.vocab);
  model->logits(tok.data(), kN, kT, out.data());
  return out;
}

double loss_of(const ModelSpec& spec, const ParameterSet& params) {
  auto model = build(spec, params);
  std::vector<int32_t> tok = tokens(spec.model.vocab), tgt = targets(spec.model.vocab);
  return model->loss(tok.data(), tgt.data(), kN, kT);
}

double max_abs(const std::vector<float>& v) {
  double m = 0;
  for (float x : v) m = std::max(m, double(std::fabs(x)));
  return m;
}
double max_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, double(std::fabs(a[i] - b[i])));
  return m;
}
double rms_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += double(a[i] - b[i]) * double(a[i] - b[i]);
  return std::sqrt(s / a.size());
}

// ---------------------------------------------------------------------------------------------
// 3. Full rank + SVD init reproduces the original model.
TEST(Convert, FullRankSvdReproducesOriginalLogits) {
  const int64_t L = 6;
  ModelSpec ospec = original_spec(L);
  auto orig = random_original(ospec);
  std::vector<float> ref = logits_of(ospec, *orig);
  const double scale = max_abs(ref);
  ASSERT_GT(scale, 0.1);
  for (Sharing sharing : {Sharing::cycle, Sharing::sequence})
    for (int64_t K : {2, 3})
      for (InitRule rule : {InitRule::stepwise, InitRule::average}) {
        ConvertOptions opt{.loops = K,
                           .sharing = sharing,
                           .init = rule,
                           .rank_attention = kFull,
                           .rank_mlp = kFull};
        Converted c = convert_to_recursive(ospec, *orig, opt);
        EXPECT_EQ(c.spec.recursion.loops, K);
        EXPECT_EQ(c.spec.recursion.block_layers, L / K);
        EXPECT_EQ(c.spec.recursion.sharing, sharing);
        EXPECT_EQ(c.spec.lora.alpha, 0.0);
        std::vector<float> got = logits_of(c.spec, *c.params);
        const double err = max_diff(got, ref);
        EXPECT_LE(err, 1e-4 * scale) << to_string(sharing) << " K=" << K << " " << to_string(rule);
        // And the pure recursive model (rank 0) is far from it: the test is not vacuous.
        opt.rank_attention = opt.rank_mlp = 0;
        Converted c0 = convert_to_recursive(ospec, *orig, opt);
        EXPECT_GT(max_diff(logits_of(c0.spec, *c0.params), ref), 1e-2 * scale);
      }
}

TEST(Convert, FullRankWithPerLoopNormsReproducesDifferingNorms) {
  ModelSpec ospec = original_spec(4);
  auto orig = random_original(ospec, /*random_norms=*/true);
  std::vector<float> ref = logits_of(ospec, *orig);
  for (Sharing sharing : {Sharing::cycle, Sharing::sequence}) {
    ConvertOptions opt{.loops = 2,
                       .sharing = sharing,
                       .init = InitRule::average,
                       .rank_attention = kFull,
                       .rank_mlp = kFull,
                       .per_loop_norms = true};
    Converted c = convert_to_recursive(ospec, *orig, opt);
    EXPECT_TRUE(c.spec.recursion.per_loop_norms);
    EXPECT_LE(max_diff(logits_of(c.spec, *c.params), ref), 1e-4 * max_abs(ref));
  }
}

// ---------------------------------------------------------------------------------------------
// 4. Rank 0 is the pure recursive model: tied copies (or means), no LoRA.
TEST(Convert, RankZeroIsTiedCopiesBitwise) {
  const int64_t L = 6;
  ModelSpec ospec = original_spec(L);
  auto orig = random_original(ospec, /*random_norms=*/true);
  for (Sharing sharing : {Sharing::cycle, Sharing::sequence})
    for (int64_t K : {2, 3})
      for (InitRule rule : {InitRule::stepwise, InitRule::average, InitRule::lower, InitRule::upper,
                            InitRule::random}) {
        const int64_t B = L / K;
        Converted c =
            convert_to_recursive(ospec, *orig, {.loops = K, .sharing = sharing, .init = rule});
        const ParamRegistry& reg = c.params->registry();
        EXPECT_EQ(reg.numel_of(ParamKind::lora_a) + reg.numel_of(ParamKind::lora_b), 0);
        EXPECT_EQ(reg.size(), 1 + B * 9 + 1 + 1);
        Table src = init_sources(L, B, sharing, rule, 1);
        std::vector<std::string> names;
        for (int64_t b = 0; b < B; ++b) {
          for (int p = 0; p < kNumProj; ++p) {
            const Proj proj = static_cast<Proj>(p);
            names.push_back(ParamRegistry::block_name(b, proj));
          }
          names.push_back(ParamRegistry::norm_name(b, -1, true, false));
          names.push_back(ParamRegistry::norm_name(b, -1, false, false));
        }
        for (const std::string& name : names) {
          // "block.<b>.<rest>"
          const size_t dot = name.find('.', 6);
          const int64_t b = std::stoll(name.substr(6, dot - 6));
          const std::string rest = name.substr(dot);
          const int j = reg.index(name);
          const int64_t n = c.params->numel(j);
          std::vector<float> expect(n);
          if (src[b].size() == 1) {
            const float* x = orig->value("block." + std::to_string(src[b][0]) + rest);
            std::copy(x, x + n, expect.begin());
          } else {
            std::vector<double> acc(n, 0.0);
            for (int64_t l : src[b]) {
              const float* x = orig->value("block." + std::to_string(l) + rest);
              for (int64_t i = 0; i < n; ++i) acc[i] += x[i];
            }
            for (int64_t i = 0; i < n; ++i) expect[i] = static_cast<float>(acc[i] / src[b].size());
          }
          EXPECT_EQ(std::memcmp(expect.data(), c.params->value(j), n * sizeof(float)), 0)
              << name << " " << to_string(rule) << " " << to_string(sharing) << " K=" << K;
        }
        for (const char* name : {"embed.weight", "final_norm.weight", "head.weight"}) {
          const int j = reg.index(name);
          EXPECT_EQ(std::memcmp(orig->value(name), c.params->value(j),
                                c.params->numel(j) * sizeof(float)),
                    0)
              << name;
        }
      }
}

TEST(Convert, ZeroLoraInitLeavesThePureRecursiveModel) {
  ModelSpec ospec = original_spec(4);
  auto orig = random_original(ospec);
  Converted pure = convert_to_recursive(ospec, *orig, {.loops = 2, .init = InitRule::average});
  Converted zero = convert_to_recursive(ospec, *orig,
                                        {.loops = 2,
                                         .init = InitRule::average,
                                         .rank_attention = 4,
                                         .rank_mlp = 3,
                                         .lora_init = LoraInit::zero,
                                         .seed = 5});
  const ParamRegistry& reg = zero.params->registry();
  for (int i = 0; i < reg.size(); ++i) {
    const ParamInfo& p = reg[i];
    const float* x = zero.params->value(i);
    if (p.kind == ParamKind::lora_b) {
      for (int64_t e = 0; e < p.shape.numel(); ++e) EXPECT_EQ(x[e], 0.0f) << p.name;
    } else if (p.kind == ParamKind::lora_a) {
      double ss = 0;
      for (int64_t e = 0; e < p.shape.numel(); ++e) ss += double(x[e]) * x[e];
      const double std_ = std::sqrt(ss / p.shape.numel());
      EXPECT_NEAR(std_, 1.0 / std::sqrt(double(p.shape[1])), 0.5 / std::sqrt(double(p.shape[1])))
          << p.name;
    }
  }
  std::vector<float> a = logits_of(pure.spec, *pure.params), b = logits_of(zero.spec, *zero.params);
  EXPECT_LE(max_diff(a, b), 1e-6 * max_abs(a));
}

// svd_balanced is svd's product with the singular values split evenly: B A is the same, column
// i of B and row i of A both have norm sqrt(S_i) (svd: S_i and 1), and at full rank the model is
// the original's. The tolerance is float rounding of the rescaled factors (entries ~1, rank 16).
TEST(Convert, BalancedSvdSplitsTheSingularValuesOfTheSameProduct) {
  ModelSpec ospec = original_spec(6);
  auto orig = structured_original(ospec);
  for (int64_t r : {int64_t{4}, kFull}) {
    ConvertOptions opt{.loops = 3, .init = InitRule::average, .rank_attention = r, .rank_mlp = r};
    Converted svd = convert_to_recursive(ospec, *orig, opt);
    opt.lora_init = LoraInit::svd_balanced;
    Converted bal = convert_to_recursive(ospec, *orig, opt);
    const ParamRegistry& reg = bal.params->registry();
    int pairs = 0;
    for (int ia = 0; ia < reg.size(); ++ia) {
      if (reg[ia].kind != ParamKind::lora_a) continue;
      std::string b_name = reg[ia].name;
      b_name.back() = 'B';  // lora.LOOP.LAYER.PROJ.A -> .B
      const int ib = reg.index(b_name);
      const int64_t rank = reg[ia].shape[0], in = reg[ia].shape[1], out = reg[ib].shape[0];
      const float *A0 = svd.params->value(ia), *B0 = svd.params->value(ib);
      const float *A1 = bal.params->value(ia), *B1 = bal.params->value(ib);
      for (int64_t i = 0; i < rank; ++i) {
        double b0 = 0, a0 = 0, b1 = 0, a1 = 0;
        for (int64_t o = 0; o < out; ++o) {
          b0 += double(B0[o * rank + i]) * B0[o * rank + i];
          b1 += double(B1[o * rank + i]) * B1[o * rank + i];
        }
        for (int64_t c = 0; c < in; ++c) {
          a0 += double(A0[i * in + c]) * A0[i * in + c];
          a1 += double(A1[i * in + c]) * A1[i * in + c];
        }
        const double sigma = std::sqrt(b0);
        EXPECT_NEAR(a0, 1.0, 1e-5) << reg[ia].name << " row " << i;
        EXPECT_NEAR(b1, sigma, 1e-5 * (1 + sigma)) << b_name << " column " << i;
        EXPECT_NEAR(a1, sigma, 1e-5 * (1 + sigma)) << reg[ia].name << " row " << i;
      }
      double diff = 0, norm = 0;
      for (int64_t o = 0; o < out; ++o)
        for (int64_t c = 0; c < in; ++c) {
          double p0 = 0, p1 = 0;
          for (int64_t i = 0; i < rank; ++i) {
            p0 += double(B0[o * rank + i]) * A0[i * in + c];
            p1 += double(B1[o * rank + i]) * A1[i * in + c];
          }
          diff = std::max(diff, std::fabs(p0 - p1));
          norm = std::max(norm, std::fabs(p0));
        }
      EXPECT_GT(norm, 1e-2) << b_name;  // what tying lost is not zero: the check has content
      EXPECT_LE(diff, 1e-5 * norm) << b_name;
      ++pairs;
    }
    EXPECT_EQ(pairs, 3 * 2 * kNumProj);  // every position (3 loops x 2 layers), every projection
  }
  // Full rank reproduces the original model.
  Converted full = convert_to_recursive(ospec, *orig,
                                        {.loops = 3,
                                         .init = InitRule::average,
                                         .rank_attention = kFull,
                                         .rank_mlp = kFull,
                                         .lora_init = LoraInit::svd_balanced});
  std::vector<float> ref = logits_of(ospec, *orig);
  EXPECT_LE(max_diff(logits_of(full.spec, *full.params), ref), 1e-4 * max_abs(ref));
}

TEST(Convert, LoraInitNamesRoundTrip) {
  const auto& names = lora_init_names();
  ASSERT_EQ(names.size(), 3u);
  EXPECT_EQ(parse_lora_init(names[0]), LoraInit::svd);
  EXPECT_EQ(parse_lora_init(names[1]), LoraInit::svd_balanced);
  EXPECT_EQ(parse_lora_init(names[2]), LoraInit::zero);
  // The message lists every name from the table, so a new init appears in it unedited.
  EXPECT_EQ(lora_init_choices(), "svd, svd_balanced or zero");
  EXPECT_EQ(testing::error_message([] { parse_lora_init("pissa"); }),
            "[convert] unknown LoRA init 'pissa'; expected svd, svd_balanced or zero");
}

TEST(Convert, InitRuleNamesRoundTrip) {
  const auto& names = init_rule_names();
  ASSERT_EQ(names, (std::vector<std::string>{"stepwise", "average", "lower", "upper", "random"}));
  for (const std::string& n : names) EXPECT_EQ(to_string(parse_init_rule(n)), n);
  EXPECT_EQ(init_rule_choices(), "stepwise, average, lower, upper, random");
  EXPECT_EQ(testing::error_message([] { parse_init_rule("avg"); }),
            "[convert] unknown init rule 'avg'; expected one of " + init_rule_choices());
}

// ---------------------------------------------------------------------------------------------
// 5. The relaxed model approaches the original as the rank grows.
TEST(Convert, ErrorFallsAsRankGrows) {
  ModelSpec ospec = original_spec(6);
  auto orig = structured_original(ospec);
  std::vector<float> ref = logits_of(ospec, *orig);
  const double ref_loss = loss_of(ospec, *orig);
  for (Sharing sharing : {Sharing::cycle, Sharing::sequence})
    for (InitRule rule : {InitRule::stepwise, InitRule::average}) {
      std::vector<double> errs, dloss;
      for (int64_t r : {0, 2, 4, 8, int(kFull)}) {
        Converted c = convert_to_recursive(
            ospec, *orig,
            {.loops = 2, .sharing = sharing, .init = rule, .rank_attention = r, .rank_mlp = r});
        errs.push_back(rms_diff(logits_of(c.spec, *c.params), ref));
        dloss.push_back(std::fabs(loss_of(c.spec, *c.params) - ref_loss));
      }
      // The logits error falls with every rank step. The loss distance is signed noise at low
      // ranks on this toy model (it is not monotone there), so only its end points are checked.
      for (size_t i = 0; i + 1 < errs.size(); ++i)
        EXPECT_LT(errs[i + 1], errs[i])
            << "rank step " << i << " " << to_string(sharing) << " " << to_string(rule);
      EXPECT_LT(dloss.back(), 1e-4);
      EXPECT_LT(dloss.back(), dloss.front());
    }
}

// ---------------------------------------------------------------------------------------------
// 3b. Every family: Gemma (MQA, head_dim != d / heads, (1 + w) norms, GeGLU, tied head, scaled
// embeddings) and NeoX (LayerNorm with bias, biased projections, GELU MLP, 25% rotary, parallel
// and sequential residual). Norms and biases differ per layer, as in a pretrained model, so
// full rank reproduces the original only with per-loop norms and biases; rank 0 stays pure.
using testing::FamilyCase;
using testing::kFamilies;

ModelSpec family_spec(const FamilyCase& f, int64_t L) {
  ModelSpec s = original_spec(L);
  apply_family_defaults(s.model, f.family);
  s.model.parallel_residual = f.parallel;
  if (f.family == Family::gemma) s.model.n_kv_heads = 1;  // MQA, head_dim 8 != 16 / 4
  if (f.family == Family::neox) s.model.n_kv_heads = s.model.n_heads = 2;  // rot_dim 2 of 8
  // Gemma 2 / 3: an attention scale of their own; Gemma 3: local layers every third position.
  if (f.family == Family::gemma3 || f.family == Family::gemma2) s.model.query_pre_attn_scalar = 5;
  if (f.family == Family::gemma3) {
    s.model.rope_local_theta = 30.0;
    s.model.sliding_window = 4;  // shorter than the kT = 10 tokens: the mask takes effect
    s.model.sliding_layers = {true, true, false};
  }
  if (f.family == Family::gemma2) {
    s.model.sliding_window = 6;
    s.model.sliding_layers = {true, false};
    s.model.attn_logit_softcapping = 3.0;
  }
  return s;
}

// Random weights, and norms and biases that differ per layer.
std::unique_ptr<ParameterSet> random_family_original(const ModelSpec& spec) {
  auto p = random_original(spec);
  for (int i = 0; i < p->registry().size(); ++i) {
    const ParamInfo& info = p->registry()[i];
    if (info.kind == ParamKind::norm || info.kind == ParamKind::final_norm)
      fill_normal(p->value(i), p->numel(i), spec.model.norm_unit_offset ? 0.0 : 1.0, 0.3, 78, i);
    if (info.kind == ParamKind::bias) fill_normal(p->value(i), p->numel(i), 0.0, 0.3, 79, i);
  }
  return p;
}

TEST(ConvertFamilies, FullRankWithPerLoopVectorsReproducesTheOriginal) {
  for (const FamilyCase& f : kFamilies) {
    const ModelSpec ospec = family_spec(f, 6);
    auto orig = random_family_original(ospec);
    const std::vector<float> ref = logits_of(ospec, *orig);
    ASSERT_GT(max_abs(ref), 0.1) << f.name;
    for (Sharing sharing : {Sharing::cycle, Sharing::sequence})
      for (InitRule rule : {InitRule::stepwise, InitRule::average}) {
        // Rank 1000 is capped at every projection's min(in, out): full rank everywhere.
        Converted c = convert_to_recursive(ospec, *orig,
                                           {.loops = 3,
                                            .sharing = sharing,
                                            .init = rule,
                                            .rank_attention = 1000,
                                            .rank_mlp = 1000,
                                            .per_loop_norms = true});
        EXPECT_LE(max_diff(logits_of(c.spec, *c.params), ref), 1e-4 * max_abs(ref))
            << f.name << " " << to_string(sharing) << " " << to_string(rule);
        // Without LoRA the tied model is far from the original: the check is not vacuous.
        Converted c0 = convert_to_recursive(
            ospec, *orig, {.loops = 3, .sharing = sharing, .init = rule, .per_loop_norms = true});
        EXPECT_GT(max_diff(logits_of(c0.spec, *c0.params), ref), 1e-2 * max_abs(ref)) << f.name;
      }
  }
}

TEST(ConvertFamilies, RankZeroIsThePureRecursiveModelBitwise) {
  for (const FamilyCase& f : kFamilies) {
    const ModelSpec ospec = family_spec(f, 4);
    auto orig = random_family_original(ospec);
    Converted c = convert_to_recursive(ospec, *orig, {.loops = 2, .init = InitRule::lower});
    const ParamRegistry& reg = c.params->registry();
    EXPECT_EQ(reg.numel_of(ParamKind::lora_a) + reg.numel_of(ParamKind::lora_b), 0) << f.name;
    // Lower + cycle: block layer b is original layer b, every tensor (biases, norms) copied.
    for (int i = 0; i < reg.size(); ++i) {
      const std::string& name = reg[i].name;
      ASSERT_TRUE(orig->registry().has(name)) << f.name << " " << name;
      EXPECT_EQ(std::memcmp(c.params->value(i), orig->value(name), c.params->numel(i) * 4), 0)
          << f.name << " " << name;
    }
    // And zero-initialised LoRA leaves exactly that model's function.
    Converted z = convert_to_recursive(ospec, *orig,
                                       {.loops = 2,
                                        .init = InitRule::lower,
                                        .rank_attention = 3,
                                        .rank_mlp = 3,
                                        .lora_init = LoraInit::zero});
    const std::vector<float> a = logits_of(c.spec, *c.params), b = logits_of(z.spec, *z.params);
    EXPECT_LE(max_diff(a, b), 1e-6 * max_abs(a)) << f.name;
  }
}

TEST(ConvertFamilies, NeoxHasNoGateAndPerLoopBiases) {
  const ModelSpec ospec = family_spec(kFamilies[2], 4);
  auto orig = random_family_original(ospec);
  Converted c = convert_to_recursive(
      ospec, *orig, {.loops = 2, .rank_attention = 2, .rank_mlp = 2, .per_loop_norms = true});
  const ParamRegistry& reg = c.params->registry();
  EXPECT_FALSE(reg.has("block.0.mlp.gate.weight"));
  EXPECT_FALSE(reg.has("lora.0.0.gate.A"));
  EXPECT_TRUE(reg.has("lora.1.1.up.A"));
  EXPECT_FALSE(reg.has("block.0.attn.q.bias"));
  // Cycle, B = 2: position (loop 1, layer 0) is original layer 2.
  const int j = reg.index("loop.1.block.0.attn.q.bias");
  EXPECT_EQ(
      std::memcmp(c.params->value(j), orig->value("block.2.attn.q.bias"), c.params->numel(j) * 4),
      0);
  EXPECT_TRUE(reg.has("loop.1.block.0.mlp_norm.bias"));
  EXPECT_TRUE(reg.has("final_norm.bias"));
}

// Qwen2's q/k/v biases, Qwen3's q/k head norms and Gemma 2 / 3's sandwich norms are layer
// vectors: tied ones are the mean of the layers their block layer ties (average rule), per-loop
// ones the position's own layer's.
TEST(ConvertFamilies, QwenAndGemmaVectorsAreAveragedOrPerLoop) {
  for (const FamilyCase& f : {kFamilies[4], kFamilies[5], kFamilies[6], kFamilies[7]}) {
    SCOPED_TRACE(f.name);
    const ModelSpec ospec = family_spec(f, 4);
    auto orig = random_family_original(ospec);
    const char* vec = f.family == Family::qwen2    ? "attn.k.bias"
                      : f.family == Family::qwen3  ? "attn.k_norm.weight"
                      : f.family == Family::gemma3 ? "attn_post_norm.weight"
                                                   : "mlp_post_norm.weight";
    EXPECT_TRUE(orig->registry().has(std::string("block.3.") + vec));
    EXPECT_EQ(orig->registry().has("block.0.attn.o.bias"), false);
    // Cycle, B = 2, average: block layer 1 ties original layers 1 and 3.
    Converted tied = convert_to_recursive(ospec, *orig, {.loops = 2, .init = InitRule::average});
    const std::string b1 = std::string("block.1.") + vec;
    const int j = tied.params->registry().index(b1);
    const float* l1 = orig->value(std::string("block.1.") + vec);
    const float* l3 = orig->value(std::string("block.3.") + vec);
    for (int64_t i = 0; i < tied.params->numel(j); ++i)
      EXPECT_NEAR(tied.params->value(j)[i], 0.5 * (static_cast<double>(l1[i]) + l3[i]), 1e-6);
    // Per loop: position (loop 1, layer 1) is original layer 3, copied bit for bit.
    Converted per = convert_to_recursive(
        ospec, *orig, {.loops = 2, .init = InitRule::average, .per_loop_norms = true});
    EXPECT_FALSE(per.params->registry().has(b1));
    const int k = per.params->registry().index(std::string("loop.1.block.1.") + vec);
    EXPECT_EQ(std::memcmp(per.params->value(k), l3, per.params->numel(k) * 4), 0);
  }
}

TEST(Convert, OneLoopStepwiseIsTheOriginal) {
  ModelSpec ospec = original_spec(4);
  auto orig = random_original(ospec, /*random_norms=*/true);
  Converted c = convert_to_recursive(ospec, *orig, {.loops = 1});
  std::vector<float> a = logits_of(ospec, *orig), b = logits_of(c.spec, *c.params);
  EXPECT_EQ(max_diff(a, b), 0.0);
}

// ---------------------------------------------------------------------------------------------
TEST(Convert, RejectsBadInputs) {
  ModelSpec ospec = original_spec(6);
  auto orig = random_original(ospec);
  EXPECT_THROW(convert_to_recursive(ospec, *orig, {.loops = 4}), Error);  // 4 does not divide 6
  EXPECT_THROW(convert_to_recursive(ospec, *orig, {.loops = 0}), Error);
  EXPECT_THROW(convert_to_recursive(ospec, *orig, {.loops = 2, .rank_attention = -1}), Error);
  EXPECT_THROW(convert_to_recursive(ospec, *orig, {.loops = 2, .rank_mlp = -1}), Error);
  // A rank above min(in, out) is capped there (docs/method.md §2.2): the same model as full rank.
  Converted capped = convert_to_recursive(ospec, *orig, {.loops = 2, .rank_attention = kFull + 9});
  EXPECT_EQ(capped.params->registry().total_numel(),
            convert_to_recursive(ospec, *orig, {.loops = 2, .rank_attention = kFull})
                .params->registry()
                .total_numel());
  ModelSpec looped = original_spec(3);
  looped.recursion.loops = 2;
  ParameterSet lp(looped);
  EXPECT_THROW(convert_to_recursive(looped, lp, {.loops = 3}), Error);
  ModelSpec lora = original_spec(6);
  lora.lora.rank_attention = 2;
  ParameterSet lorap(lora);
  EXPECT_THROW(convert_to_recursive(lora, lorap, {.loops = 2}), Error);
  // Parameters of another shape than the spec says.
  ModelSpec wider = original_spec(6);
  wider.model.ffn = 48;
  EXPECT_THROW(convert_to_recursive(wider, *orig, {.loops = 2}), Error);
  // K = 1 and K = L are allowed (plain copy / one shared layer).
  EXPECT_NO_THROW(convert_to_recursive(ospec, *orig, {.loops = 1}));
  EXPECT_NO_THROW(convert_to_recursive(ospec, *orig, {.loops = 6}));
}

}  // namespace
}  // namespace rrt
