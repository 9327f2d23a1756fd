// TokenLoader: windows and targets, the train/validation split, the documented shuffle, epoch
// rollover, bit-exact resume from a cursor, and per-rank slicing of the global batch.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <set>
#include <string>
#include <vector>

#include "core/rng.h"
#include "data/loader.h"
#include "tests/data/data_test_util.h"

namespace rrt {
namespace {

using test::contains;
using test::error_message;
using test::TempDir;

// Token at stream position p is p itself (vocab 100000, uint32), spread over shards of 700, 1,
// 0 and 1300 tokens: a row's first input names its sequence, and windows cross every boundary.
constexpr int64_t kTotal = 2001;
std::string positional_data(const TempDir& dir) {
  std::string data = dir / "data";
  const int64_t sizes[] = {700, 1, 0, 1300};
  const char* names[] = {"shard_a.h5", "shard_b.h5", "shard_c.h5", "shard_d.h5"};
  int64_t position = 0;
  for (int s = 0; s < 4; ++s) {
    test::RawShard shard;
    shard.dtype = H5T_STD_U32LE;
    shard.vocab_size = 100000;
    shard.eos_id = 99999;
    shard.tokenizer = "positions";
    for (int64_t i = 0; i < sizes[s]; ++i)
      shard.tokens.push_back(static_cast<uint32_t>(position++));
    test::write_raw_shard(data + "/" + names[s], shard);
  }
  return data;
}

LoaderOptions options_for(const std::string& path, int64_t seq_len, double val_fraction = 0.1,
                          uint64_t seed = 1, int rank = 0, int world = 1) {
  LoaderOptions options;
  options.path = path;
  options.seq_len = seq_len;
  options.val_fraction = val_fraction;
  options.seed = seed;
  options.rank = rank;
  options.world = world;
  return options;
}

struct Batch {
  std::vector<int32_t> inputs, targets;
};

Batch next(TokenLoader& loader, int64_t N) {
  const int64_t T = loader.seq_len();
  Batch batch{std::vector<int32_t>(N * T), std::vector<int32_t>(N * T)};
  loader.next_batch(N, batch.inputs.data(), batch.targets.data());
  return batch;
}

// The sequence index of each row (token = position).
std::vector<int64_t> sequences_of(const Batch& batch, int64_t T) {
  std::vector<int64_t> sequences;
  for (size_t row = 0; row * T < batch.inputs.size(); ++row)
    sequences.push_back(batch.inputs[row * T] / T);
  return sequences;
}

// The documented train order: Fisher-Yates with j = floor(u_i * (i + 1)).
std::vector<int64_t> reference_order(int64_t n, uint64_t seed, int64_t epoch) {
  std::vector<int64_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  CounterRng rng(seed, epoch);
  for (int64_t i = n - 1; i > 0; --i) {
    const int64_t j = std::min<int64_t>(static_cast<int64_t>(rng.uniform(i) * (i + 1)), i);
    std::swap(order[i], order[j]);
  }
  return order;
}

TEST(DataLoader, TargetsAreInputsShiftedByOne) {
  TempDir dir;
  TokenLoader loader(options_for(positional_data(dir), 16), Split::train);
  EXPECT_EQ(loader.total_tokens(), kTotal);
  EXPECT_EQ(loader.vocab_size(), 100000);
  EXPECT_EQ(loader.eos_id(), 99999);
  EXPECT_EQ(loader.tokenizer(), "positions");
  EXPECT_EQ(loader.shards().size(), 4u);
  for (int step = 0; step < 10; ++step) {
    const Batch batch = next(loader, 4);
    for (int64_t row = 0; row < 4; ++row) {
      const int64_t start = batch.inputs[row * 16];
      EXPECT_EQ(start % 16, 0);  // sequence i starts at i*T
      for (int64_t t = 0; t < 16; ++t) {
        ASSERT_EQ(batch.inputs[row * 16 + t], start + t);
        ASSERT_EQ(batch.targets[row * 16 + t], start + t + 1);
      }
    }
  }
}

TEST(DataLoader, SplitsAreDisjointAndCoverEverySequence) {
  TempDir dir;
  const std::string data = positional_data(dir);
  const int64_t T = 16, S = (kTotal - 1) / T;  // 125
  TokenLoader train(options_for(data, T, 0.1), Split::train);
  TokenLoader validation(options_for(data, T, 0.1), Split::validation);
  EXPECT_EQ(validation.sequences(), 13);  // ceil(12.5)
  EXPECT_EQ(train.sequences(), S - 13);

  std::vector<int64_t> train_seen, validation_seen;
  for (int64_t i = 0; i < train.sequences(); ++i)
    train_seen.push_back(sequences_of(next(train, 1), T)[0]);
  for (int64_t i = 0; i < validation.sequences(); ++i)
    validation_seen.push_back(sequences_of(next(validation, 1), T)[0]);
  // Validation is the last sequences, in order; train is a permutation of the rest.
  for (int64_t k = 0; k < 13; ++k) EXPECT_EQ(validation_seen[k], S - 13 + k);
  std::set<int64_t> all(train_seen.begin(), train_seen.end());
  EXPECT_EQ(static_cast<int64_t>(all.size()), S - 13);
  EXPECT_EQ(*all.begin(), 0);
  EXPECT_EQ(*all.rbegin(), S - 14);
  all.insert(validation_seen.begin(), validation_seen.end());
  EXPECT_EQ(static_cast<int64_t>(all.size()), S);
  EXPECT_FALSE(std::is_sorted(train_seen.begin(), train_seen.end()));
}

TEST(DataLoader, ValidationSizeRules) {
  TempDir dir;
  const std::string data = positional_data(dir);
  // S = 100 with T = 20: 0.05 * 100 is 5, not 6.
  EXPECT_EQ(TokenLoader(options_for(data, 20, 0.05), Split::validation).sequences(), 5);
  EXPECT_EQ(TokenLoader(options_for(data, 20, 0.05), Split::train).sequences(), 95);
  EXPECT_EQ(TokenLoader(options_for(data, 20, 1e-6), Split::validation).sequences(), 1);
  EXPECT_EQ(TokenLoader(options_for(data, 20, 0.0), Split::train).sequences(), 100);
  std::string message =
      error_message([&] { TokenLoader(options_for(data, 20, 0.0), Split::validation); });
  EXPECT_TRUE(contains(message, "no validation split")) << message;
  // S = 1: its one sequence would go to validation.
  message = error_message([&] { TokenLoader(options_for(data, 1500, 0.1), Split::train); });
  EXPECT_TRUE(contains(message, "train split would be empty")) << message;
  EXPECT_TRUE(contains(message, "[" + data + "]")) << message;
  EXPECT_EQ(TokenLoader(options_for(data, 1500, 0.0), Split::train).sequences(), 1);
  EXPECT_EQ(TokenLoader(options_for(data, 2000, 0.0), Split::train).sequences(), 1);
  message = error_message([&] { TokenLoader(options_for(data, 2001, 0.0), Split::train); });
  EXPECT_TRUE(contains(message, "needs at least 2002 tokens")) << message;
  message = error_message([&] { TokenLoader(options_for(data, 16, 1.0), Split::train); });
  EXPECT_TRUE(contains(message, "val_fraction")) << message;
  message = error_message([&] { TokenLoader(options_for(data, 16, 0.1, 1, 2, 2), Split::train); });
  EXPECT_TRUE(contains(message, "rank 2")) << message;
}

TEST(DataLoader, ShuffleFollowsTheSeedAndTheDocumentedFisherYates) {
  TempDir dir;
  const std::string data = positional_data(dir);
  const int64_t T = 16, n = 112;
  auto epoch_order = [&](uint64_t seed) {
    TokenLoader loader(options_for(data, T, 0.1, seed), Split::train);
    std::vector<int64_t> order;
    for (int step = 0; step < 14; ++step) {
      const auto rows = sequences_of(next(loader, 8), T);
      order.insert(order.end(), rows.begin(), rows.end());
    }
    return order;
  };
  const auto a = epoch_order(7), b = epoch_order(7), c = epoch_order(8);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  EXPECT_EQ(a, reference_order(n, 7, 0));
  EXPECT_EQ(c, reference_order(n, 8, 0));
}

TEST(DataLoader, EpochRollsOverDroppingTheRemainder) {
  TempDir dir;
  const int64_t T = 16, n = 112, N = 5;  // 22 batches per epoch, 2 sequences dropped
  TokenLoader loader(options_for(positional_data(dir), T, 0.1, 3), Split::train);
  std::vector<int64_t> epoch0;
  for (int step = 0; step < 22; ++step) {
    EXPECT_EQ(loader.cursor().epoch, 0);
    EXPECT_EQ(loader.cursor().index, step * N);
    const auto rows = sequences_of(next(loader, N), T);
    epoch0.insert(epoch0.end(), rows.begin(), rows.end());
  }
  EXPECT_EQ(loader.cursor().epoch, 1);
  EXPECT_EQ(loader.cursor().index, 0);
  std::vector<int64_t> expected0 = reference_order(n, 3, 0);
  expected0.resize(110);
  EXPECT_EQ(epoch0, expected0);
  EXPECT_EQ(std::set<int64_t>(epoch0.begin(), epoch0.end()).size(), 110u);

  const auto rows = sequences_of(next(loader, N), T);
  const std::vector<int64_t> expected1 = reference_order(n, 3, 1);
  EXPECT_EQ(rows, std::vector<int64_t>(expected1.begin(), expected1.begin() + N));
  EXPECT_NE(expected0, std::vector<int64_t>(expected1.begin(), expected1.begin() + 110));
  EXPECT_EQ(loader.cursor().epoch, 1);
  EXPECT_EQ(loader.cursor().index, N);
}

TEST(DataLoader, CursorRestoreInANewLoaderContinuesIdentically) {
  TempDir dir;
  const std::string data = positional_data(dir);
  for (Split split : {Split::train, Split::validation}) {
    // N = 6 (train: 18 batches per epoch of 112; validation: 13 sequences wrap every few steps)
    const LoaderOptions options = options_for(data, 16, 0.1, 11);
    std::vector<Batch> straight;
    TokenLoader first(options, split);
    // Start near the end of an epoch so the 7 batches cross a rollover.
    const LoaderCursor start = split == Split::train ? LoaderCursor{2, 84} : LoaderCursor{0, 0};
    first.restore(start);
    straight.reserve(7);
    for (int step = 0; step < 7; ++step) straight.push_back(next(first, 6));

    TokenLoader before(options, split);
    before.restore(start);
    for (int step = 0; step < 3; ++step) {
      const Batch batch = next(before, 6);
      EXPECT_EQ(batch.inputs, straight[step].inputs);
      EXPECT_EQ(batch.targets, straight[step].targets);
    }
    const LoaderCursor saved = before.cursor();
    TokenLoader after(options, split);
    after.restore(saved);
    for (int step = 3; step < 7; ++step) {
      const Batch batch = next(after, 6);
      EXPECT_EQ(batch.inputs, straight[step].inputs) << "step " << step;
      EXPECT_EQ(batch.targets, straight[step].targets) << "step " << step;
    }
    EXPECT_EQ(after.cursor().epoch, first.cursor().epoch);
    EXPECT_EQ(after.cursor().index, first.cursor().index);
    if (split == Split::train) {
      EXPECT_GE(first.cursor().epoch, 3);
    }
  }
}

TEST(DataLoader, RanksSliceTheGlobalBatchOfOneRank) {
  TempDir dir;
  const std::string data = positional_data(dir);
  const int64_t T = 16, N = 3;
  for (Split split : {Split::train, Split::validation}) {
    for (int world : {2, 3}) {
      // One rank with world*N rows is the reference, over enough steps to cross epochs.
      TokenLoader single(options_for(data, T, 0.1, 5), split);
      std::vector<TokenLoader> ranks;
      ranks.reserve(world);
      for (int r = 0; r < world; ++r)
        ranks.emplace_back(options_for(data, T, 0.1, 5, r, world), split);
      for (int step = 0; step < 40; ++step) {
        const Batch global = next(single, world * N);
        for (int r = 0; r < world; ++r) {
          const Batch local = next(ranks[r], N);
          const auto begin = global.inputs.begin() + r * N * T;
          ASSERT_TRUE(std::equal(local.inputs.begin(), local.inputs.end(), begin))
              << "world " << world << " rank " << r << " step " << step;
          ASSERT_TRUE(std::equal(local.targets.begin(), local.targets.end(),
                                 global.targets.begin() + r * N * T));
          EXPECT_EQ(ranks[r].cursor().epoch, single.cursor().epoch);
          EXPECT_EQ(ranks[r].cursor().index, single.cursor().index);
        }
      }
      if (split == Split::train) {
        EXPECT_GE(single.cursor().epoch, 2);
      }
    }
  }
}

TEST(DataLoader, ValidationWrapsAround) {
  TempDir dir;
  const int64_t T = 16, S = 125;
  TokenLoader loader(options_for(positional_data(dir), T, 0.1), Split::validation);
  ASSERT_EQ(loader.sequences(), 13);
  std::vector<int64_t> seen;
  for (int step = 0; step < 3; ++step) {
    const auto rows = sequences_of(next(loader, 5), T);
    seen.insert(seen.end(), rows.begin(), rows.end());
  }
  for (int64_t k = 0; k < 15; ++k) EXPECT_EQ(seen[k], S - 13 + k % 13);
  EXPECT_EQ(loader.cursor().epoch, 1);
  EXPECT_EQ(loader.cursor().index, 2);
  // A batch larger than the split still works: it wraps.
  loader.restore({0, 0});
  const auto rows = sequences_of(next(loader, 20), T);
  EXPECT_EQ(rows[13], S - 13);
  EXPECT_EQ(rows[19], S - 7);
}

TEST(DataLoader, SingleShardFileAndBadArguments) {
  TempDir dir;
  const std::string data = positional_data(dir);
  TokenLoader one(options_for(data + "/shard_d.h5", 10, 0.0), Split::train);
  EXPECT_EQ(one.total_tokens(), 1300);
  EXPECT_EQ(one.sequences(), 129);
  EXPECT_EQ(one.shards().size(), 1u);
  const Batch batch = next(one, 2);
  EXPECT_EQ(batch.inputs[0] % 10, 701 % 10);  // positions 701.. in this shard

  TokenLoader loader(options_for(data, 16, 0.1), Split::train);
  std::vector<int32_t> inputs(size_t{200} * 16), targets(size_t{200} * 16);
  std::string message =
      error_message([&] { loader.next_batch(113, inputs.data(), targets.data()); });
  EXPECT_TRUE(contains(message, "exceeds the 112 train sequences")) << message;
  message = error_message([&] { loader.next_batch(0, inputs.data(), targets.data()); });
  EXPECT_TRUE(contains(message, "positive")) << message;
  message = error_message([&] { loader.restore({0, 113}); });
  EXPECT_TRUE(contains(message, "cursor")) << message;
  message = error_message([&] { loader.restore({-1, 0}); });
  EXPECT_TRUE(contains(message, "cursor")) << message;
  loader.next_batch(112, inputs.data(), targets.data());  // the whole split in one batch
  EXPECT_EQ(loader.cursor().epoch, 1);
}

}  // namespace
}  // namespace rrt
