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
};

// Writes opts.out (a weights-only checkpoint) and the run config beside it (.yaml), printing
// what it does, as `rrt convert` does.
void run_convert(const ConvertOpts& opts);

}  // namespace rrt::cli
