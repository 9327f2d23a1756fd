// Export to Hugging Face of every family, read back by this file's own HF names (independent
// of hf_export's and hf_import's tables), which check NeoX's fused per-head qkv layout (parallel
// and sequential residual) and the config.json keys transformers reads; relaxed models of every
// family export to the same logits; models no HF architecture expresses are refused.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/safetensors.h"
#include "model/convert.h"
#include "model/hf_export.h"
#include "model/hf_import.h"
#include "tests/error_helpers.h"
#include "tests/model/hf_export_fixture.h"

namespace rrt {
namespace {

using namespace hf_export_test;  // fs, the fixtures and helpers

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

}  // namespace
}  // namespace rrt
