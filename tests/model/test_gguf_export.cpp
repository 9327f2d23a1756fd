// GGUF export (model/gguf_export.h) read back by GGUF import: relaxed recursive Llama (GQA,
// cycle and sequence sharing, per-loop norms), Qwen2 (q/k/v biases, tied head) and Llama 3 RoPE
// scaling (written as rope_freqs, read back as the same parameters) export to plain models with
// the relaxed model's logits; bf16 rounds every matrix once and keeps 1-D tensors fp32; a
// tokenizer GGUF's keys are copied as they were; families without a GGUF architecture and
// scaling GGUF cannot hold are refused. The file's own bytes are checked by the reader
// (core/gguf.h), which verifies every size and offset; tools/check_gguf_export.py reads an
// export with gguf-py, llama.cpp's own reader.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/gguf.h"
#include "model/convert.h"
#include "model/gguf_export.h"
#include "model/gguf_import.h"
#include "model/hf_import.h"
#include "model/recursive_model.h"
#include "tests/error_helpers.h"
#include "tests/model/compare.h"
#include "tests/model/gguf_export_util.h"

namespace rrt {
namespace {

using testing::contains;
using testing::error_message;
namespace fs = std::filesystem;

constexpr int64_t kN = 2, kT = 8;

// This file's sizes and temporary names over tests/model/gguf_export_util.h.
std::string temp(const std::string& tag) { return testing::temp_gguf("gguf_export", tag); }
std::vector<float> logits_of(const ModelSpec& spec, const ParameterSet& params) {
  return testing::logits_of(spec, params, kN, kT);
}
using testing::fixture;
using testing::same_bits;

Converted relaxed(const HfModel& orig, Sharing sharing, bool per_loop_norms) {
  ConvertOptions o;
  o.loops = 2;
  o.sharing = sharing;
  o.init = InitRule::average;
  o.rank_attention = o.rank_mlp = 4;
  o.lora_init = LoraInit::svd;
  o.per_loop_norms = per_loop_norms;
  return convert_to_recursive(orig.spec, *orig.params, o);
}

struct Case {
  const char* fixture;
  Sharing sharing;
  bool per_loop_norms;
};

TEST(GgufExport, RelaxedModelsReadBackWithTheSameLogits) {
  for (const Case& c :
       {Case{"hf_llama_gqa", Sharing::cycle, false}, Case{"hf_llama_gqa", Sharing::sequence, true},
        Case{"hf_qwen2_tied", Sharing::cycle, false},
        Case{"hf_llama3_rope", Sharing::cycle, false}}) {
    SCOPED_TRACE(std::string(c.fixture) + (c.sharing == Sharing::cycle ? " cycle" : " sequence"));
    const HfModel orig = load_hf_model(fixture(c.fixture));
    const Converted r = relaxed(orig, c.sharing, c.per_loop_norms);
    const std::string path = temp("relaxed");
    export_gguf(r.spec, *r.params, path);
    const HfModel back = load_gguf_model(path);
    EXPECT_EQ(back.spec.model.family, orig.spec.model.family);
    EXPECT_EQ(back.spec.positions(), r.spec.positions());
    EXPECT_EQ(back.spec.model.rope_scaling, orig.spec.model.rope_scaling);
    EXPECT_EQ(back.spec.model.tied_head, orig.spec.model.tied_head);
    // fp32 merged weights and the same sums: only the merge's one rounding separates them.
    EXPECT_LE(testing::relative_max_error(logits_of(back.spec, *back.params).data(),
                                          logits_of(r.spec, *r.params)),
              1e-5);
    std::remove(path.c_str());
  }
}

TEST(GgufExport, Bf16RoundsMatricesOnceAndKeepsVectors) {
  const HfModel orig = load_hf_model(fixture("hf_qwen2_tied"));
  const std::string f32 = temp("f32"), bf = temp("bf16");
  export_gguf(orig.spec, *orig.params, f32);
  export_gguf(orig.spec, *orig.params, bf, {.dtype = DType::bf16});
  const GgufFile file(bf);
  EXPECT_EQ(file.get_u32("general.file_type"), 32u);
  EXPECT_STREQ(file.tensor("blk.0.attn_q.weight").type_name(), "BF16");
  EXPECT_STREQ(file.tensor("blk.0.attn_q.bias").type_name(), "F32");
  EXPECT_STREQ(file.tensor("output_norm.weight").type_name(), "F32");
  const HfModel a = load_gguf_model(f32), b = load_gguf_model(bf);
  for (int i = 0; i < a.params->registry().size(); ++i) {
    const std::string& name = a.params->registry()[i].name;
    const float* x = a.params->value(i);
    const float* y = b.params->value(b.params->registry().index(name));
    const bool matrix = a.params->registry()[i].shape.vec().size() == 2;
    for (int64_t k = 0; k < a.params->numel(i); ++k)
      ASSERT_EQ(y[k], matrix ? bf16::from_float(x[k]).to_float() : x[k]) << name << "[" << k << "]";
  }
  std::remove(f32.c_str());
  std::remove(bf.c_str());
}

TEST(GgufExport, CopiesTheTokenizerKeys) {
  const std::string tokenizer = fixture("gguf/tokenizer_qwen2.gguf");
  const GgufFile source(tokenizer);
  HfModel orig = load_hf_model(fixture("hf_qwen2_tied"));
  // The tokenizer fixture's vocabulary size, so that the export is consistent.
  orig.spec.model.vocab = static_cast<int64_t>(source.value("tokenizer.ggml.tokens").count);
  ParameterSet params(orig.spec);
  params.init({.seed = 3, .std = 0.1});
  const std::string path = temp("tokenizer");
  export_gguf(orig.spec, params, path, {.tokenizer_gguf = tokenizer});
  const GgufFile out(path);
  for (const char* key : {"tokenizer.ggml.tokens", "tokenizer.ggml.merges"})
    EXPECT_EQ(out.get_string_array(key), source.get_string_array(key)) << key;
  EXPECT_EQ(out.get_int_array("tokenizer.ggml.token_type"),
            source.get_int_array("tokenizer.ggml.token_type"));
  EXPECT_EQ(out.get_string("tokenizer.ggml.pre"), "qwen2");
  EXPECT_EQ(out.get_i64("tokenizer.ggml.eos_token_id"),
            source.get_i64("tokenizer.ggml.eos_token_id"));
  std::remove(path.c_str());

  orig.spec.model.vocab += 1;
  ParameterSet wrong(orig.spec);
  const std::string msg =
      error_message([&] { export_gguf(orig.spec, wrong, path, {.tokenizer_gguf = tokenizer}); });
  EXPECT_TRUE(contains(msg, "tokens, but the model")) << msg;
  EXPECT_FALSE(fs::exists(path));
}

TEST(GgufExport, RefusesWhatGgufCannotHold) {
  const std::string path = temp("refused");
  const HfModel neox = load_hf_model(fixture("hf_neox_parallel"));
  std::string msg = error_message([&] { export_gguf(neox.spec, *neox.params, path); });
  EXPECT_TRUE(contains(msg, "has no GGUF architecture")) << msg;
  const HfModel qwen2 = load_hf_model(fixture("hf_llama_rope_dynamic"));
  msg = error_message([&] { export_gguf(qwen2.spec, *qwen2.params, path); });
  EXPECT_TRUE(contains(msg, "dynamic")) << msg;
  HfModel windowed = load_hf_model(fixture("hf_llama_gqa"));
  windowed.spec.model.sliding_window = 4;
  msg = error_message([&] { export_gguf(windowed.spec, *windowed.params, path); });
  EXPECT_TRUE(contains(msg, "model.sliding_window")) << msg;
  EXPECT_FALSE(fs::exists(path));
}

}  // namespace
}  // namespace rrt
