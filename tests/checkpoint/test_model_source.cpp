// checkpoint/model_source.h: an rrt checkpoint, an HF directory or a GGUF file opened by one
// function. The plain model it loads from an HF directory or a GGUF file is the imports' own
// (bit-equal values, equal logits through the header's config); its run config names the
// tokenizer as `rrt convert` does; a path that is none of the three is told what is accepted.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "checkpoint/model_source.h"
#include "config/config_io.h"
#include "core/error.h"
#include "core/safetensors.h"
#include "model/gguf_import.h"
#include "model/hf_import.h"
#include "model/recursive_model.h"
#include "tests/error_helpers.h"

namespace rrt {
namespace {

namespace fs = std::filesystem;
using testing::contains;
using testing::error_message;

std::string fixture(const std::string& name) { return std::string(RRT_FIXTURE_DIR) + "/" + name; }

fs::path fresh(const std::string& name) {
  const fs::path p =
      fs::temp_directory_path() / ("rrt_model_source_" + std::to_string(getpid())) / name;
  fs::remove_all(p);
  fs::create_directories(p);
  return p;
}

std::vector<float> logits_of(const ModelSpec& spec, ParameterSet& values,
                             const std::vector<int32_t>& tokens, int64_t N, int64_t T) {
  RecursiveModel model(spec, ModelCapacity{.max_batch = N, .max_seq = T, .forward_only = true});
  Arena& to = model.params().values_arena();
  std::memcpy(to.base(), values.values_arena().base(), static_cast<size_t>(to.total_bytes()));
  std::vector<float> out(static_cast<size_t>(N * T * spec.model.vocab));
  model.logits(tokens.data(), N, T, out.data());
  return out;
}

// The header's config plans the model; load_model_source_params fills it: the logits equal the
// import's, bit for bit (the same values through the same code).
void expect_same_model(const std::string& path, const HfModel& reference) {
  const CheckpointContents header = read_model_source_header(path);
  EXPECT_EQ(header.state.step, 0);
  EXPECT_FALSE(header.has_optimizer);
  const RunConfig cfg = parse_run_config(header.config_yaml, path);
  RunConfig a, b;  // the model sections compared through their YAML (every field)
  a.model = cfg.model;
  b.model = reference.spec;
  EXPECT_EQ(to_yaml(a), to_yaml(b)) << path;
  EXPECT_EQ(cfg.model.recursion.loops, 1);
  EXPECT_LE(cfg.train.seq_len, cfg.model.model.max_seq_len);

  RecursiveModel planned(cfg.model, ModelCapacity{.max_batch = 1, .max_seq = 8});
  load_model_source_params(path, planned.params());
  CheckpointModel full = load_model_source(path);
  EXPECT_EQ(to_yaml(full.config), to_yaml(cfg)) << "the full load's config is the header's";

  const int64_t N = 2, T = 7, V = reference.spec.model.vocab;
  std::vector<int32_t> tokens(N * T);
  for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = static_cast<int32_t>((i * 7 + 3) % V);
  ParameterSet& ref_values = *reference.params;
  const std::vector<float> expected = logits_of(reference.spec, ref_values, tokens, N, T);
  const std::vector<float> from_params = logits_of(cfg.model, planned.params(), tokens, N, T);
  const std::vector<float> from_full = logits_of(full.config.model, *full.params, tokens, N, T);
  ASSERT_EQ(from_params.size(), expected.size());
  EXPECT_EQ(std::memcmp(from_params.data(), expected.data(), expected.size() * sizeof(float)), 0)
      << path;
  EXPECT_EQ(std::memcmp(from_full.data(), expected.data(), expected.size() * sizeof(float)), 0)
      << path;
}

TEST(ModelSource, HfDirectoryIsTheImportedModel) {
  for (const char* name : {"hf_llama_gqa", "hf_gemma3"}) {
    const std::string dir = fixture(name);
    EXPECT_EQ(model_source_kind(dir), ModelSourceKind::hf_directory);
    expect_same_model(dir, load_hf_model(dir));
  }
}

TEST(ModelSource, GgufFileIsTheImportedModel) {
  for (const char* name : {"gguf/llama_untied.gguf", "gguf/gemma3_untied.gguf"}) {
    const std::string file = fixture(name);
    EXPECT_EQ(model_source_kind(file), ModelSourceKind::gguf);
    expect_same_model(file, load_gguf_model(file));
  }
}

// The HF model also matches transformers' logits (the fixture's reference), as its import does.
TEST(ModelSource, HfDirectoryMatchesTransformers) {
  const std::string dir = fixture("hf_llama_gqa");
  SafetensorsFile ref(dir + "/reference.safetensors");
  const auto inputs = ref.read_i32("inputs");
  const auto expected = ref.read_f32("logits");
  CheckpointModel m = load_model_source(dir);
  const int64_t N = 2, T = static_cast<int64_t>(inputs.size()) / N;
  const std::vector<float> got = logits_of(m.config.model, *m.params, inputs, N, T);
  ASSERT_EQ(got.size(), expected.size());
  double worst = 0, scale = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    worst = std::max(worst, static_cast<double>(std::abs(got[i] - expected[i])));
    scale = std::max(scale, static_cast<double>(std::abs(expected[i])));
  }
  EXPECT_LE(worst, 1e-4 * scale);
}

// The tokenizer as `rrt convert` names it: the GGUF file itself; tokenizer.model before
// tokenizer.json in a directory; tokenizer.model for a byte-sized vocabulary; none otherwise.
TEST(ModelSource, TokenizerAsConvertChoosesIt) {
  const std::string gguf = fixture("gguf/llama_untied.gguf");
  const RunConfig g = parse_run_config(read_model_source_header(gguf).config_yaml, gguf);
  EXPECT_EQ(g.data.tokenizer, fs::absolute(gguf).string());

  const fs::path dir = fresh("tokenizers");
  fs::copy_file(fixture("hf_llama_gqa/config.json"), dir / "config.json");
  using Kind = SourceTokenizer::Kind;
  const SourceTokenizer none = source_tokenizer(dir, ModelSourceKind::hf_directory, 1000);
  EXPECT_EQ(none.kind, Kind::none);
  EXPECT_EQ(none.path, "");
  // vocab_size 256: the byte-sized vocabulary names tokenizer.model even where it is absent.
  const RunConfig bytes = parse_run_config(read_model_source_header(dir).config_yaml, "dir");
  EXPECT_EQ(bytes.data.tokenizer, (dir / "tokenizer.model").string());
  std::ofstream(dir / "tokenizer.json") << "{}";
  const SourceTokenizer json = source_tokenizer(dir, ModelSourceKind::hf_directory, 1000);
  EXPECT_EQ(json.kind, Kind::tokenizer_json);
  EXPECT_EQ(json.path, fs::absolute(dir / "tokenizer.json").string());
  std::ofstream(dir / "tokenizer.model") << "x";
  const SourceTokenizer sp = source_tokenizer(dir, ModelSourceKind::hf_directory, 1000);
  EXPECT_EQ(sp.kind, Kind::sentencepiece);
  EXPECT_EQ(sp.path, fs::absolute(dir / "tokenizer.model").string());
  EXPECT_EQ(source_tokenizer("x.h5", ModelSourceKind::checkpoint, 1000).kind, Kind::none);
}

TEST(ModelSource, ErrorsSayWhatIsAccepted) {
  const fs::path dir = fresh("errors");
  std::ofstream(dir / "notes.txt") << "not a model";
  fs::create_directories(dir / "empty");
  for (const std::string& path :
       {(dir / "missing.h5").string(), (dir / "notes.txt").string(), (dir / "empty").string()}) {
    const std::string m = error_message([&] { read_model_source_header(path); });
    EXPECT_TRUE(contains(m, path)) << m;
    EXPECT_TRUE(contains(m, ".h5")) << m;
    EXPECT_TRUE(contains(m, "config.json")) << m;
    EXPECT_TRUE(contains(m, ".gguf file")) << m;
    EXPECT_FALSE(error_message([&] { load_model_source(path); }).empty());
  }
  // A damaged .h5 is the checkpoint reader's to describe.
  std::ofstream(dir / "bad.h5") << "truncated";
  EXPECT_TRUE(contains(error_message([&] { read_model_source_header((dir / "bad.h5").string()); }),
                       "not an HDF5 file"));
  // A GGUF file under another name is still read as one.
  fs::copy_file(fixture("gguf/llama_untied.gguf"), dir / "model.bin");
  EXPECT_EQ(model_source_kind((dir / "model.bin").string()), ModelSourceKind::gguf);
  // An interrupted export is refused, as `rrt convert` refuses it.
  const fs::path partial = dir / "partial";
  fs::create_directories(partial);
  fs::copy_file(fixture("hf_llama_gqa/config.json"), partial / "config.json");
  std::ofstream(partial / "INCOMPLETE") << "";
  EXPECT_TRUE(
      contains(error_message([&] { read_model_source_header(partial.string()); }), "INCOMPLETE"));
}

}  // namespace
}  // namespace rrt
