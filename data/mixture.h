// Weighted mixtures of token data sets (docs/data.md, "Mixtures"): the train batches of a run
// whose data section lists several sources, each a shard set written by `rrt prepare`.
//
// Each source is read as the single-path loader reads a data set (data/loader.h): its own
// train/validation split, and a train order that is the Fisher-Yates shuffle of epoch e drawn
// with seed data.seed + i (source i, 0-based). Within a source the epochs follow each other
// without a gap (nothing is dropped at an epoch's end: one sequence is drawn at a time).
//
// Which source the next sequence of the mixture comes from: stride scheduling over the sources
// not yet exhausted. Source i has drawn c_i sequences; the next is taken from the source with the
// smallest (c_i + u_i) / w_i (ties: the lower index), where w_i is its weight and
// u_i = CounterRng(data.seed, kMixtureStream).uniform(i) in (0, 1) staggers the sources by seed.
// So after n sequences each source has c_i within about one sequence of n * w_i / sum(w) (a
// deterministic low-discrepancy interleaving: every global batch holds the mix of the weights),
// and when a source is exhausted the others share its place in proportion to their weights.
//
// Epoch caps: a source with `epochs` = E > 0 gives at most floor(E * S_i) sequences (S_i its
// train sequences), then is exhausted: it is no longer drawn. When every source is exhausted
// next_batch throws; the trainer checks before the first step that train.steps fits
// (capacity()). Sources without a cap are never exhausted.
//
// Ranks: a step takes world*N consecutive sequences of the mixture; rank r reads entries
// [r*N, (r+1)*N) of them (as data/loader.h's global batch). Every rank advances the same counts,
// so ranks read disjoint sequences (within one epoch of a source each sequence is drawn once)
// and world ranks of N rows read exactly the rows one rank of world*N reads.
//
// The cursor is the per-source counts c_i (sequences drawn, summed over ranks): the source's
// epoch is c_i / S_i and its index c_i mod S_i. A checkpoint that stores them resumes bit-exactly
// on any world size. Not thread-safe (as TokenLoader).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "data/loader.h"
#include "data/mixture_source.h"

namespace rrt {

inline constexpr uint64_t kMixtureStream = 0x6d69787475726573ull;  // "mixtures"

struct MixtureOptions {
  std::vector<MixtureSource> sources;
  int64_t seq_len = 256;
  double val_fraction = 0.05;
  uint64_t seed = 1;
  int rank = 0, world = 1;
};

// The loader options of source i: its path, the shared split, seed + i.
LoaderOptions source_loader_options(const MixtureOptions& options, size_t i);

class MixtureLoader {
 public:
  explicit MixtureLoader(const MixtureOptions& options);

  size_t size() const { return sources_.size(); }
  const MixtureSource& source(size_t i) const { return sources_[i]; }
  const std::string& name(size_t i) const { return names_[i]; }
  int64_t train_sequences(size_t i) const { return train_[i]->sequences(); }
  // Sequences source i may give in all (its epoch cap), or -1 when it has no cap.
  int64_t limit(size_t i) const { return limits_[i]; }
  // Sequences the mixture gives before every source is exhausted; -1 when that never happens.
  int64_t capacity() const;

  // Shared by every source (the constructor checks).
  std::string tokenizer() const { return train_[0]->tokenizer(); }
  int64_t vocab_size() const { return train_[0]->vocab_size(); }
  int32_t eos_id() const { return train_[0]->eos_id(); }
  int64_t seq_len() const { return seq_len_; }

  // inputs[N*T], targets[N*T]: this rank's N rows of the next global batch of world*N sequences.
  void next_batch(int64_t N, int32_t* inputs, int32_t* targets);
  // The source each row of the last batch came from (this rank's rows).
  const std::vector<int32_t>& last_sources() const { return last_sources_; }

  // The cursor: sequences drawn from each source so far, over all ranks.
  const std::vector<int64_t>& counts() const { return counts_; }
  void restore(const std::vector<int64_t>& counts);

  // The source the next sequence comes from, or -1 when every source is exhausted.
  int next_source() const;

 private:
  std::vector<MixtureSource> sources_;
  std::vector<std::string> names_;
  std::vector<std::unique_ptr<TokenLoader>> train_;  // world 1: one sequence at a time
  std::vector<double> weights_, offsets_;
  std::vector<int64_t> limits_, counts_;
  std::vector<int32_t> last_sources_, scratch_;
  int64_t seq_len_;
  int rank_, world_;
};

}  // namespace rrt
