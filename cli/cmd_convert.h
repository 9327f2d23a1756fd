// rrt convert as a function, for commands that convert on the way (rrt demo).
#pragma once

#include <cstdint>
#include <string>

namespace rrt::cli {

// The options of rrt convert, one field per flag (cli/cmd_convert.cpp, docs/conversion.md).
struct ConvertOpts {
  std::string from, out, sharing = "cycle", init = "stepwise", lora_init = "svd";
  std::string rank = "0", rank_attention, rank_mlp;  // a number, or "full"
  int64_t loops = 2;
  uint64_t seed = 1;
  bool per_loop_norms = false;
  // --score: token shards or text to score the original and the converted model on, after
  // writing (cli/convert_score.h); "" scores nothing.
  std::string score;
  int64_t score_batches = 4, score_seq_len = 256, score_micro_batch = 4;
  double score_val_fraction = 0.5;
};

// Writes opts.out (a weights-only checkpoint) and the run config beside it (.yaml), printing
// what it does, as `rrt convert` does.
void run_convert(const ConvertOpts& opts);

}  // namespace rrt::cli
