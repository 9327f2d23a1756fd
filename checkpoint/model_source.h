// Any model source a command accepts, opened in one place: an rrt checkpoint (.h5), a Hugging
// Face model directory (config.json + safetensors, model/hf_import.h) or a GGUF file
// (model/gguf_import.h). The last two are converted in memory into the plain model they hold
// (loops 1, no LoRA) with a default run config, so `rrt generate`, `rrt serve`, `rrt eval`, the
// distillation teacher, ... take what users have without an `rrt convert --loops 1` first.
#pragma once

#include <string>

#include "checkpoint/checkpoint.h"
#include "config/run_config.h"
#include "model/parameters.h"

namespace rrt {

enum class ModelSourceKind { checkpoint, hf_directory, gguf };

// Which kind `path` is: a directory with config.json, a file ending in .gguf, or any other file
// (read as an rrt checkpoint, whose reader says when it is not one). A path that does not exist,
// or a directory without config.json, throws rrt::Error naming `what` and what is accepted.
ModelSourceKind model_source_kind(const std::string& path, const std::string& what = "model");

// The tokenizer that travels with an HF directory or a GGUF file, as `rrt convert` picks it: the
// GGUF file itself (its metadata holds the vocabulary); in a directory tokenizer.model
// (SentencePiece; also named when the vocabulary is byte-sized, < 257 tokens), else
// tokenizer.json; none (path "") when the directory holds neither. Only the path is chosen:
// nothing is read, so callers that need the tokenizer verify it (make_tokenizer).
struct SourceTokenizer {
  enum class Kind { none, gguf, sentencepiece, tokenizer_json } kind = Kind::none;
  std::string path;
};
SourceTokenizer source_tokenizer(const std::string& path, ModelSourceKind kind, int64_t vocab);

// The run config of the plain model of an HF directory or GGUF file: the defaults, `spec` as the
// model, data.tokenizer from source_tokenizer (when there is one) and train.seq_len capped at
// the model's max_seq_len.
RunConfig plain_source_run_config(const std::string& path, ModelSourceKind kind,
                                  const ModelSpec& spec);

// The config alone (cheap: a checkpoint's /config and state, config.json, the GGUF metadata),
// as read_checkpoint_header returns it: config_yaml parses with parse_run_config (and its
// overrides); an HF directory or GGUF file has step 0 and no optimizer. An HF directory that an
// interrupted export left (its INCOMPLETE marker) is refused.
CheckpointContents read_model_source_header(const std::string& path);

// The weights of `path` into `params`, whose spec is the header's model (read_model_source_header):
// load_checkpoint for an rrt checkpoint; the HF / GGUF import otherwise, copied into `params`
// (their layouts are the same registry's).
void load_model_source_params(const std::string& path, ParameterSet& params);

// Config, weights (values only) and training state: load_checkpoint_model for an rrt checkpoint.
CheckpointModel load_model_source(const std::string& path);

}  // namespace rrt
