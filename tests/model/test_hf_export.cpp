// Export to Hugging Face Llama (model/hf_export.h): the HF fixtures survive import -> export ->
// import bit for bit, a relaxed recursive model exports to a plain model with the same logits
// (cycle and sequence sharing, per-loop norms, a tied head), and bad output directories are
// refused with a message.
//
// With RRT_EXPORT_CHECK_DIR set, RelaxedExport.WritesTransformersCheck also leaves relaxed
// exports there, each with rrt_logits.safetensors (tokens, logits), for
// tools/check_export_with_transformers.py.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/safetensors.h"
#include "model/convert.h"
#include "model/hf_export.h"
#include "model/hf_import.h"
#include "model/recursive_model.h"

namespace rrt {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kN = 2, kT = 8;

std::string fixture(const std::string& name) { return std::string(RRT_FIXTURE_DIR) + "/" + name; }

// A fresh directory under the temp dir, removed at the end of the test.
struct TempDir {
  fs::path path;
  explicit TempDir(const std::string& tag) {
    path = fs::temp_directory_path() /
           ("rrt_export_" + tag + "_" + std::to_string(::getpid()));
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
    EXPECT_EQ(std::memcmp(a.params->value(i), b.params->value(j),
                          a.params->numel(i) * sizeof(float)),
              0)
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
}

TEST(HfExport, RoundTripIsBitwise) {
  for (const char* name : {"hf_llama_gqa", "hf_llama_mqa_tied_bf16", "hf_llama_sharded"}) {
    SCOPED_TRACE(name);
    TempDir dir(std::string("rt_") + name);
    HfModel src = load_hf_model(fixture(name));
    export_hf(src.spec, *src.params, dir.str());
    HfModel back = load_hf_model(dir.str());
    EXPECT_EQ(back.spec.model.n_layers, src.spec.model.n_layers);
    expect_same_config(src.spec.model, back.spec.model);
    expect_same_params(src, back, name);
    SafetensorsFile f(dir.str("model.safetensors"));
    EXPECT_EQ(f.has("lm_head.weight"), !src.spec.model.tied_head);
    EXPECT_EQ(f.metadata().at("format"), "pt");
    for (const auto& [t, info] : f.tensors()) EXPECT_EQ(info.dtype, "F32") << t;
    const auto cfg = nlohmann::json::parse(std::ifstream(dir.str("config.json")));
    EXPECT_EQ(cfg.at("tie_word_embeddings").get<bool>(), src.spec.model.tied_head);
    EXPECT_EQ(cfg.at("model_type"), "llama");
    EXPECT_EQ(cfg.at("rope_parameters").at("rope_type"), "default");
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

// Leaves relaxed exports and rrt's logits for tools/check_export_with_transformers.py:
// <dir>/cycle_untied (the 4-layer model, cycle, rank 4) and <dir>/sequence_tied (the tied-head
// MQA fixture, 3 loops, sequence, rank 4, per-loop norms).
void write_check(const HfModel& orig, const ConvertOptions& o, const std::string& dir) {
  Converted relaxed = convert_to_recursive(orig.spec, *orig.params, o);
  export_hf(relaxed.spec, *relaxed.params, dir, /*overwrite=*/true);
  const std::vector<float> logits = logits_of(relaxed.spec, *relaxed.params);
  const std::vector<int32_t> tok = tokens(relaxed.spec.model.vocab);
  write_safetensors((fs::path(dir) / "rrt_logits.safetensors").string(),
                    {{"tokens", "I32", {kN, kT}, tok.data()},
                     {"logits", "F32", {kN, kT, relaxed.spec.model.vocab}, logits.data()}});
}

TEST(RelaxedExport, WritesTransformersCheck) {
  const char* env = std::getenv("RRT_EXPORT_CHECK_DIR");
  if (!env || !*env) GTEST_SKIP() << "set RRT_EXPORT_CHECK_DIR to write the transformers check";
  ConvertOptions o;
  o.loops = 2;
  o.init = InitRule::average;
  o.rank_attention = o.rank_mlp = 4;
  write_check(four_layer_model(), o, (fs::path(env) / "cycle_untied").string());
  o.loops = 3;
  o.sharing = Sharing::sequence;
  o.per_loop_norms = true;
  write_check(load_hf_model(fixture("hf_llama_mqa_tied_bf16")), o,
              (fs::path(env) / "sequence_tied").string());
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
