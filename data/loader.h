// Per-rank token loader with a resumable cursor (docs/data.md).
//
// The stream is every shard in file-name order, concatenated. With T = seq_len, sequence i is
// the window of tokens [i*T, i*T + T + 1) (inputs = its first T, targets = its last T), and
// S = floor((total - 1) / T). The last ceil(val_fraction * S) sequences are the validation split,
// the rest the train split. Train order in epoch e is a Fisher-Yates permutation drawn from
// CounterRng(seed, e); validation is in order.
//
// A step takes world*N consecutive entries of the order from cursor.index; rank r reads
// entries [index + r*N, index + (r+1)*N). So world ranks of N rows see exactly the rows of one
// rank of world*N. Train: when fewer than world*N entries are left, the epoch ends (the rest is
// dropped) and the next begins at index 0. Validation wraps around instead (entry k is
// sequence k mod V), so any number of batches can be taken; restore({0, 0}) before each pass.
//
// The cursor is the same on every rank and does not depend on the rank, so a checkpoint that
// stores it resumes bit-exactly. Not thread-safe (HDF5 is built without thread safety).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "data/shard.h"

namespace rrt {

enum class Split { train, validation };

struct LoaderOptions {
  std::string path;  // a directory of shards (every *.h5 in it) or one shard file
  int64_t seq_len = 256;
  double val_fraction = 0.05;  // in [0, 1)
  uint64_t seed = 1;
  int rank = 0, world = 1;
};

struct LoaderCursor {
  int64_t epoch = 0, index = 0;  // index: entries of the epoch's order already consumed
};

class TokenLoader {
 public:
  TokenLoader(const LoaderOptions& options, Split split);

  int64_t vocab_size() const { return vocab_size_; }
  int32_t eos_id() const { return eos_id_; }
  std::string tokenizer() const { return tokenizer_; }
  int64_t sequences() const { return count_; }  // in this split
  int64_t total_tokens() const { return total_tokens_; }
  int64_t seq_len() const { return seq_len_; }
  const std::vector<ShardInfo>& shards() const { return infos_; }

  // inputs[N*T], targets[N*T], row-major [N][T]: this rank's N rows of the next global batch.
  // Advances the cursor by world*N entries.
  void next_batch(int64_t N, int32_t* inputs, int32_t* targets);

  LoaderCursor cursor() const { return cursor_; }
  void restore(const LoaderCursor& cursor);

 private:
  int64_t sequence_at(int64_t entry);  // entry of the current epoch's order -> sequence index
  void read_tokens(int64_t offset, int64_t n, int32_t* out) const;
  void build_permutation(int64_t epoch);

  std::string where_;
  Split split_;
  int64_t seq_len_;
  uint64_t seed_;
  int rank_, world_;
  std::vector<ShardReader> readers_;  // non-empty shards only
  std::vector<int64_t> starts_;       // stream offset of readers_[s]'s first token
  std::vector<ShardInfo> infos_;      // every shard
  std::string tokenizer_;
  int64_t vocab_size_ = 0;
  int32_t eos_id_ = 0;
  int64_t total_tokens_ = 0;
  int64_t first_ = 0, count_ = 0;  // this split = sequences [first_, first_ + count_)
  LoaderCursor cursor_;
  int64_t permutation_epoch_ = -1;
  std::vector<uint32_t> permutation32_;  // the train order when it fits in 32 bits
  std::vector<int64_t> permutation64_;   // otherwise
  std::vector<int32_t> window_;          // T + 1 tokens
};

}  // namespace rrt
