// Gemma 3 (Gemma3ForCausalLM) and Gemma 2 (Gemma2ForCausalLM) import beyond the parity of
// test_hf_import.cpp's HfParity: the config fields they map onto (sandwich norms, q/k norms,
// query_pre_attn_scalar, local and global RoPE, layer types), every key rrt does not compute
// refused by name, attention and final logit soft-capping, and the fixture whose sliding window is
// shorter than its sequence (their parity with transformers: HfParity).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>

#include "core/error.h"
#include "model/hf_import.h"
#include "tests/error_helpers.h"

namespace rrt {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

std::string fixture(const std::string& name) { return std::string(RRT_FIXTURE_DIR) + "/" + name; }

// A fixture's config.json edited by `edit`, in a folder of its own; returns what
// read_hf_config says about it ("" when it imports).
std::string import_error(const char* name, const std::function<void(json&)>& edit,
                         ModelConfig* out = nullptr) {
  const auto* t = ::testing::UnitTest::GetInstance()->current_test_info();
  const fs::path dir =
      fs::temp_directory_path() / ("rrt_gemma3_" + std::to_string(getpid()) + "_" + t->name());
  fs::remove_all(dir);
  fs::create_directories(dir);
  json c;
  std::ifstream(fixture(name) + "/config.json") >> c;
  edit(c);
  std::ofstream(dir / "config.json") << c.dump(2);
  std::string msg;
  try {
    const ModelConfig m = read_hf_config(dir.string());
    if (out) *out = m;
  } catch (const Error& e) {
    msg = e.what();
  }
  fs::remove_all(dir);
  return msg;
}

TEST(HfGemma3, ConfigFields) {
  const ModelConfig g = read_hf_config(fixture("hf_gemma3"));
  EXPECT_EQ(g.family, Family::gemma3);
  EXPECT_TRUE(g.sandwich_norm);
  EXPECT_TRUE(g.qk_norm);
  EXPECT_TRUE(g.norm_unit_offset);
  EXPECT_EQ(g.activation, Activation::geglu);
  EXPECT_EQ(g.embed_scale, 0.0);
  EXPECT_TRUE(g.tied_head);
  EXPECT_EQ(g.dh(), 12);
  EXPECT_DOUBLE_EQ(g.query_pre_attn_scalar, 20.0);
  EXPECT_DOUBLE_EQ(g.query_scale(), std::sqrt(12.0 / 20.0));
  // Global layers: base 5000 scaled linearly by 2; local layers: base 100, unscaled.
  EXPECT_DOUBLE_EQ(g.rope_theta, 5000.0);
  EXPECT_EQ(g.rope_scaling.type, ops::RopeScalingType::linear);
  EXPECT_DOUBLE_EQ(g.rope_scaling.factor, 2.0);
  EXPECT_DOUBLE_EQ(g.rope_local_theta, 100.0);
  // layer_types sliding, sliding, full, sliding: the pattern of period 3, local RoPE on the
  // sliding ones.
  EXPECT_EQ(g.sliding_window, 64);
  EXPECT_EQ(g.sliding_layers, (std::vector<bool>{true, true, false}));
  for (int64_t l = 0; l < 4; ++l) {
    EXPECT_EQ(g.local_rope_at(l), l != 2) << l;
    EXPECT_EQ(g.window_at(l), l != 2 ? 64 : 0) << l;
  }
  EXPECT_DOUBLE_EQ(g.attn_logit_softcapping, 0.0);
  EXPECT_NO_THROW(check_family_structure(g));

  // Every layer sliding (3 layers under the default pattern of 6), MQA, untied.
  const ModelConfig u = read_hf_config(fixture("hf_gemma3_mqa_untied_bf16"));
  EXPECT_FALSE(u.tied_head);
  EXPECT_EQ(u.n_kv_heads, 1);
  EXPECT_DOUBLE_EQ(u.query_scale(), 1.0);
  EXPECT_TRUE(u.sliding_layers.empty());  // every layer slides
  EXPECT_EQ(u.sliding_window, 48);
  for (int64_t l = 0; l < 3; ++l) EXPECT_TRUE(u.local_rope_at(l)) << l;
  EXPECT_DOUBLE_EQ(u.rope_local_theta, 1000.0);
  EXPECT_EQ(u.rope_scaling.type, ops::RopeScalingType::none);

  const ModelConfig g2 = read_hf_config(fixture("hf_gemma2"));
  EXPECT_EQ(g2.family, Family::gemma2);
  EXPECT_TRUE(g2.sandwich_norm);
  EXPECT_FALSE(g2.qk_norm);
  EXPECT_DOUBLE_EQ(g2.query_pre_attn_scalar, 12.0);
  EXPECT_EQ(g2.sliding_layers, (std::vector<bool>{true, false}));  // alternating
  EXPECT_EQ(g2.rope_local_theta, 0.0);                             // one RoPE for every layer
  EXPECT_FALSE(g2.local_rope_at(0));
  EXPECT_DOUBLE_EQ(g2.rope_theta, 5000.0);
  EXPECT_NO_THROW(check_family_structure(g2));
}

// transformers 4's spelling of the same model: rope_theta, rope_local_base_freq and
// rope_scaling at the top level, sliding_window_pattern instead of layer_types.
TEST(HfGemma3, Transformers4Keys) {
  ModelConfig old;
  ASSERT_EQ(import_error(
                "hf_gemma3",
                [](json& c) {
                  c.erase("rope_parameters");
                  c.erase("layer_types");
                  c["rope_theta"] = 5000.0;
                  c["rope_local_base_freq"] = 100.0;
                  c["rope_scaling"] = {{"rope_type", "linear"}, {"factor", 2.0}};
                  c["sliding_window_pattern"] = 3;
                },
                &old),
            "");
  const ModelConfig now = read_hf_config(fixture("hf_gemma3"));
  EXPECT_EQ(old.rope_scaling, now.rope_scaling);
  EXPECT_DOUBLE_EQ(old.rope_theta, now.rope_theta);
  EXPECT_DOUBLE_EQ(old.rope_local_theta, now.rope_local_theta);
  EXPECT_EQ(old.sliding_layers, now.sliding_layers);
  // Gemma3TextConfig's defaults when nothing is said: global base 1e6, local 1e4, pattern 6,
  // query_pre_attn_scalar 256.
  ModelConfig bare;
  ASSERT_EQ(import_error(
                "hf_gemma3",
                [](json& c) {
                  for (const char* k : {"rope_parameters", "layer_types", "sliding_window_pattern",
                                        "_sliding_window_pattern", "query_pre_attn_scalar"})
                    c.erase(k);
                },
                &bare),
            "");
  EXPECT_DOUBLE_EQ(bare.rope_theta, 1e6);
  EXPECT_DOUBLE_EQ(bare.rope_local_theta, 1e4);
  EXPECT_DOUBLE_EQ(bare.query_pre_attn_scalar, 256.0);
  ModelConfig no_window;
  ASSERT_EQ(import_error(
                "hf_gemma3", [](json& c) { c.erase("sliding_window"); }, &no_window),
            "");
  EXPECT_EQ(no_window.sliding_window, 4096);
  EXPECT_TRUE(bare.sliding_layers.empty());  // 4 layers < 6: all sliding
  EXPECT_TRUE(bare.local_rope_at(3));
}

TEST(HfGemma3, RefusedKeysAreNamed) {
  auto refused = [](const char* name, const std::function<void(json&)>& edit, const char* key) {
    const std::string msg = import_error(name, edit);
    EXPECT_TRUE(testing::contains(msg, key)) << key << ": " << msg;
  };
  // A cap of 0 would divide by zero in transformers; a negative one is no cap.
  refused(
      "hf_gemma2", [](json& c) { c["final_logit_softcapping"] = 0.0; }, "final_logit_softcapping");
  refused(
      "hf_gemma3", [](json& c) { c["final_logit_softcapping"] = -2.0; }, "final_logit_softcapping");
  refused(
      "hf_gemma2", [](json& c) { c["attn_logit_softcapping"] = 0.0; }, "attn_logit_softcapping");
  refused(
      "hf_gemma3", [](json& c) { c["attn_logit_softcapping"] = -1.0; }, "attn_logit_softcapping");
  refused(
      "hf_gemma3", [](json& c) { c["use_bidirectional_attention"] = true; },
      "use_bidirectional_attention");
  refused(
      "hf_gemma3", [](json& c) { c["attention_bias"] = true; }, "attention_bias");
  refused(
      "hf_gemma3", [](json& c) { c["hidden_activation"] = "silu"; }, "hidden_activation");
  refused(
      "hf_gemma3", [](json& c) { c["layer_types"][0] = "chunked_attention"; }, "layer_types");
  refused(
      "hf_gemma3", [](json& c) { c["layer_types"].erase(0); }, "layer_types");
  refused(
      "hf_gemma3", [](json& c) { c["rope_parameters"]["other_attention"] = json::object(); },
      "other_attention");
  refused(
      "hf_gemma3",
      [](json& c) {
        c["rope_parameters"]["sliding_attention"] = {
            {"rope_type", "linear"}, {"factor", 2.0}, {"rope_theta", 100.0}};
      },
      "sliding_attention");
  refused(
      "hf_gemma3", [](json& c) { c["rope_parameters"]["full_attention"]["rope_type"] = "yarn"; },
      "yarn");
  refused(
      "hf_gemma3", [](json& c) { c["sliding_window"] = nullptr; }, "sliding_window");
  refused(
      "hf_gemma3", [](json& c) { c["sliding_window"] = 0; }, "sliding_window");
  refused(
      "hf_gemma3", [](json& c) { c.erase("head_dim"); }, "head_dim");
  refused(
      "hf_gemma3", [](json& c) { c.erase("num_key_value_heads"); }, "num_key_value_heads");
  // Gemma 2 has one RoPE: a per-layer-type one is another architecture's.
  refused(
      "hf_gemma2",
      [](json& c) {
        c["rope_parameters"] = {{"full_attention", {{"rope_type", "default"}}},
                                {"sliding_attention", {{"rope_type", "default"}}}};
      },
      "rope_parameters");
  // Another family's layer_types may not slide.
  refused(
      "hf_qwen3",
      [](json& c) {
        c["layer_types"] = {"full_attention", "sliding_attention", "full_attention"};
      },
      "layer_types");
}

// Attention logit soft-capping imports as model.attn_logit_softcapping: a number as it is, null
// as off, an absent key as transformers' default (Gemma 2's 50, Gemma 3's none).
TEST(HfGemma3, AttentionSoftCappingImports) {
  const ModelConfig s = read_hf_config(fixture("hf_gemma2_softcap"));
  EXPECT_DOUBLE_EQ(s.attn_logit_softcapping, 0.25);
  EXPECT_EQ(s.sliding_window, 8);
  EXPECT_EQ(s.sliding_layers, (std::vector<bool>{true, false}));
  EXPECT_DOUBLE_EQ(read_hf_config(fixture("hf_gemma2")).attn_logit_softcapping, 0.0);  // null
  ModelConfig m;
  ASSERT_EQ(import_error(
                "hf_gemma2", [](json& c) { c.erase("attn_logit_softcapping"); }, &m),
            "");
  EXPECT_DOUBLE_EQ(m.attn_logit_softcapping, 50.0);
  ASSERT_EQ(import_error(
                "hf_gemma3", [](json& c) { c.erase("attn_logit_softcapping"); }, &m),
            "");
  EXPECT_DOUBLE_EQ(m.attn_logit_softcapping, 0.0);
  ASSERT_EQ(import_error(
                "hf_gemma3", [](json& c) { c["attn_logit_softcapping"] = 30.0; }, &m),
            "");
  EXPECT_DOUBLE_EQ(m.attn_logit_softcapping, 30.0);
}

// Final logit soft-capping imports as model.final_logit_softcapping the same way: a number as it
// is, null as off, an absent key as transformers' default (Gemma 2's 30, Gemma 3's none).
TEST(HfGemma3, FinalSoftCappingImports) {
  const ModelConfig s = read_hf_config(fixture("hf_gemma2_final_softcap"));
  EXPECT_DOUBLE_EQ(s.final_logit_softcapping, 0.75);
  EXPECT_DOUBLE_EQ(s.attn_logit_softcapping, 0.25);
  EXPECT_DOUBLE_EQ(read_hf_config(fixture("hf_gemma2")).final_logit_softcapping, 0.0);  // null
  ModelConfig m;
  ASSERT_EQ(import_error(
                "hf_gemma2", [](json& c) { c.erase("final_logit_softcapping"); }, &m),
            "");
  EXPECT_DOUBLE_EQ(m.final_logit_softcapping, 30.0);
  ASSERT_EQ(import_error(
                "hf_gemma3", [](json& c) { c.erase("final_logit_softcapping"); }, &m),
            "");
  EXPECT_DOUBLE_EQ(m.final_logit_softcapping, 0.0);
  ASSERT_EQ(import_error(
                "hf_gemma3", [](json& c) { c["final_logit_softcapping"] = 30.0; }, &m),
            "");
  EXPECT_DOUBLE_EQ(m.final_logit_softcapping, 30.0);
  // Another family has no such key: a Llama config that says one is read as it always was.
  EXPECT_DOUBLE_EQ(read_hf_config(fixture("hf_llama_gqa")).final_logit_softcapping, 0.0);
}

// hf_gemma3_window's window of 8 is shorter than its 13-token sequences, so its sliding layer's
// mask changes the logits: import keeps the window and the layer types for the attention ops
// (HfParity checks the logits, the loss and every gradient against transformers).
TEST(HfGemma3, WindowShorterThanTheSequenceIsKept) {
  const ModelConfig w = read_hf_config(fixture("hf_gemma3_window"));
  EXPECT_EQ(w.sliding_window, 8);
  EXPECT_EQ(w.sliding_layers, (std::vector<bool>{true, false}));
  EXPECT_EQ(w.window_at(0), 8);
  EXPECT_EQ(w.window_at(1), 0);
  EXPECT_TRUE(w.local_rope_at(0));
  EXPECT_FALSE(w.local_rope_at(1));
}

}  // namespace
}  // namespace rrt
