// rrt convert --score: the original and the converted model scored on the same tokens, so a user
// sees what the conversion did to quality (and that it is expected) before uptraining.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "config/run_config.h"
#include "evaluation/exit_eval.h"
#include "model/parameters.h"

namespace rrt::cli {

struct ScoreOptions {
  std::string path;  // token shards (rrt prepare) or text (.txt, .jsonl, a directory of them)
  int64_t batches = 4, seq_len = 256, micro_batch = 4;
  double val_fraction = 0.5;  // the validation split scored: the last half of the tokens
  std::string tokenizer;      // for text: the converted model's data.tokenizer
  std::string text_shards;    // for text: where its shards go (kept, so rrt eval can reuse them)
  uint64_t data_seed = 1;     // the loader's seed (data.seed of the written config)
  // What the printed rrt eval command adds so that it scores as this does (on the CPU in fp32)
  // when the written config says otherwise (a bf16 or cuda run's checkpoint converted).
  std::string eval_overrides;
};

struct ConversionScore {
  std::string data;  // the shard directory scored
  int64_t batches = 0, seq_len = 0, micro_batch = 0;
  double val_fraction = 0;
  std::string eval_overrides;
  int64_t original_params = 0, converted_params = 0;
  int64_t original_layers = 0, loops = 0, block_layers = 0;
  ExitEvaluation original, converted;  // per exit (the original has one)
};

// Scores `original` (spec + values) and `converted` on the first opts.batches validation
// micro-batches of opts.path, on the CPU in fp32, with the evaluator of rrt eval
// (evaluation/exit_eval.h): its numbers equal `rrt eval` of the written checkpoint with
// --data DIR --batches N train.seq_len=T train.micro_batch=N data.val_fraction=F.
ConversionScore score_conversion(const ModelSpec& original_spec, const ParameterSet& original,
                                 const ModelSpec& converted_spec, const ParameterSet& converted,
                                 const ScoreOptions& opts);

// The lines rrt convert prints: both perplexities per exit, the fraction of parameters kept, the
// rrt eval command that gives the same numbers for `checkpoint`, and what to expect.
std::string conversion_score_text(const ConversionScore& s, const std::string& checkpoint);
// The same as one JSON object (written beside the checkpoint as FILE.score.json).
std::string conversion_score_json(const ConversionScore& s);

}  // namespace rrt::cli
