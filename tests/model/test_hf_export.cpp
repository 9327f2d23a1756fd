// Export to Hugging Face (model/hf_export.h): the HF fixtures of every family survive import ->
// export -> import bit for bit, a relaxed recursive model exports to a plain model with the same
// logits (cycle and sequence sharing, per-loop norms, a tied head), bf16 weights and the
// tokenizer's ids, and bad output directories are refused with a message. Each family's export,
// read back by this test's own HF names, is in test_hf_export_families.cpp.
//
// With RRT_EXPORT_CHECK_DIR set, RelaxedExport.WritesTransformersCheck also leaves relaxed
// exports of every family there, each with rrt_logits.safetensors (tokens, logits), for
// tools/check_export_with_transformers.py.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"
#include "core/safetensors.h"
#include "model/convert.h"
#include "model/hf_export.h"
#include "model/hf_import.h"
#include "tests/model/hf_export_fixture.h"

namespace rrt {
namespace {

using namespace hf_export_test;  // fs, the fixtures and helpers

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
