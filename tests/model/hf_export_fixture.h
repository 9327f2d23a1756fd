// What the HF export tests share (test_hf_export.cpp, test_hf_export_families.cpp): fixtures,
// a temporary directory, comparisons of two imported models, logits of a model on fixed tokens,
// and the family models: small specs per family, random weights, and the relaxed cases that are
// exported and checked (here and by tools/check_export_with_transformers.py).
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "core/rng.h"
#include "model/convert.h"
#include "model/hf_import.h"
#include "model/recursive_model.h"
#include "tests/model/families.h"

namespace rrt::hf_export_test {

namespace fs = std::filesystem;

inline constexpr int64_t kN = 2, kT = 8;

inline std::string fixture(const std::string& name) {
  return std::string(RRT_FIXTURE_DIR) + "/" + name;
}

// A fresh directory under the temp dir, removed at the end of the test.
struct TempDir {
  fs::path path;
  explicit TempDir(const std::string& tag) {
    path = fs::temp_directory_path() / ("rrt_export_" + tag + "_" + std::to_string(::getpid()));
    fs::remove_all(path);
  }
  ~TempDir() { fs::remove_all(path); }
  std::string str(const std::string& sub = "") const { return (path / sub).string(); }
};

inline void expect_same_params(const HfModel& a, const HfModel& b, const std::string& what) {
  const ParamRegistry& ra = a.params->registry();
  const ParamRegistry& rb = b.params->registry();
  ASSERT_EQ(ra.size(), rb.size()) << what;
  for (int i = 0; i < ra.size(); ++i) {
    const std::string& name = ra[i].name;
    ASSERT_TRUE(rb.has(name)) << what << ": " << name;
    const int j = rb.index(name);
    ASSERT_EQ(ra[i].shape.str(), rb[j].shape.str()) << what << ": " << name;
    EXPECT_EQ(
        std::memcmp(a.params->value(i), b.params->value(j), a.params->numel(i) * sizeof(float)), 0)
        << what << ": tensor " << name << " differs";
  }
}

inline void expect_same_config(const ModelConfig& a, const ModelConfig& b) {
  EXPECT_EQ(a.vocab, b.vocab);
  EXPECT_EQ(a.d_model, b.d_model);
  EXPECT_EQ(a.n_heads, b.n_heads);
  EXPECT_EQ(a.n_kv_heads, b.n_kv_heads);
  EXPECT_EQ(a.dh(), b.dh());
  EXPECT_EQ(a.ffn, b.ffn);
  EXPECT_EQ(a.max_seq_len, b.max_seq_len);
  EXPECT_EQ(a.norm_eps, b.norm_eps);
  EXPECT_EQ(a.rope_theta, b.rope_theta);
  EXPECT_EQ(a.tied_head, b.tied_head);
  EXPECT_EQ(a.family, b.family);
  EXPECT_EQ(a.norm, b.norm);
  EXPECT_EQ(a.activation, b.activation);
  EXPECT_EQ(a.linear_bias, b.linear_bias);
  EXPECT_EQ(a.qkv_bias, b.qkv_bias);
  EXPECT_EQ(a.qk_norm, b.qk_norm);
  EXPECT_EQ(a.rope_scaling, b.rope_scaling);
  EXPECT_EQ(a.norm_unit_offset, b.norm_unit_offset);
  EXPECT_EQ(a.embedding_multiplier(), b.embedding_multiplier());
  EXPECT_EQ(a.parallel_residual, b.parallel_residual);
  EXPECT_EQ(a.rot_dim(), b.rot_dim());
  EXPECT_EQ(a.sandwich_norm, b.sandwich_norm);
  EXPECT_EQ(a.query_scale(), b.query_scale());
  EXPECT_EQ(a.rope_local_theta, b.rope_local_theta);
  EXPECT_EQ(a.sliding_window, b.sliding_window);
  EXPECT_EQ(a.sliding_layers, b.sliding_layers);
  EXPECT_EQ(a.attn_logit_softcapping, b.attn_logit_softcapping);
}

inline std::vector<int32_t> tokens(int64_t vocab) {
  std::vector<int32_t> t(kN * kT);
  for (int64_t i = 0; i < kN * kT; ++i) t[i] = static_cast<int32_t>((i * 37 + 11) % vocab);
  return t;
}

inline std::vector<float> logits_of(const ModelSpec& spec, const ParameterSet& params) {
  RecursiveModel model(spec, ModelCapacity{.max_batch = kN, .max_seq = kT, .threads = 1});
  ParameterSet& dst = model.params();
  EXPECT_EQ(dst.registry().size(), params.registry().size());
  for (int i = 0; i < params.registry().size(); ++i) {
    const int j = dst.registry().index(params.registry()[i].name);
    std::memcpy(dst.value(j), params.value(i), params.numel(i) * sizeof(float));
  }
  std::vector<float> out(kN * kT * spec.model.vocab);
  std::vector<int32_t> tok = tokens(spec.model.vocab);
  model.logits(tok.data(), kN, kT, out.data());
  return out;
}

inline double max_abs(const std::vector<float>& v) {
  double m = 0;
  for (float x : v) m = std::max(m, std::fabs(static_cast<double>(x)));
  return m;
}
inline double max_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i)
    m = std::max(m, std::fabs(static_cast<double>(a[i]) - b[i]));
  return m;
}

// ---------------------------------------------------------------------------------------------
// Every family. Gemma: MQA with head_dim 12 != d / heads, (1 + w) norms, GeGLU, scaled
// embeddings, tied head. NeoX: LayerNorm with bias, biased projections, GELU MLP, 4 of 16 head
// dims rotated, fused qkv; parallel and sequential residual.
using testing::FamilyCase;
using testing::kFamilies;

inline ModelSpec family_spec(const FamilyCase& f, int64_t loops, int64_t block_layers) {
  ModelSpec s;
  ModelConfig& m = s.model;
  apply_family_defaults(m, f.family);
  m.parallel_residual = f.parallel;
  m.vocab = 40;
  m.d_model = 32;
  m.ffn = 48;
  m.max_seq_len = 16;
  m.rope_theta = 500.0;
  m.norm_eps = 1e-5;
  m.n_heads = 4;
  m.n_kv_heads = f.family == Family::neox ? 4 : 2;
  if (f.family == Family::gemma) {
    m.n_kv_heads = 1;
    m.head_dim = 12;
  }
  if (f.family == Family::neox) m.n_heads = m.n_kv_heads = 2;  // Dh 16, rot_dim 4
  if (f.family == Family::qwen3) m.head_dim = 12;
  if (f.family == Family::gemma3 || f.family == Family::gemma2) {
    m.head_dim = 12;
    m.query_pre_attn_scalar = 10.0;
  }
  if (f.family == Family::gemma3) {  // local, global, local, global, ... from base 50
    m.rope_local_theta = 50.0;
    m.sliding_window = 5;  // shorter than the kT = 8 tokens: the mask takes effect
    m.sliding_layers = {true, false};
  }
  if (f.family == Family::gemma2) {  // every position windowed, soft-capped scores
    m.sliding_window = 6;
    m.attn_logit_softcapping = 3.0;
  }
  s.recursion.loops = loops;
  s.recursion.block_layers = block_layers;
  return s;
}

// Random weights and LoRA (B too, so every position's LoRA changes the function), and norms and
// biases that differ per layer (and per position with per-loop norms).
inline std::unique_ptr<ParameterSet> random_params(const ModelSpec& spec, uint64_t seed) {
  auto p = std::make_unique<ParameterSet>(spec);
  p->init({.seed = seed, .std = 0.2, .lora_b_zero = false});
  for (int i = 0; i < p->registry().size(); ++i) {
    const ParamInfo& info = p->registry()[i];
    if (info.kind == ParamKind::norm || info.kind == ParamKind::final_norm)
      fill_normal(p->value(i), p->numel(i), spec.model.norm_unit_offset ? 0.0 : 1.0, 0.3, seed + 1,
                  i);
    if (info.kind == ParamKind::bias) fill_normal(p->value(i), p->numel(i), 0.0, 0.3, seed + 2, i);
  }
  return p;
}

struct RelaxedFamilyCase {
  FamilyCase family;
  Sharing sharing;
  int64_t loops, block_layers;
  bool per_loop_norms;
  bool flip_tied_head;     // the family default's opposite
  bool tanh_gelu = false;  // NeoX with the tanh GELU (hidden_act gelu_pytorch_tanh)
  ops::RopeScalingType rope = ops::RopeScalingType::none;  // Llama 3.x RoPE scaling
};
inline const RelaxedFamilyCase kRelaxedFamilies[] = {
    {kFamilies[1], Sharing::cycle, 2, 2, false, false},
    {kFamilies[1], Sharing::sequence, 3, 1, true, true},
    {kFamilies[2], Sharing::cycle, 2, 2, false, false},
    {kFamilies[2], Sharing::sequence, 2, 2, true, true},
    {kFamilies[3], Sharing::cycle, 3, 1, true, false},
    {kFamilies[3], Sharing::sequence, 2, 2, false, false, true},
    {kFamilies[0], Sharing::cycle, 2, 2, true, false},
    {kFamilies[0], Sharing::sequence, 2, 2, false, true, false, ops::RopeScalingType::llama3},
    {kFamilies[0], Sharing::cycle, 2, 2, false, false, false, ops::RopeScalingType::linear},
    {kFamilies[4], Sharing::cycle, 2, 2, true, false},     // Qwen2: per-loop q/k/v biases
    {kFamilies[4], Sharing::sequence, 3, 1, false, true},  // tied (averaged) biases
    {kFamilies[5], Sharing::cycle, 2, 2, true, false},     // Qwen3: per-loop q/k norms
    {kFamilies[5], Sharing::sequence, 2, 2, false, false, false, ops::RopeScalingType::llama3},
    // Gemma 3: per-loop q/k and sandwich norms; tied ones with the global layers' linear scaling.
    {kFamilies[6], Sharing::cycle, 2, 2, true, false},
    {kFamilies[6], Sharing::sequence, 3, 1, false, true, false, ops::RopeScalingType::linear},
    {kFamilies[7], Sharing::cycle, 2, 2, true, false},  // Gemma 2
};

// A relaxed model (rank 3 everywhere; random LoRA, norms and biases) of one case.
inline Converted relaxed_family_model(const RelaxedFamilyCase& c) {
  Converted r;
  r.spec = family_spec(c.family, c.loops, c.block_layers);
  r.spec.recursion.sharing = c.sharing;
  r.spec.recursion.per_loop_norms = c.per_loop_norms;
  if (c.flip_tied_head) r.spec.model.tied_head = !r.spec.model.tied_head;
  if (c.tanh_gelu) r.spec.model.activation = Activation::gelu_tanh;
  if (c.rope == ops::RopeScalingType::llama3)
    r.spec.model.rope_scaling = {.type = c.rope,
                                 .factor = 4.0,
                                 .low_freq_factor = 1.0,
                                 .high_freq_factor = 4.0,
                                 .original_max_positions = 8};
  if (c.rope == ops::RopeScalingType::linear)
    r.spec.model.rope_scaling = {.type = c.rope, .factor = 2.5};
  r.spec.lora.rank_attention = r.spec.lora.rank_mlp = 3;
  r.spec.lora.alpha = 6.0;  // s = 2: the scale is merged too
  r.params = random_params(r.spec, 21);
  return r;
}

inline std::string case_name(const RelaxedFamilyCase& c) {
  return std::string(c.family.name) + "_" + to_string(c.sharing) + "_K" + std::to_string(c.loops) +
         (c.per_loop_norms ? "_per_loop" : "") + (c.flip_tied_head ? "_head_flipped" : "") +
         (c.tanh_gelu ? "_tanh_gelu" : "") +
         (c.rope != ops::RopeScalingType::none ? "_rope_" + to_string(c.rope) : "");
}

}  // namespace rrt::hf_export_test
