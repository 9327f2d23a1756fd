// GGUF export of Gemma models (model/gguf_export.h) in llama.cpp's gemma and gemma3
// architectures:
// - a converter-written fixture imported and exported again is the same file's content: every
//   tensor bit for bit (norm weights 1 + w again), the architecture's keys with their values;
// - relaxed recursive models export to plain models with the relaxed model's logits, read back
//   as the same config, matrices bit for bit and norms as GGUF holds them (fl(fl(1 + w) - 1));
// - what llama.cpp fixes and rrt's model does otherwise is refused by the field: an untied
//   gemma head, the attention scale, the window pattern, the local RoPE, attention
//   soft-capping, gemma2's always-on final soft-cap, RoPE scaling without a key; the same
//   attention-scale check for llama, which exported a query_pre_attn_scalar silently before.
// A SentencePiece tokenizer GGUF's keys are copied as they are.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "core/gguf.h"
#include "model/convert.h"
#include "model/family.h"
#include "model/gguf_export.h"
#include "model/gguf_import.h"
#include "model/hf_import.h"
#include "model/recursive_model.h"
#include "model/unrolled_tensors.h"
#include "tests/error_helpers.h"
#include "tests/model/compare.h"
#include "tests/model/gguf_export_util.h"

namespace rrt {
namespace {

using testing::contains;
using testing::error_message;
namespace fs = std::filesystem;

constexpr int64_t kN = 2, kT = 12;

// This file's sizes and temporary names over tests/model/gguf_export_util.h.
std::string temp(const std::string& tag) { return testing::temp_gguf("gguf_gemma_export", tag); }
std::vector<float> logits_of(const ModelSpec& spec, const ParameterSet& params) {
  return testing::logits_of(spec, params, kN, kT);
}
using testing::fixture;
using testing::same_bits;

TEST(GgufGemmaExport, ImportThenExportGivesTheConvertersTensorsAndKeys) {
  for (const char* name : {"gemma_tied", "gemma2", "gemma3_untied"}) {
    SCOPED_TRACE(name);
    const std::string source = fixture(std::string("gguf/") + name + ".gguf");
    const HfModel hf = load_gguf_model(source);
    const std::string path = temp(name);
    export_gguf(hf.spec, *hf.params, path);
    const GgufFile in(source), out(path);
    ASSERT_EQ(out.tensors().size(), in.tensors().size());
    for (const GgufTensorInfo& t : in.tensors()) {
      ASSERT_TRUE(out.has_tensor(t.name)) << t.name;
      EXPECT_EQ(out.tensor(t.name).shape(), t.shape()) << t.name;
      EXPECT_TRUE(same_bits(out.read_f32(t.name), in.read_f32(t.name))) << t.name;
    }
    const std::string arch = in.get_string("general.architecture");
    EXPECT_EQ(out.get_string("general.architecture"), arch);
    for (const auto& [key, value] : in.metadata()) {
      if (key.rfind(arch + ".", 0) != 0) continue;
      ASSERT_TRUE(out.has(key)) << key;
      if (value.type == GgufType::string)
        EXPECT_EQ(out.get_string(key), in.get_string(key)) << key;
      else if (value.type == GgufType::float32)
        EXPECT_EQ(out.get_f32(key), in.get_f32(key)) << key;
      else
        EXPECT_EQ(out.get_i64(key), in.get_i64(key)) << key;
    }
    std::remove(path.c_str());
  }
}

TEST(GgufGemmaExport, RelaxedModelsReadBackWithTheSameLogits) {
  struct Case {
    const char* fixture;
    int64_t loops;
    bool per_loop_norms;
  };
  for (const Case& c : {Case{"gguf/gemma_tied.gguf", 2, false}, Case{"gguf/gemma2.gguf", 3, false},
                        Case{"gguf/gemma3_untied.gguf", 7, true}}) {
    SCOPED_TRACE(c.fixture);
    const std::string src = fixture(c.fixture);
    const HfModel orig = load_gguf_model(src);
    ConvertOptions o;
    o.loops = c.loops;
    o.init = InitRule::average;
    o.rank_attention = o.rank_mlp = 4;
    o.per_loop_norms = c.per_loop_norms;
    const Converted r = convert_to_recursive(orig.spec, *orig.params, o);
    const std::string path = temp("relaxed");
    export_gguf(r.spec, *r.params, path);
    const HfModel back = load_gguf_model(path);
    const ModelConfig &a = back.spec.model, &b = r.spec.model;
    EXPECT_EQ(a.family, b.family);
    EXPECT_EQ(back.spec.positions(), r.spec.positions());
    EXPECT_EQ(a.tied_head, b.tied_head);
    EXPECT_EQ(a.rope_scaling, b.rope_scaling);
    for (int64_t l = 0; l < r.spec.positions(); ++l) {
      EXPECT_EQ(a.window_at(l), b.window_at(l)) << l;
      EXPECT_EQ(a.local_rope_at(l), b.local_rope_at(l)) << l;
    }
    EXPECT_EQ(a.query_scale(), b.query_scale());
    // The file holds the unrolled model's tensors bit for bit, norm weights as fl(1 + w).
    const GgufFile file(path);
    const FamilyDescriptor& d = family_descriptor(b.family);
    const UnrolledTensors unrolled(r.spec, *r.params, d.gguf->tensors, "test");
    for (const UnrolledTensor& t : unrolled.tensors()) {
      std::vector<float> want(t.data, t.data + t.numel());
      if (is_norm_weight(*t.rule))
        for (float& x : want) x += 1.0f;
      EXPECT_TRUE(same_bits(file.read_f32(t.name), want)) << t.name;
    }
    EXPECT_LE(testing::relative_max_error(logits_of(back.spec, *back.params).data(),
                                          logits_of(r.spec, *r.params)),
              1e-5);
    // And the plain model read back exports to the same file content again.
    const std::string again = temp("again");
    export_gguf(back.spec, *back.params, again);
    const GgufFile f1(path), f2(again);
    for (const GgufTensorInfo& t : f1.tensors())
      EXPECT_TRUE(same_bits(f1.read_f32(t.name), f2.read_f32(t.name))) << t.name;
    std::remove(path.c_str());
    std::remove(again.c_str());
  }
}

TEST(GgufGemmaExport, CopiesASentencePieceTokenizer) {
  const std::string tokenizer = fixture("gguf/gemma_tied.gguf");
  const HfModel hf = load_gguf_model(tokenizer);
  const std::string path = temp("tokenizer");
  export_gguf(hf.spec, *hf.params, path, {.tokenizer_gguf = tokenizer});
  const GgufFile in(tokenizer), out(path);
  EXPECT_EQ(out.get_string("tokenizer.ggml.model"), "llama");
  EXPECT_EQ(out.get_string_array("tokenizer.ggml.tokens"),
            in.get_string_array("tokenizer.ggml.tokens"));
  EXPECT_EQ(out.get_f32_array("tokenizer.ggml.scores"), in.get_f32_array("tokenizer.ggml.scores"));
  EXPECT_EQ(out.get_bool("tokenizer.ggml.add_space_prefix"), false);
  std::remove(path.c_str());
}

TEST(GgufGemmaExport, RefusesWhatLlamaCppFixesOtherwise) {
  const std::string path = temp("refused");
  const HfModel gemma = load_gguf_model(fixture("gguf/gemma_tied.gguf"));
  const HfModel gemma3 = load_gguf_model(fixture("gguf/gemma3_untied.gguf"));
  auto refusal = [&](const HfModel& base, const std::function<void(ModelSpec&)>& edit) {
    ModelSpec spec = base.spec;
    edit(spec);
    ParameterSet params(spec);
    params.init({.seed = 1, .std = 0.1});
    return error_message([&] { export_gguf(spec, params, path); });
  };
  struct Case {
    const char* what;
    const HfModel* base;
    std::function<void(ModelSpec&)> edit;
    const char* message;
  };
  const Case cases[] = {
      {"untied gemma", &gemma, [](ModelSpec& s) { s.model.tied_head = false; },
       "llama.cpp's gemma always uses the embedding as the LM head"},
      {"query scale", &gemma3, [](ModelSpec& s) { s.model.query_pre_attn_scalar = 12; },
       "model.query_pre_attn_scalar 12"},
      {"pattern", &gemma3,
       [](ModelSpec& s) {
         s.model.sliding_layers = {true, false};
       },
       "model.sliding_layers"},
      {"no window", &gemma3,
       [](ModelSpec& s) {
         s.model.sliding_window = 0;
         s.model.sliding_layers.clear();
       },
       "model.sliding_window 0"},
      {"window on gemma", &gemma, [](ModelSpec& s) { s.model.sliding_window = 4; },
       "llama.cpp's gemma has no sliding-window layers"},
      {"local base", &gemma3, [](ModelSpec& s) { s.model.rope_local_theta = 100; },
       "RoPE base 10000 unscaled"},
      {"attention soft-cap", &gemma3, [](ModelSpec& s) { s.model.attn_logit_softcapping = 20; },
       "has no attention soft-capping"},
      {"llama3 scaling", &gemma3,
       [](ModelSpec& s) {
         s.model.rope_scaling = {.type = ops::RopeScalingType::llama3,
                                 .factor = 8,
                                 .low_freq_factor = 1,
                                 .high_freq_factor = 4,
                                 .original_max_positions = 8192};
       },
       "only linear scaling has a key"},
      {"gemma scaling", &gemma,
       [](ModelSpec& s) {
         s.model.rope_scaling = {.type = ops::RopeScalingType::linear, .factor = 2};
       },
       "its GGUF files carry no RoPE factors"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    const std::string msg = refusal(*c.base, c.edit);
    EXPECT_TRUE(contains(msg, c.message)) << msg;
    EXPECT_FALSE(fs::exists(path));
  }
  // Gemma 2: llama.cpp soft-caps the final logits always, so a Gemma 2 without the cap (this
  // fixture's final_logit_softcapping is null) cannot be written as gemma2; nor can a Gemma 3
  // with one (llama.cpp's gemma3 ignores the key).
  const HfModel gemma2 = load_hf_model(fixture("hf_gemma2_softcap"));
  ASSERT_EQ(gemma2.spec.model.final_logit_softcapping, 0.0);
  std::string msg = error_message([&] { export_gguf(gemma2.spec, *gemma2.params, path); });
  EXPECT_TRUE(contains(msg, "llama.cpp's gemma2 always soft-caps the final logits")) << msg;
  msg = refusal(gemma3, [](ModelSpec& s) { s.model.final_logit_softcapping = 30; });
  EXPECT_TRUE(contains(msg, "model.final_logit_softcapping 30")) << msg;
  // The attention-scale check covers llama too, which wrote such a model silently before.
  HfModel llama = load_hf_model(fixture("hf_llama_gqa"));
  llama.spec.model.query_pre_attn_scalar = 3;
  msg = error_message([&] { export_gguf(llama.spec, *llama.params, path); });
  EXPECT_TRUE(contains(msg, "model.query_pre_attn_scalar 3")) << msg;
  EXPECT_FALSE(fs::exists(path));
}

}  // namespace
}  // namespace rrt
