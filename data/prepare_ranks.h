// `rrt prepare` over several processes (MPI ranks), for inputs of many files. The shard set is
// the one a single process writes for the same inputs and options, whatever the rank count:
//   1. rank 0 checks the output directory (as prepare_shards does) and records the inputs;
//   2. every rank tokenises whole input files, the largest first to the least loaded rank, each
//      into a part: out_dir/.parts/file_NNNNN.{tokens,ends,json} (the token ids, the offsets where
//      documents end, and the file's totals, skip counts and CRC), committed atomically, the
//      .json last;
//   3. the parts, in input order, are the token stream; rank r writes shards r, r + W, ...;
//   4. rank 0 writes manifest.json and removes the parts.
// Resume: a killed preparation, run again with any rank count (or none: prepare_shards sees
// the parts and continues here), keeps every committed part and shard and redoes the rest.
// Failure: every rank learns of any rank's error at the end of each stage (all_ok), rank 0
// removes what the preparation wrote, and every rank throws (the failing one its own error).
#pragma once

#include <functional>

#include "data/prepare.h"

namespace rrt {

class Tokenizer;

struct PrepareRanks {
  int rank = 0, world = 1;
  // A collective that every rank calls at the same points: true when every rank passed true.
  std::function<bool(bool ok)> all_ok = [](bool ok) { return ok; };
};

inline constexpr const char* kPrepareParts = ".parts";

// The summary is the whole set's on every rank (input_bytes: every input file's).
PrepareSummary prepare_shards_on_ranks(const PrepareOptions& options, const Tokenizer& tokenizer,
                                       const PrepareRanks& ranks);

}  // namespace rrt
