#include "checkpoint/model_source.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "config/config_io.h"
#include "core/durable_file.h"
#include "core/error.h"
#include "core/gguf.h"
#include "model/gguf_import.h"
#include "model/hf_import.h"

namespace rrt {

namespace fs = std::filesystem;

namespace {

constexpr const char* kAccepted =
    "an rrt checkpoint (.h5), a Hugging Face model directory with config.json, or a .gguf file";

ModelSpec plain_spec(const ModelConfig& m) {
  ModelSpec spec;
  spec.model = m;
  spec.recursion.block_layers = m.n_layers;
  spec.recursion.loops = 1;
  validate(spec);
  return spec;
}

// The plain model's spec without its weights: config.json or the GGUF metadata.
ModelSpec read_source_spec(const std::string& path, ModelSourceKind kind) {
  if (kind == ModelSourceKind::gguf) return plain_spec(read_gguf_config(GgufFile(path)));
  refuse_incomplete_output(path, "export", "export it again (rrt export)");
  return plain_spec(read_hf_config(path));
}

}  // namespace

ModelSourceKind model_source_kind(const std::string& path, const std::string& what) {
  RRT_CHECK(fs::exists(path), what, "'", path, "' does not exist; give ", kAccepted);
  if (fs::is_directory(path)) {
    RRT_CHECK(fs::exists(fs::path(path) / "config.json"), what, "the directory '", path,
              "' has no config.json: it is not a Hugging Face model directory; give ", kAccepted);
    return ModelSourceKind::hf_directory;
  }
  // By the file's magic first, so a GGUF file named otherwise is still one; a .gguf or .h5 name
  // with the wrong contents goes to that reader, which says what is wrong with it.
  char magic[8] = {};
  std::ifstream(path, std::ios::binary).read(magic, sizeof magic);
  if (std::memcmp(magic, "GGUF", 4) == 0 || fs::path(path).extension() == ".gguf")
    return ModelSourceKind::gguf;
  RRT_CHECK(std::memcmp(magic, "\x89HDF\r\n\x1a\n", 8) == 0 || fs::path(path).extension() == ".h5",
            what, "'", path, "' is neither an HDF5 file nor a GGUF file; give ", kAccepted);
  return ModelSourceKind::checkpoint;
}

SourceTokenizer source_tokenizer(const std::string& path, ModelSourceKind kind, int64_t vocab) {
  SourceTokenizer t;
  if (kind == ModelSourceKind::checkpoint) return t;  // its run config names its own
  if (kind == ModelSourceKind::gguf) {
    // Byte-level BPE ("gpt2") or SentencePiece ("llama") metadata inside the file.
    t.kind = SourceTokenizer::Kind::gguf;
    t.path = fs::absolute(path).string();
    return t;
  }
  const fs::path sp = fs::path(path) / "tokenizer.model";
  const fs::path tokenizer_json = fs::path(path) / "tokenizer.json";
  if (fs::exists(sp) || vocab < 257) {
    t.kind = SourceTokenizer::Kind::sentencepiece;
    t.path = fs::exists(sp) ? fs::absolute(sp).string() : sp.string();
  } else if (fs::exists(tokenizer_json)) {
    t.kind = SourceTokenizer::Kind::tokenizer_json;
    t.path = fs::absolute(tokenizer_json).string();
  }
  return t;
}

RunConfig plain_source_run_config(const std::string& path, ModelSourceKind kind,
                                  const ModelSpec& spec) {
  RunConfig run;
  run.model = spec;
  run.train.seq_len = std::min<int64_t>(run.train.seq_len, spec.model.max_seq_len);
  const SourceTokenizer tok = source_tokenizer(path, kind, spec.model.vocab);
  if (tok.kind != SourceTokenizer::Kind::none) run.data.tokenizer = tok.path;
  return run;
}

CheckpointContents read_model_source_header(const std::string& path) {
  const ModelSourceKind kind = model_source_kind(path);
  if (kind == ModelSourceKind::checkpoint) return read_checkpoint_header(path);
  CheckpointContents c;
  c.config_yaml = to_yaml(plain_source_run_config(path, kind, read_source_spec(path, kind)));
  c.verified = true;  // nothing to verify: the imports check every tensor they read
  return c;
}

void load_model_source_params(const std::string& path, ParameterSet& params) {
  const ModelSourceKind kind = model_source_kind(path);
  if (kind == ModelSourceKind::checkpoint) {
    load_checkpoint(path, params, nullptr);
    return;
  }
  if (kind == ModelSourceKind::hf_directory)
    refuse_incomplete_output(path, "export", "export it again (rrt export)");
  HfModel hf = kind == ModelSourceKind::gguf ? load_gguf_model(path) : load_hf_model(path);
  // One registry for both: the same spec lays out the same arena.
  const ParamRegistry& a = params.registry();
  const ParamRegistry& b = hf.params->registry();
  RRT_CHECK(a.size() == b.size() && a.total_numel() == b.total_numel(), path,
            "the model it holds (", b.size(), " parameters, ", b.total_numel(),
            " values) is not the one planned (", a.size(), " parameters, ", a.total_numel(),
            " values); was the config read from another source?");
  Arena& to = params.values_arena();
  const Arena& from = hf.params->values_arena();
  RRT_CHECK(to.total_bytes() == from.total_bytes(), path, "layout mismatch");
  std::memcpy(to.base(), from.base(), static_cast<size_t>(to.total_bytes()));
}

CheckpointModel load_model_source(const std::string& path) {
  const ModelSourceKind kind = model_source_kind(path);
  if (kind == ModelSourceKind::checkpoint) return load_checkpoint_model(path);
  if (kind == ModelSourceKind::hf_directory)
    refuse_incomplete_output(path, "export", "export it again (rrt export)");
  HfModel hf = kind == ModelSourceKind::gguf ? load_gguf_model(path) : load_hf_model(path);
  CheckpointModel m;
  m.config = plain_source_run_config(path, kind, hf.spec);
  m.params = std::move(hf.params);
  return m;
}

}  // namespace rrt
