// Export to Hugging Face (model/hf_export.h): the HF fixtures of every family survive import ->
// export -> import bit for bit, a relaxed recursive model exports to a plain model with the same
// logits (cycle and sequence sharing, per-loop norms, a tied head), and bad output directories
// are refused with a message. Gemma and NeoX (parallel and sequential residual) exports are also
// read back by this file's own HF names (independent of hf_export's and hf_import's tables),
// which check NeoX's fused per-head qkv layout; models no HF architecture expresses are refused.
//
// With RRT_EXPORT_CHECK_DIR set, RelaxedExport.WritesTransformersCheck also leaves relaxed
// exports of every family there, each with rrt_logits.safetensors (tokens, logits), for
// tools/check_export_with_transformers.py.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"
#include "core/rng.h"
#include "core/safetensors.h"
#include "model/convert.h"
#include "model/hf_export.h"
#include "model/hf_import.h"
#include "model/recursive_model.h"
#include "tests/error_helpers.h"
#include "tests/model/families.h"

namespace rrt {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kN = 2, kT = 8;

std::string fixture(const std::string& name) { return std::string(RRT_FIXTURE_DIR) + "/" + name; }

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

void expect_same_params(const HfModel& a, const HfModel& b, const std::string& what) {
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

void expect_same_config(const ModelConfig& a, const ModelConfig& b) {
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

TEST(HfExport, RoundTripIsBitwise) {
  for (const char* name :
       {"hf_llama_gqa", "hf_llama_mqa_tied_bf16", "hf_llama_sharded", "hf_gemma_mqa_bf16",
        "hf_neox_parallel", "hf_neox_sequential_fp16_sharded", "hf_llama3_rope",
        "hf_llama_rope_linear", "hf_llama_rope_dynamic", "hf_qwen2_tied", "hf_qwen3", "hf_gemma3",
        "hf_gemma3_mqa_untied_bf16", "hf_gemma3_window", "hf_gemma2", "hf_gemma2_softcap"}) {
    SCOPED_TRACE(name);
    TempDir dir(std::string("rt_") + name);
    HfModel src = load_hf_model(fixture(name));
    export_hf(src.spec, *src.params, dir.str());
    HfModel back = load_hf_model(dir.str());
    EXPECT_EQ(back.spec.model.n_layers, src.spec.model.n_layers);
    expect_same_config(src.spec.model, back.spec.model);
    expect_same_params(src, back, name);
    SafetensorsFile f(dir.str("model.safetensors"));
    const bool neox = src.spec.model.family == Family::neox;
    EXPECT_EQ(f.has(neox ? "embed_out.weight" : "lm_head.weight"), !src.spec.model.tied_head);
    EXPECT_EQ(f.metadata().at("format"), "pt");
    for (const auto& [t, info] : f.tensors()) EXPECT_EQ(info.dtype, "F32") << t;
    const auto cfg = nlohmann::json::parse(std::ifstream(dir.str("config.json")));
    const auto src_cfg = nlohmann::json::parse(std::ifstream(fixture(name) + "/config.json"));
    EXPECT_EQ(cfg.at("tie_word_embeddings").get<bool>(), src.spec.model.tied_head);
    EXPECT_EQ(cfg.at("model_type"), src_cfg.at("model_type"));
    EXPECT_EQ(cfg.at("architectures"), src_cfg.at("architectures"));
    // The RoPE (and its scaling) as the source spelled it: every key transformers reads.
    const auto& rope = cfg.at("rope_parameters");
    const auto& src_rope = src_cfg.at("rope_parameters");
    for (const auto& [key, value] : src_rope.items())
      EXPECT_EQ(rope.at(key), value) << "rope_parameters." << key;
    EXPECT_EQ(rope.size(), src_rope.size()) << rope.dump();
    EXPECT_EQ(src.spec.model.rope_scaling, back.spec.model.rope_scaling);
  }
}

std::vector<int32_t> tokens(int64_t vocab) {
  std::vector<int32_t> t(kN * kT);
  for (int64_t i = 0; i < kN * kT; ++i) t[i] = static_cast<int32_t>((i * 37 + 11) % vocab);
  return t;
}

std::vector<float> logits_of(const ModelSpec& spec, const ParameterSet& params) {
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

double max_abs(const std::vector<float>& v) {
  double m = 0;
  for (float x : v) m = std::max(m, std::fabs(static_cast<double>(x)));
  return m;
}
double max_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i)
    m = std::max(m, std::fabs(static_cast<double>(a[i]) - b[i]));
  return m;
}

// A 4-layer plain model with the gqa fixture's shapes and random weights (so cycle and sequence
// sharing differ: B = 2).
HfModel four_layer_model() {
  HfModel m;
  m.spec.model = read_hf_config(fixture("hf_llama_gqa"));
  m.spec.model.n_layers = 4;
  m.spec.recursion.block_layers = 4;
  m.spec.recursion.loops = 1;
  m.params = std::make_unique<ParameterSet>(m.spec);
  m.params->init({.seed = 7, .std = 0.2});
  return m;
}

struct RelaxedCase {
  const char* name;
  Sharing sharing;
  int64_t loops;
  bool per_loop_norms;
};

// Exports the relaxed conversion of `orig` and checks the exported plain model's logits.
void check_relaxed(const HfModel& orig, const RelaxedCase& c, const std::string& dir) {
  SCOPED_TRACE(c.name);
  ConvertOptions o;
  o.loops = c.loops;
  o.sharing = c.sharing;
  o.init = InitRule::average;
  o.rank_attention = o.rank_mlp = 4;
  o.lora_init = LoraInit::svd;
  o.per_loop_norms = c.per_loop_norms;
  Converted relaxed = convert_to_recursive(orig.spec, *orig.params, o);
  export_hf(relaxed.spec, *relaxed.params, dir, /*overwrite=*/true);
  HfModel plain = load_hf_model(dir);
  EXPECT_EQ(plain.spec.positions(), orig.spec.positions());
  const std::vector<float> ref = logits_of(relaxed.spec, *relaxed.params);
  const std::vector<float> got = logits_of(plain.spec, *plain.params);
  const double scale = max_abs(ref);
  ASSERT_GT(scale, 0);
  EXPECT_LE(max_diff(got, ref), 1e-5 * scale);
  // The LoRA matters: the pure recursive model (rank 0) differs clearly.
  ConvertOptions pure = o;
  pure.rank_attention = pure.rank_mlp = 0;
  Converted r0 = convert_to_recursive(orig.spec, *orig.params, pure);
  EXPECT_GT(max_diff(logits_of(r0.spec, *r0.params), ref), 1e-3 * scale);
}

TEST(RelaxedExport, MergedLoraGivesTheSameLogits) {
  TempDir dir("relaxed");
  HfModel gqa = load_hf_model(fixture("hf_llama_gqa"));
  check_relaxed(gqa, {"gqa cycle", Sharing::cycle, 2, false}, dir.str());
  check_relaxed(gqa, {"gqa sequence", Sharing::sequence, 2, false}, dir.str());
  HfModel four = four_layer_model();
  check_relaxed(four, {"4-layer cycle", Sharing::cycle, 2, false}, dir.str());
  check_relaxed(four, {"4-layer sequence", Sharing::sequence, 2, false}, dir.str());
  check_relaxed(four, {"4-layer cycle per-loop norms", Sharing::cycle, 2, true}, dir.str());
  HfModel tied = load_hf_model(fixture("hf_llama_mqa_tied_bf16"));
  check_relaxed(tied, {"tied head, 3 loops", Sharing::cycle, 3, false}, dir.str());
}

TEST(RelaxedExport, MergedWeightIsBlockPlusScaledLora) {
  HfModel four = four_layer_model();
  ConvertOptions o;
  o.loops = 2;
  o.init = InitRule::average;
  o.rank_attention = o.rank_mlp = 3;
  Converted c = convert_to_recursive(four.spec, *four.params, o);
  c.spec.lora.alpha = 6.0;  // s = 2
  for (int64_t l = 0; l < c.spec.positions(); ++l) {
    const Position pos = position_of(c.spec.recursion, l);
    const Proj p = Proj::down;
    const auto [rows, cols] = proj_shape(c.spec.model, p);
    const float* W = c.params->value(ParamRegistry::block_name(pos.layer, p));
    const float* A = c.params->value(ParamRegistry::lora_name(pos.loop, pos.layer, p, true));
    const float* B = c.params->value(ParamRegistry::lora_name(pos.loop, pos.layer, p, false));
    const std::vector<float> got = merged_weight(c.spec, *c.params, l, p);
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t j = 0; j < cols; ++j) {
        double d = 0;
        for (int64_t q = 0; q < 3; ++q) d += static_cast<double>(B[i * 3 + q]) * A[q * cols + j];
        EXPECT_EQ(got[i * cols + j], static_cast<float>(W[i * cols + j] + 2.0 * d));
      }
  }
}

// ---------------------------------------------------------------------------------------------
// Every family. Gemma: MQA with head_dim 12 != d / heads, (1 + w) norms, GeGLU, scaled
// embeddings, tied head. NeoX: LayerNorm with bias, biased projections, GELU MLP, 4 of 16 head
// dims rotated, fused qkv; parallel and sequential residual.
using testing::FamilyCase;
using testing::kFamilies;

ModelSpec family_spec(const FamilyCase& f, int64_t loops, int64_t block_layers) {
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
std::unique_ptr<ParameterSet> random_params(const ModelSpec& spec, uint64_t seed) {
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

// The plain rrt model that the export at `dir` describes, read with this test's own HF names
// (not hf_export's table): structure from `source` (the exported model's config), depth from
// config.json. Fails when the file holds a tensor the names do not account for.
HfModel read_export(const std::string& dir, const ModelConfig& source) {
  HfModel out;
  const auto cfg = nlohmann::json::parse(std::ifstream(fs::path(dir) / "config.json"));
  out.spec.model = source;
  out.spec.model.n_layers = cfg.at("num_hidden_layers").get<int64_t>();
  out.spec.recursion.block_layers = out.spec.model.n_layers;
  out.params = std::make_unique<ParameterSet>(out.spec);
  ParameterSet& p = *out.params;
  const ModelConfig& m = out.spec.model;
  SafetensorsFile f((fs::path(dir) / "model.safetensors").string());
  size_t consumed = 0;
  auto copy = [&](const std::string& hf, const std::string& rrt_name) {
    EXPECT_TRUE(f.has(hf)) << dir << ": no " << hf;
    if (!f.has(hf)) return;
    f.read_f32_into(hf, p.value(rrt_name), p.numel(p.registry().index(rrt_name)));
    ++consumed;
  };
  const bool neox = m.family == Family::neox;
  copy(neox ? "gpt_neox.embed_in.weight" : "model.embed_tokens.weight", "embed.weight");
  for (int64_t l = 0; l < m.n_layers; ++l) {
    const std::string b = "block." + std::to_string(l) + ".";
    if (!neox) {
      const std::string h = "model.layers." + std::to_string(l) + ".";
      copy(h + "input_layernorm.weight", b + "attn_norm.weight");
      if (m.sandwich_norm) {  // Gemma 2 / 3
        copy(h + "post_attention_layernorm.weight", b + "attn_post_norm.weight");
        copy(h + "pre_feedforward_layernorm.weight", b + "mlp_norm.weight");
        copy(h + "post_feedforward_layernorm.weight", b + "mlp_post_norm.weight");
      } else {
        copy(h + "post_attention_layernorm.weight", b + "mlp_norm.weight");
      }
      for (const char* x : {"q", "k", "v", "o"})
        copy(h + "self_attn." + x + "_proj.weight", b + "attn." + x + ".weight");
      for (const char* x : {"gate", "up", "down"})
        copy(h + "mlp." + x + "_proj.weight", b + "mlp." + x + ".weight");
      for (const char* x : {"q", "k", "v"})
        if (m.qkv_bias) copy(h + "self_attn." + x + "_proj.bias", b + "attn." + x + ".bias");
      for (const char* x : {"q", "k"})
        if (m.qk_norm)
          copy(h + "self_attn." + x + "_norm.weight", b + "attn." + x + "_norm.weight");
      continue;
    }
    const std::string h = "gpt_neox.layers." + std::to_string(l) + ".";
    for (const char* x : {".weight", ".bias"}) {
      copy(h + "input_layernorm" + x, b + "attn_norm" + x);
      copy(h + "post_attention_layernorm" + x, b + "mlp_norm" + x);
      copy(h + "attention.dense" + x, b + "attn.o" + x);
      copy(h + "mlp.dense_h_to_4h" + x, b + "mlp.up" + x);
      copy(h + "mlp.dense_4h_to_h" + x, b + "mlp.down" + x);
      // Fused rows per head h: [q_h; k_h; v_h], Dh rows each.
      const std::string fused_name = h + "attention.query_key_value" + x;
      EXPECT_TRUE(f.has(fused_name)) << fused_name;
      if (!f.has(fused_name)) continue;
      const std::vector<float> fused = f.read_f32(fused_name);
      const int64_t block = m.dh() * (x == std::string(".weight") ? m.d_model : 1);
      EXPECT_EQ(static_cast<int64_t>(fused.size()), 3 * m.n_heads * block) << fused_name;
      const char* qkv[3] = {"q", "k", "v"};
      for (int j = 0; j < 3; ++j)
        for (int64_t head = 0; head < m.n_heads; ++head)
          std::copy_n(fused.data() + (3 * head + j) * block, block,
                      p.value(b + "attn." + qkv[j] + x) + head * block);
      ++consumed;
    }
  }
  const std::string final_norm = neox ? "gpt_neox.final_layer_norm" : "model.norm";
  copy(final_norm + ".weight", "final_norm.weight");
  if (m.norm == Norm::layer) copy(final_norm + ".bias", "final_norm.bias");
  if (!m.tied_head) copy(neox ? "embed_out.weight" : "lm_head.weight", "head.weight");
  EXPECT_EQ(consumed, f.tensors().size()) << dir << " holds tensors the HF names do not have";
  return out;
}

// The config.json keys transformers reads for the family's structure.
void expect_family_config(const std::string& dir, const ModelSpec& spec) {
  const ModelConfig& m = spec.model;
  const auto c = nlohmann::json::parse(std::ifstream(fs::path(dir) / "config.json"));
  const char* arch[] = {"LlamaForCausalLM", "GemmaForCausalLM", "GPTNeoXForCausalLM",
                        "Qwen2ForCausalLM", "Qwen3ForCausalLM", "Gemma3ForCausalLM",
                        "Gemma2ForCausalLM"};
  const char* type[] = {"llama", "gemma", "gpt_neox", "qwen2", "qwen3", "gemma3_text", "gemma2"};
  const int fi = static_cast<int>(m.family);
  EXPECT_EQ(c.at("architectures").at(0), arch[fi]);
  EXPECT_EQ(c.at("model_type"), type[fi]);
  EXPECT_EQ(c.at("num_hidden_layers").get<int64_t>(), spec.positions());
  EXPECT_EQ(c.at("tie_word_embeddings").get<bool>(), m.tied_head);
  const bool gemma3 = m.family == Family::gemma3, gemma2 = m.family == Family::gemma2;
  // Gemma 3's RoPE per layer type: the global one is rope_theta's.
  const auto& rope = c.at("rope_parameters");
  EXPECT_EQ((gemma3 ? rope.at("full_attention") : rope).at("rope_theta").get<double>(),
            m.rope_theta);
  if (gemma3 || gemma2) {
    EXPECT_EQ(c.at("hidden_activation"), "gelu_pytorch_tanh");
    EXPECT_EQ(c.at("query_pre_attn_scalar").get<double>(),
              m.query_pre_attn_scalar > 0 ? m.query_pre_attn_scalar : m.dh());
    if (m.attn_logit_softcapping > 0)
      EXPECT_EQ(c.at("attn_logit_softcapping").get<double>(), m.attn_logit_softcapping);
    else
      EXPECT_TRUE(c.at("attn_logit_softcapping").is_null());  // absent: Gemma 2's default 50
    EXPECT_TRUE(c.at("final_logit_softcapping").is_null());
    EXPECT_EQ(c.at("layer_types").size(), static_cast<size_t>(spec.positions()));
    EXPECT_EQ(c.at("sliding_window").get<int64_t>(),
              m.sliding_window > 0 ? m.sliding_window : m.max_seq_len);
    for (int64_t l = 0; l < spec.positions(); ++l)
      EXPECT_EQ(c.at("layer_types").at(l) == "sliding_attention", m.window_at(l) > 0) << l;
  }
  if (gemma3) {
    EXPECT_EQ(rope.at("sliding_attention").at("rope_theta").get<double>(), m.rope_local_theta);
    EXPECT_EQ(c.at("rope_local_base_freq").get<double>(), m.rope_local_theta);
  }
  if (m.family == Family::neox) {
    EXPECT_EQ(c.at("hidden_act"), m.activation == Activation::gelu ? "gelu" : "gelu_pytorch_tanh");
    EXPECT_EQ(c.at("use_parallel_residual").get<bool>(), m.parallel_residual);
    EXPECT_EQ(c.at("layer_norm_eps").get<double>(), m.norm_eps);
    EXPECT_TRUE(c.at("attention_bias").get<bool>());
    const double factor = c.at("rope_parameters").at("partial_rotary_factor").get<double>();
    EXPECT_EQ(static_cast<int64_t>(m.dh() * factor), m.rot_dim());  // transformers' int()
    EXPECT_EQ(c.at("rotary_pct").get<double>(), factor);
  } else {
    EXPECT_EQ(c.at("head_dim").get<int64_t>(), m.dh());
    EXPECT_EQ(c.at("num_key_value_heads").get<int64_t>(), m.n_kv_heads);
    EXPECT_EQ(c.at("rms_norm_eps").get<double>(), m.norm_eps);
    if (!gemma3 && !gemma2) {
      EXPECT_EQ(c.at("hidden_act"), m.family == Family::gemma ? "gelu_pytorch_tanh" : "silu");
    }
  }
}

// Copies of q/k/v's rows `rows` (of head `head`) against the fused tensor's rows of that head.
void expect_fused_rows(const std::vector<float>& fused, const float* part, int j, int64_t head,
                       int64_t dh, int64_t cols) {
  for (int64_t r : {int64_t{0}, dh / 2, dh - 1}) {
    const float* want = part + (head * dh + r) * cols;
    const float* got = fused.data() + ((3 * head + j) * dh + r) * cols;
    EXPECT_EQ(std::memcmp(want, got, cols * sizeof(float)), 0)
        << "part " << j << " head " << head << " row " << r;
  }
}

TEST(FamilyExport, PlainModelHasHfNamesShapesAndFusedQkv) {
  TempDir dir("plain_families");
  for (const FamilyCase& c : kFamilies) {
    SCOPED_TRACE(c.name);
    const ModelSpec spec = family_spec(c, 1, 3);
    auto params = random_params(spec, 11);
    export_hf(spec, *params, dir.str(c.name));
    expect_family_config(dir.str(c.name), spec);
    SafetensorsFile f(dir.str(std::string(c.name) + "/model.safetensors"));
    const ModelConfig& m = spec.model;
    const int64_t D = m.d_model;
    using Dims = std::vector<int64_t>;
    if (c.family == Family::neox) {
      const std::string l1 = "gpt_neox.layers.1.";
      EXPECT_EQ(f.tensors().size(), 1u + 3 * 12 + 2 + 1);  // embed, 3 layers, final norm, head
      EXPECT_EQ(f.info(l1 + "attention.query_key_value.weight").shape, (Dims{3 * D, D}));
      EXPECT_EQ(f.info(l1 + "attention.query_key_value.bias").shape, (Dims{3 * D}));
      EXPECT_EQ(f.info(l1 + "attention.dense.weight").shape, (Dims{D, D}));
      EXPECT_EQ(f.info(l1 + "mlp.dense_h_to_4h.weight").shape, (Dims{m.ffn, D}));
      EXPECT_EQ(f.info(l1 + "mlp.dense_4h_to_h.bias").shape, (Dims{D}));
      EXPECT_EQ(f.info(l1 + "post_attention_layernorm.bias").shape, (Dims{D}));
      EXPECT_EQ(f.info("gpt_neox.final_layer_norm.bias").shape, (Dims{D}));
      EXPECT_EQ(f.info("embed_out.weight").shape, (Dims{m.vocab, D}));
      const std::vector<float> w = f.read_f32(l1 + "attention.query_key_value.weight");
      const std::vector<float> b = f.read_f32(l1 + "attention.query_key_value.bias");
      const char* qkv[3] = {"q", "k", "v"};
      for (int j = 0; j < 3; ++j)
        for (int64_t head = 0; head < m.n_heads; ++head) {
          const std::string name = std::string("block.1.attn.") + qkv[j];
          expect_fused_rows(w, params->value(name + ".weight"), j, head, m.dh(), D);
          expect_fused_rows(b, params->value(name + ".bias"), j, head, m.dh(), 1);
        }
    } else {
      const std::string l1 = "model.layers.1.";
      const size_t per_layer =
          9 + (m.qkv_bias ? 3 : 0) + (m.qk_norm ? 2 : 0) + (m.sandwich_norm ? 2 : 0);
      EXPECT_EQ(f.tensors().size(), 1u + 3 * per_layer + 1 + (m.tied_head ? 0 : 1));
      if (m.qkv_bias) {
        EXPECT_EQ(f.info(l1 + "self_attn.k_proj.bias").shape, (Dims{m.kv_dim()}));
      }
      if (m.qk_norm) {
        EXPECT_EQ(f.info(l1 + "self_attn.q_norm.weight").shape, (Dims{m.dh()}));
      }
      EXPECT_EQ(f.info(l1 + "self_attn.q_proj.weight").shape, (Dims{m.q_dim(), D}));
      EXPECT_EQ(f.info(l1 + "self_attn.k_proj.weight").shape, (Dims{m.kv_dim(), D}));
      EXPECT_EQ(f.info(l1 + "self_attn.o_proj.weight").shape, (Dims{D, m.q_dim()}));
      EXPECT_EQ(f.info(l1 + "mlp.gate_proj.weight").shape, (Dims{m.ffn, D}));
      EXPECT_EQ(f.has("lm_head.weight"), !m.tied_head);
    }
    // Every tensor read back by the independent names is the source's, bit for bit.
    const HfModel back = read_export(dir.str(c.name), m);
    const ParamRegistry& reg = params->registry();
    ASSERT_EQ(back.params->registry().size(), reg.size());
    for (int i = 0; i < reg.size(); ++i)
      EXPECT_EQ(std::memcmp(back.params->value(reg[i].name), params->value(i),
                            params->numel(i) * sizeof(float)),
                0)
          << reg[i].name;
  }
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
const RelaxedFamilyCase kRelaxedFamilies[] = {
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
Converted relaxed_family_model(const RelaxedFamilyCase& c) {
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

std::string case_name(const RelaxedFamilyCase& c) {
  return std::string(c.family.name) + "_" + to_string(c.sharing) + "_K" + std::to_string(c.loops) +
         (c.per_loop_norms ? "_per_loop" : "") + (c.flip_tied_head ? "_head_flipped" : "") +
         (c.tanh_gelu ? "_tanh_gelu" : "") +
         (c.rope != ops::RopeScalingType::none ? "_rope_" + to_string(c.rope) : "");
}

TEST(FamilyExport, RelaxedModelExportsToTheSameLogits) {
  TempDir dir("relaxed_families");
  for (const RelaxedFamilyCase& c : kRelaxedFamilies) {
    const std::string name = case_name(c);
    SCOPED_TRACE(name);
    const Converted r = relaxed_family_model(c);
    export_hf(r.spec, *r.params, dir.str(name));
    expect_family_config(dir.str(name), r.spec);
    const HfModel plain = read_export(dir.str(name), r.spec.model);
    // rrt's importer reads the export as this test's names do, bit for bit.
    const HfModel imported = load_hf_model(dir.str(name));
    expect_same_config(plain.spec.model, imported.spec.model);
    expect_same_params(plain, imported, name);
    const std::vector<float> ref = logits_of(r.spec, *r.params);
    const std::vector<float> got = logits_of(plain.spec, *plain.params);
    const double scale = max_abs(ref);
    ASSERT_GT(scale, 0.1);
    EXPECT_LE(max_diff(got, ref), 1e-5 * scale) << "relative " << max_diff(got, ref) / scale;
    // The LoRA matters: without it (B = 0) the logits differ clearly.
    ParameterSet no_lora(r.spec);
    for (int i = 0; i < r.params->registry().size(); ++i) {
      const bool lora_b = r.params->registry()[i].kind == ParamKind::lora_b;
      float* dst = no_lora.value(i);
      if (lora_b)
        std::fill(dst, dst + no_lora.numel(i), 0.0f);
      else
        std::memcpy(dst, r.params->value(i), no_lora.numel(i) * sizeof(float));
    }
    EXPECT_GT(max_diff(logits_of(r.spec, no_lora), ref), 1e-2 * scale);
  }
}

struct RefusedCase {
  const char* name;
  const FamilyCase& family;
  void (*edit)(ModelConfig&);
  const char* message;  // part of the error
};
const RefusedCase kRefused[] = {
    {"gemma without (1 + w)", kFamilies[1], [](ModelConfig& m) { m.norm_unit_offset = false; },
     "norm_unit_offset"},
    {"llama with LayerNorm", kFamilies[0], [](ModelConfig& m) { m.norm = Norm::layer; },
     "model.norm"},
    {"llama with half rotary", kFamilies[0], [](ModelConfig& m) { m.rotary_fraction = 0.5; },
     "rotates whole heads"},
    {"neox with GQA", kFamilies[2], [](ModelConfig& m) { m.n_kv_heads = 1; }, "grouped-query"},
    {"neox with its own head_dim", kFamilies[2], [](ModelConfig& m) { m.head_dim = 8; },
     "head_dim"},
    // The attention masks' keys: only Gemma 2 / 3's configs say them.
    {"llama with a sliding window", kFamilies[0], [](ModelConfig& m) { m.sliding_window = 4; },
     "model.sliding_window"},
    {"qwen3 with soft-capping", kFamilies[5],
     [](ModelConfig& m) { m.attn_logit_softcapping = 2.0; }, "model.attn_logit_softcapping"},
};

TEST(FamilyExport, RefusesWhatTheFamilysArchitectureCannotExpress) {
  TempDir dir("refused");
  for (const RefusedCase& c : kRefused) {
    SCOPED_TRACE(c.name);
    ModelSpec spec = family_spec(c.family, 2, 1);
    c.edit(spec.model);
    ParameterSet params(spec);
    const std::string msg =
        testing::error_message([&] { export_hf(spec, params, dir.str(c.name)); });
    EXPECT_TRUE(testing::contains(msg, c.message)) << msg;
    EXPECT_FALSE(fs::exists(dir.str(c.name))) << "the refused export created its directory";
  }
}

// Exports (spec, params) to dir with rrt's logits beside it (rrt_logits.safetensors), for
// tools/check_export_with_transformers.py.
void write_check(const ModelSpec& spec, const ParameterSet& params, const std::string& dir) {
  export_hf(spec, params, dir, /*overwrite=*/true);
  const std::vector<float> logits = logits_of(spec, params);
  const std::vector<int32_t> tok = tokens(spec.model.vocab);
  write_safetensors((fs::path(dir) / "rrt_logits.safetensors").string(),
                    {{"tokens", "I32", {kN, kT}, tok.data()},
                     {"logits", "F32", {kN, kT, spec.model.vocab}, logits.data()}});
}

void write_converted_check(const HfModel& orig, const ConvertOptions& o, const std::string& dir) {
  Converted relaxed = convert_to_recursive(orig.spec, *orig.params, o);
  write_check(relaxed.spec, *relaxed.params, dir);
}

// Leaves in RRT_EXPORT_CHECK_DIR: cycle_untied (the 4-layer Llama, cycle, rank 4),
// sequence_tied (the tied-head MQA Llama fixture, 3 loops, sequence, rank 4, per-loop norms),
// and one directory per kRelaxedFamilies case (Gemma, NeoX parallel and sequential, ...).
TEST(RelaxedExport, WritesTransformersCheck) {
  const char* env = std::getenv("RRT_EXPORT_CHECK_DIR");
  if (!env || !*env) GTEST_SKIP() << "set RRT_EXPORT_CHECK_DIR to write the transformers check";
  ConvertOptions o;
  o.loops = 2;
  o.init = InitRule::average;
  o.rank_attention = o.rank_mlp = 4;
  write_converted_check(four_layer_model(), o, (fs::path(env) / "cycle_untied").string());
  o.loops = 3;
  o.sharing = Sharing::sequence;
  o.per_loop_norms = true;
  write_converted_check(load_hf_model(fixture("hf_llama_mqa_tied_bf16")), o,
                        (fs::path(env) / "sequence_tied").string());
  // Gemma 3 from transformers' own fixture: local and global layers tied into one block layer
  // (K = 2 over 4 layers, cycle), per-loop norms, the global layers' linear RoPE scaling.
  o.loops = 2;
  o.sharing = Sharing::cycle;
  write_converted_check(load_hf_model(fixture("hf_gemma3")), o,
                        (fs::path(env) / "gemma3_fixture_cycle").string());
  for (const RelaxedFamilyCase& c : kRelaxedFamilies) {
    const Converted r = relaxed_family_model(c);
    write_check(r.spec, *r.params, (fs::path(env) / case_name(c)).string());
  }
}

TEST(HfExport, Bf16WeightsAndTheTokenizersIds) {
  const HfModel src = load_hf_model(fixture("hf_qwen2_tied"));
  TempDir dir("bf16");
  export_hf(src.spec, *src.params, dir.str(),
            HfExportOptions{.dtype = DType::bf16, .bos_id = -1, .eos_id = 5});
  const SafetensorsFile f(dir.str("model.safetensors"));
  for (const auto& [t, info] : f.tensors()) EXPECT_EQ(info.dtype, "BF16") << t;
  const auto cfg = nlohmann::json::parse(std::ifstream(dir.str("config.json")));
  EXPECT_EQ(cfg.at("dtype"), "bfloat16");
  EXPECT_EQ(cfg.at("eos_token_id"), 5);
  EXPECT_FALSE(cfg.contains("bos_token_id"));
  const auto gen = nlohmann::json::parse(std::ifstream(dir.str("generation_config.json")));
  EXPECT_EQ(gen.at("eos_token_id"), 5);
  // Every weight rounded once to nearest even.
  const HfModel back = load_hf_model(dir.str());
  for (int i = 0; i < src.params->registry().size(); ++i) {
    const std::string& name = src.params->registry()[i].name;
    const float* x = src.params->value(i);
    const float* y = back.params->value(back.params->registry().index(name));
    for (int64_t k = 0; k < src.params->numel(i); ++k)
      ASSERT_EQ(y[k], bf16::from_float(x[k]).to_float()) << name << "[" << k << "]";
  }
  // Exported again without a tokenizer: no stale generation_config.json is left.
  export_hf(src.spec, *src.params, dir.str(), /*overwrite=*/true);
  EXPECT_FALSE(fs::exists(dir.str("generation_config.json")));
  const auto cfg32 = nlohmann::json::parse(std::ifstream(dir.str("config.json")));
  EXPECT_EQ(cfg32.at("dtype"), "float32");
  EXPECT_FALSE(cfg32.contains("eos_token_id"));
}

TEST(HfExport, RefusesBadOutputDirectories) {
  HfModel src = load_hf_model(fixture("hf_llama_gqa"));
  TempDir dir("errors");
  fs::create_directories(dir.path / "full");
  std::ofstream(dir.path / "full" / "notes.txt") << "keep me\n";
  try {
    export_hf(src.spec, *src.params, dir.str("full"));
    FAIL() << "a non-empty directory was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("is not empty"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("--force"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(dir.path / "full" / "config.json"));
  export_hf(src.spec, *src.params, dir.str("full"), /*overwrite=*/true);
  EXPECT_TRUE(fs::exists(dir.path / "full" / "notes.txt"));
  expect_same_params(src, load_hf_model(dir.str("full")), "forced");

  std::ofstream(dir.path / "a_file") << "x";
  try {
    export_hf(src.spec, *src.params, dir.str("a_file/sub"));
    FAIL() << "a directory under a regular file was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("cannot create the directory"), std::string::npos)
        << e.what();
  }
  try {
    export_hf(src.spec, *src.params, dir.str("a_file"));
    FAIL() << "a regular file was accepted as the output directory";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("not a directory"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace rrt
