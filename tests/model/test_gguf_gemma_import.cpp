// GGUF import of llama.cpp's gemma, gemma2 and gemma3 architectures (model/gguf_import.h), against
// transformers through the fixtures of tools/make_gguf_gemma_fixtures.py (written by gguf-py as
// llama.cpp's converter writes them):
//   gemma   RMSNorm weights stored as 1 + w, no rope.freq_base (llama.cpp's 10000), no head
//           tensor (llama.cpp's gemma always ties it)
//   gemma3  q/k head norms, llama.cpp's fixed pattern of five windowed layers in six with their
//           fixed RoPE base 10000, the global layers' linear scaling from rope.scaling.*, the
//           attention scale llama.cpp derives (head_dim below 62 blocks), an untied head
//   gemma2  windows on every other layer, attention and final soft-caps (llama.cpp's final
//           cap is 30 when the key is absent)
// and that rrt's GGUF tokenizer reads Gemma's SentencePiece vocabulary.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "core/gguf.h"
#include "core/gguf_writer.h"
#include "core/safetensors.h"
#include "data/tokenizer.h"
#include "model/gguf_import.h"
#include "model/recursive_model.h"
#include "tests/error_helpers.h"
#include "tests/model/compare.h"

namespace rrt {
namespace {

using testing::contains;
using testing::error_message;

std::string fixture(const std::string& name) {
  return std::string(RRT_FIXTURE_DIR) + "/gguf/" + name;
}

// The model's logits on the reference's inputs, and their error against its logits.
double logits_error(const HfModel& hf, const SafetensorsFile& ref) {
  const auto inputs = ref.read_i32("inputs");
  const int64_t N = ref.info("inputs").shape.at(0), T = ref.info("inputs").shape.at(1);
  RecursiveModel model(hf.spec, {.max_batch = N, .max_seq = T, .threads = 1});
  for (int i = 0; i < model.params().registry().size(); ++i)
    std::memcpy(model.params().value(i), hf.params->value(i),
                static_cast<size_t>(model.params().numel(i)) * sizeof(float));
  std::vector<float> logits(static_cast<size_t>(N * T * hf.spec.model.vocab));
  model.logits(inputs.data(), N, T, logits.data());
  return testing::relative_max_error(logits.data(), ref.read_f32("logits"));
}

// A copy of fixture `name` with its metadata edited by `edit` (keys added, replaced or removed
// before writing), tensors as they are (the fixtures are all F32).
std::string edited(const std::string& name, const std::string& tag,
                   const std::function<void(std::map<std::string, GgufValue>&)>& edit) {
  const GgufFile in(fixture(name));
  std::map<std::string, GgufValue> metadata = in.metadata();
  edit(metadata);
  GgufWriter w;
  for (const auto& [key, value] : metadata) w.add_value(key, value);
  std::vector<std::vector<float>> data;
  data.reserve(in.tensors().size());
  for (const GgufTensorInfo& t : in.tensors()) {
    data.push_back(in.read_f32(t.name));
    w.add_tensor(t.name, t.shape(), GgmlWriteType::f32, data.back().data());
  }
  const std::string path =
      ::testing::TempDir() + "rrt_gguf_gemma_" + tag + "_" + std::to_string(::getpid()) + ".gguf";
  w.write(path);
  return path;
}

GgufValue u32(uint32_t v) { return {.type = GgufType::uint32, .bits = v}; }

TEST(GgufGemma, EqualsTheHfModel) {
  const HfModel hf = load_gguf_model(fixture("gemma_tied.gguf"));
  const ModelConfig& m = hf.spec.model;
  EXPECT_EQ(m.family, Family::gemma);
  EXPECT_EQ(m.n_layers, 2);
  EXPECT_EQ(m.n_kv_heads, 1);
  EXPECT_EQ(m.dh(), 8);
  EXPECT_EQ(m.rope_theta, 10000.0);  // no rope.freq_base: llama.cpp's default
  EXPECT_TRUE(m.tied_head);
  EXPECT_TRUE(m.norm_unit_offset);
  EXPECT_EQ(m.query_pre_attn_scalar, 0.0);
  EXPECT_EQ(m.sliding_window, 0);
  const SafetensorsFile ref(fixture("gemma_tied_reference.safetensors"));
  EXPECT_LE(logits_error(hf, ref), 1e-5);
}

TEST(GgufGemma, NormWeightsAreStoredAsOnePlusW) {
  const GgufFile file(fixture("gemma_tied.gguf"));
  HfModel hf = load_gguf_model(fixture("gemma_tied.gguf"));
  const std::vector<float> stored = file.read_f32("blk.1.ffn_norm.weight");
  const float* w = hf.params->value("block.1.mlp_norm.weight");
  for (size_t i = 0; i < stored.size(); ++i) ASSERT_EQ(w[i] + 1.0f, stored[i]) << i;
  // The test has teeth: the stored values as the weights are far off.
  const SafetensorsFile ref(fixture("gemma_tied_reference.safetensors"));
  for (int i = 0; i < hf.params->registry().size(); ++i) {
    const ParamInfo& p = hf.params->registry()[i];
    if (p.kind != ParamKind::norm && p.kind != ParamKind::final_norm) continue;
    for (int64_t k = 0; k < hf.params->numel(i); ++k) hf.params->value(i)[k] += 1.0f;
  }
  EXPECT_GT(logits_error(hf, ref), 1e-2);
}

TEST(GgufGemma3, EqualsTheHfModel) {
  const HfModel hf = load_gguf_model(fixture("gemma3_untied.gguf"));
  const ModelConfig& m = hf.spec.model;
  EXPECT_EQ(m.family, Family::gemma3);
  EXPECT_EQ(m.n_layers, 7);
  EXPECT_TRUE(m.qk_norm);
  EXPECT_TRUE(m.sandwich_norm);
  EXPECT_FALSE(m.tied_head);
  EXPECT_EQ(m.sliding_window, 4);
  EXPECT_EQ(m.sliding_layers, (std::vector<bool>{true, true, true, true, true, false}));
  for (int64_t l = 0; l < 7; ++l) EXPECT_EQ(m.window_at(l) > 0, l != 5) << l;
  EXPECT_EQ(m.rope_theta, 1e6);
  EXPECT_EQ(m.rope_local_theta, 10000.0);
  EXPECT_EQ(m.rope_scaling.type, ops::RopeScalingType::linear);
  EXPECT_EQ(m.rope_scaling.factor, 2.0);
  EXPECT_EQ(m.query_pre_attn_scalar, 8.0);  // head_dim: 7 blocks is no 27B
  EXPECT_EQ(m.attn_logit_softcapping, 0.0);
  const SafetensorsFile ref(fixture("gemma3_untied_reference.safetensors"));
  EXPECT_LE(logits_error(hf, ref), 1e-5);
  // The test has teeth: with windows wider than the 12-token inputs every key is seen, without
  // the scaling the global layer rotates otherwise, and with one base the local layers do.
  HfModel other = load_gguf_model(fixture("gemma3_untied.gguf"));
  other.spec.model.sliding_window = 64;
  EXPECT_GT(logits_error(other, ref), 1e-3);
  other.spec.model = m;
  other.spec.model.rope_scaling = {};
  EXPECT_GT(logits_error(other, ref), 1e-3);
  other.spec.model = m;
  other.spec.model.rope_local_theta = 0;
  EXPECT_GT(logits_error(other, ref), 1e-3);
}

TEST(GgufGemma3, TheAttentionScaleFollowsTheBlockCountAsInLlamaCpp) {
  // llama.cpp reads no query_pre_attn_scalar: head_dim, but d_model / n_heads for 62 blocks.
  ModelConfig m = read_gguf_config(GgufFile(fixture("gemma3_untied.gguf")));
  EXPECT_EQ(m.query_pre_attn_scalar, static_cast<double>(m.dh()));
  const std::string path =
      edited("gemma3_untied.gguf", "62", [](auto& kv) { kv["gemma3.block_count"] = u32(62); });
  // The config alone: 62 layers of tensors are not in the file.
  m = read_gguf_config(GgufFile(path));
  EXPECT_EQ(m.query_pre_attn_scalar, 16.0 / 2.0);  // embedding_length / head_count
  std::remove(path.c_str());
}

TEST(GgufGemma3, RefusesWhatLlamaCppRunsDifferently) {
  struct Case {
    const char* tag;
    std::function<void(std::map<std::string, GgufValue>&)> edit;
    const char* message;
  };
  const Case cases[] = {
      {"no_window", [](auto& kv) { kv.erase("gemma3.attention.sliding_window"); },
       "has no gemma3.attention.sliding_window"},
      {"zero_window", [](auto& kv) { kv["gemma3.attention.sliding_window"] = u32(0); },
       "gemma3.attention.sliding_window is 0"},
      {"pattern", [](auto& kv) { kv["gemma3.attention.sliding_window_pattern"] = u32(2); },
       "gemma3.attention.sliding_window_pattern is not 6"},
      {"final_softcap",
       [](auto& kv) {
         float cap = 30.0f;
         GgufValue v{.type = GgufType::float32};
         std::memcpy(&v.bits, &cap, sizeof cap);
         kv["gemma3.final_logit_softcapping"] = v;
       },
       "gemma3.final_logit_softcapping is 30"},
      {"yarn",
       [](auto& kv) {
         kv["gemma3.rope.scaling.type"] = GgufValue{.type = GgufType::string, .str = "yarn"};
       },
       "rope.scaling.type is 'yarn'; only plain RoPE or linear scaling"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.tag);
    const std::string path = edited("gemma3_untied.gguf", c.tag, c.edit);
    const std::string msg = error_message([&] { load_gguf_model(path); });
    EXPECT_TRUE(contains(msg, c.message)) << msg;
    std::remove(path.c_str());
  }
}

TEST(GgufGemma2, EqualsTheHfModelWithBothSoftCaps) {
  const HfModel hf = load_gguf_model(fixture("gemma2.gguf"));
  const ModelConfig& m = hf.spec.model;
  EXPECT_EQ(m.family, Family::gemma2);
  EXPECT_EQ(m.sliding_window, 4);
  for (int64_t l = 0; l < 3; ++l) EXPECT_EQ(m.window_at(l) > 0, l % 2 == 0) << l;
  EXPECT_EQ(m.attn_logit_softcapping, 5.0);
  EXPECT_EQ(m.final_logit_softcapping, 3.0);
  const SafetensorsFile ref(fixture("gemma2_reference.safetensors"));
  EXPECT_LE(logits_error(hf, ref), 1e-5);
  // The test has teeth: without the final cap the logits (up to about 1.75 here) are off.
  HfModel uncapped = load_gguf_model(fixture("gemma2.gguf"));
  uncapped.spec.model.final_logit_softcapping = 0;
  EXPECT_GT(logits_error(uncapped, ref), 1e-3);
}

TEST(GgufGemma2, AbsentFinalCapIsLlamaCppsThirtyAndZeroIsRefused) {
  // llama.cpp's gemma2 soft-caps its final logits whatever the file says: 30 without the key.
  std::string path =
      edited("gemma2.gguf", "no_cap", [](auto& kv) { kv.erase("gemma2.final_logit_softcapping"); });
  EXPECT_EQ(load_gguf_model(path).spec.model.final_logit_softcapping, 30.0);
  std::remove(path.c_str());
  path = edited("gemma2.gguf", "zero_cap", [](auto& kv) {
    kv["gemma2.final_logit_softcapping"] = {.type = GgufType::float32, .bits = 0};
  });
  const std::string msg = error_message([&] { load_gguf_model(path); });
  EXPECT_TRUE(contains(msg, "gemma2.final_logit_softcapping is 0")) << msg;
  EXPECT_TRUE(contains(msg, "divides the final logits by it")) << msg;
  std::remove(path.c_str());
}

TEST(GgufGemma, SentencePieceVocabularyIsTheGgufTokenizer) {
  // Gemma's GGUF vocabulary is SentencePiece's (tokenizer.ggml.model "llama"): rrt's GGUF
  // tokenizer reads it (data/spm_tokenizer.h) with the ids and the prefix rule the file gives.
  const GgufFile file(fixture("gemma_tied.gguf"));
  EXPECT_EQ(file.get_string("tokenizer.ggml.model"), "llama");
  const auto tokenizer = make_tokenizer(fixture("gemma_tied.gguf"));
  EXPECT_EQ(tokenizer->name(), "bpe:gemma_tied.gguf");
  EXPECT_EQ(tokenizer->vocab_size(), 40);
  EXPECT_EQ(tokenizer->eos_id(), 1);
  EXPECT_EQ(tokenizer->bos_id(), 2);
  // add_space_prefix false: the leading "\u2581" of token 5 ("\u2581t1") stays a space.
  EXPECT_EQ(tokenizer->decode({2, 5, 6, 1}), " t1 t2");
  // Its pieces' characters are no tokens and it has no byte tokens: each is <unk> (3).
  EXPECT_EQ(tokenizer->encode("t1"), (std::vector<int32_t>{3, 3}));
}

}  // namespace
}  // namespace rrt
