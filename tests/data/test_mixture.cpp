// MixtureLoader (data/mixture.h): realised proportions against the weights, the documented
// interleaving, bit-exact resume from the per-source counts, per-rank disjointness, epoch caps,
// refused mixtures; and a pin of the single-path loader's batches, which mixtures must not move.
#include <cmath>
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "core/rng.h"
#include "data/loader.h"
#include "data/mixture.h"
#include "tests/data/data_test_util.h"

namespace rrt {
namespace {

using test::contains;
using test::error_message;
using test::TempDir;

constexpr int64_t kSourceStride = 1000000;  // token = source * kSourceStride + position

// A shard set whose token at position p is id * kSourceStride + p: a row's first input names its
// source and its sequence.
std::string source_data(const TempDir& dir, int id, int64_t tokens,
                        const std::string& tokenizer = "positions", int64_t vocab = 100000000) {
  const std::string path = dir / ("source" + std::to_string(id));
  test::RawShard shard;
  shard.dtype = H5T_STD_U32LE;
  shard.vocab_size = vocab;
  shard.eos_id = 0;
  shard.tokenizer = tokenizer;
  for (int64_t p = 0; p < tokens; ++p)
    shard.tokens.push_back(static_cast<uint32_t>(id * kSourceStride + p));
  test::write_raw_shard(path + "/shard_00000.h5", shard);
  return path;
}

struct Row {
  int source;
  int64_t sequence;
  bool operator<(const Row& o) const {
    return std::pair(source, sequence) < std::pair(o.source, o.sequence);
  }
  bool operator==(const Row& o) const = default;
};

// This rank's rows of the next batch, checked against last_sources() and the targets.
std::vector<Row> next_rows(MixtureLoader& loader, int64_t N) {
  const int64_t T = loader.seq_len();
  std::vector<int32_t> inputs(N * T), targets(N * T);
  loader.next_batch(N, inputs.data(), targets.data());
  std::vector<Row> rows;
  for (int64_t r = 0; r < N; ++r) {
    const int32_t first = inputs[r * T];
    const Row row{static_cast<int>(first / kSourceStride), (first % kSourceStride) / T};
    EXPECT_EQ(row.source, loader.last_sources()[r]);
    EXPECT_EQ(targets[r * T], first + 1);
    rows.push_back(row);
  }
  return rows;
}

MixtureOptions options3(const TempDir& dir, std::vector<double> weights, uint64_t seed = 3) {
  MixtureOptions o;
  for (size_t i = 0; i < weights.size(); ++i)
    o.sources.push_back(
        {.path = source_data(dir, static_cast<int>(i), 2000 + 700 * i), .weight = weights[i]});
  o.seq_len = 8;
  o.val_fraction = 0.1;
  o.seed = seed;
  return o;
}

// Over 10^5 sequences each source's share is within 1% of its weight's; more strictly, after
// every batch each count is within 1.5 sequences of n * w_i / sum(w) (the interleaving is
// low-discrepancy, not i.i.d. draws).
TEST(Mixture, RealisedProportionsFollowTheWeights) {
  TempDir dir;
  const std::vector<double> weights = {5, 3, 2};  // shares 0.5, 0.3, 0.2
  MixtureLoader loader(options3(dir, weights));
  const int64_t N = 50, batches = 2000;  // 10^5 sequences
  std::vector<int64_t> seen(3, 0);
  double worst = 0;
  for (int64_t b = 0; b < batches; ++b) {
    for (const Row& row : next_rows(loader, N)) ++seen[row.source];
    const double n = static_cast<double>((b + 1) * N);
    for (int i = 0; i < 3; ++i)
      worst = std::max(worst, std::abs(static_cast<double>(seen[i]) - n * weights[i] / 10));
  }
  EXPECT_LE(worst, 1.5);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(seen[i], loader.counts()[i]);
    EXPECT_NEAR(static_cast<double>(seen[i]) / 1e5, weights[i] / 10, 0.01) << "source " << i;
  }
}

// The documented rule: the smallest (c_i + u_i) / w_i, u_i from (seed, kMixtureStream).
TEST(Mixture, InterleavingIsTheDocumentedStrideScheduleOfTheSeed) {
  TempDir dir;
  const std::vector<double> weights = {1, 2.5, 0.5};
  MixtureOptions o = options3(dir, weights);
  for (uint64_t seed : {3, 4}) {
    o.seed = seed;
    MixtureLoader loader(o);
    const CounterRng rng(seed, kMixtureStream);
    std::vector<int64_t> c(3, 0);
    for (int b = 0; b < 40; ++b) {
      for (const Row& row : next_rows(loader, 5)) {
        int best = 0;
        for (int i = 1; i < 3; ++i)
          if ((c[i] + rng.uniform(i)) / weights[i] < (c[best] + rng.uniform(best)) / weights[best])
            best = i;
        ASSERT_EQ(row.source, best) << "seed " << seed << " batch " << b;
        ++c[best];
      }
    }
  }
  // Another seed staggers the sources differently.
  o.seed = 3;
  MixtureLoader a(o);
  o.seed = 4;
  MixtureLoader b(o);
  std::vector<Row> ra, rb;
  for (int i = 0; i < 4; ++i) {
    for (const Row& r : next_rows(a, 5)) ra.push_back(r);
    for (const Row& r : next_rows(b, 5)) rb.push_back(r);
  }
  EXPECT_NE(ra, rb);
}

// Within a source, sequence k of the mixture's draws from it is the single-path loader's train
// order with seed data.seed + i, epochs following each other without a gap.
TEST(Mixture, EachSourceReadsItsShuffledTrainSplitInOrder) {
  TempDir dir;
  const MixtureOptions o = options3(dir, {1, 1, 1});
  MixtureLoader loader(o);
  std::vector<std::vector<int64_t>> got(3);
  for (int b = 0; b < 200; ++b)
    for (const Row& r : next_rows(loader, 6)) got[r.source].push_back(r.sequence);
  for (size_t i = 0; i < 3; ++i) {
    TokenLoader single(source_loader_options(o, i), Split::train);
    const int64_t S = single.sequences();
    ASSERT_GT(static_cast<int64_t>(got[i].size()), S) << "the test should cross an epoch";
    std::vector<int32_t> in(8), tg(8);
    for (size_t k = 0; k < got[i].size(); ++k) {
      single.restore({static_cast<int64_t>(k) / S, static_cast<int64_t>(k) % S});
      single.next_batch(1, in.data(), tg.data());
      ASSERT_EQ(got[i][k], (in[0] % kSourceStride) / 8) << "source " << i << " draw " << k;
    }
  }
}

// A new loader restored from the counts continues exactly where the first would have gone on
// (across epochs), on 1, 2 or 3 ranks.
TEST(Mixture, ResumeFromCountsIsExactOnAnyWorldSize) {
  TempDir dir;
  MixtureOptions o = options3(dir, {2, 1, 1});
  MixtureLoader straight(o);
  for (int b = 0; b < 37; ++b) next_rows(straight, 6);
  const std::vector<int64_t> saved = straight.counts();
  std::vector<std::vector<Row>> expected;
  for (int b = 0; b < 300; ++b) expected.push_back(next_rows(straight, 6));
  for (int world : {1, 2, 3}) {
    std::vector<std::unique_ptr<MixtureLoader>> ranks;
    for (int r = 0; r < world; ++r) {
      o.rank = r;
      o.world = world;
      ranks.push_back(std::make_unique<MixtureLoader>(o));
      ranks.back()->restore(saved);
    }
    for (int b = 0; b < 300; ++b) {
      std::vector<Row> global;
      for (auto& rank : ranks)
        for (const Row& r : next_rows(*rank, 6 / world)) global.push_back(r);
      ASSERT_EQ(global, expected[b]) << "world " << world << " batch " << b;
    }
    for (auto& rank : ranks) EXPECT_EQ(rank->counts(), straight.counts());
  }
  MixtureLoader other(o);
  EXPECT_TRUE(contains(error_message([&] { other.restore({1, 2}); }), "3 sources"));
}

// Ranks read disjoint sequences: over one epoch of every source no (source, sequence) is read
// twice by any rank, and together the ranks read what one rank of the global batch reads.
TEST(Mixture, RanksReadDisjointSequences) {
  TempDir dir;
  MixtureOptions o = options3(dir, {1, 1, 1});
  o.sources[0].epochs = o.sources[1].epochs = o.sources[2].epochs = 1;  // one epoch each
  const int world = 4;
  std::vector<std::unique_ptr<MixtureLoader>> ranks;
  for (int r = 0; r < world; ++r) {
    o.rank = r;
    o.world = world;
    ranks.push_back(std::make_unique<MixtureLoader>(o));
  }
  const int64_t capacity = ranks[0]->capacity();
  const int64_t N = 3, steps = capacity / (N * world);
  std::set<Row> seen;
  std::vector<std::set<Row>> per_rank(world);
  for (int64_t s = 0; s < steps; ++s)
    for (int r = 0; r < world; ++r)
      for (const Row& row : next_rows(*ranks[r], N)) {
        EXPECT_TRUE(seen.insert(row).second) << "rank " << r << " reads source " << row.source
                                             << " sequence " << row.sequence << " again";
        per_rank[r].insert(row);
      }
  EXPECT_EQ(static_cast<int64_t>(seen.size()), steps * N * world);
  for (int r = 0; r < world; ++r) EXPECT_EQ(static_cast<int64_t>(per_rank[r].size()), steps * N);
}

// A capped source gives floor(epochs * S) sequences, each of its first epoch at most once, then
// is never drawn again; the uncapped ones share its place by their weights; a mixture of capped
// sources runs out with an error that leaves the cursor unchanged.
TEST(Mixture, EpochCapsAreHonoured) {
  TempDir dir;
  MixtureOptions o = options3(dir, {1, 1, 2});
  o.sources[0].epochs = 2;
  o.sources[1].epochs = 0.5;
  {
    MixtureLoader loader(o);
    const int64_t S0 = loader.train_sequences(0), S1 = loader.train_sequences(1);
    EXPECT_EQ(loader.limit(0), 2 * S0);
    EXPECT_EQ(loader.limit(1), S1 / 2);
    EXPECT_EQ(loader.limit(2), -1);
    EXPECT_EQ(loader.capacity(), -1);
    std::map<int, std::multiset<int64_t>> drawn;
    int64_t after_caps = 0, from2_after = 0;
    for (int b = 0; b < 3000; ++b)
      for (const Row& r : next_rows(loader, 4)) {
        const bool capped_done = static_cast<int64_t>(drawn[0].size()) == 2 * S0 &&
                                 static_cast<int64_t>(drawn[1].size()) == S1 / 2;
        if (capped_done) ++after_caps, from2_after += r.source == 2;
        drawn[r.source].insert(r.sequence);
      }
    EXPECT_EQ(static_cast<int64_t>(drawn[0].size()), 2 * S0);
    for (int64_t s = 0; s < S0; ++s) EXPECT_EQ(drawn[0].count(s), 2u) << s;
    EXPECT_EQ(static_cast<int64_t>(drawn[1].size()), S1 / 2);
    EXPECT_EQ(std::set<int64_t>(drawn[1].begin(), drawn[1].end()).size(), drawn[1].size());
    EXPECT_GT(after_caps, 1000);
    EXPECT_EQ(from2_after, after_caps);  // only the uncapped source is left
  }
  o.sources[2].epochs = 1;
  MixtureLoader loader(o);
  const int64_t capacity = loader.capacity();
  EXPECT_EQ(capacity, loader.limit(0) + loader.limit(1) + loader.limit(2));
  const int64_t N = 7;
  for (int64_t b = 0; b < capacity / N; ++b) next_rows(loader, N);
  const std::vector<int64_t> counts = loader.counts();
  EXPECT_EQ(counts[0] + counts[1] + counts[2], capacity / N * N);
  if (capacity % N != 0) {
    const std::string message = error_message([&] { next_rows(loader, N); });
    EXPECT_TRUE(contains(message, "every source of the mixture is exhausted")) << message;
    EXPECT_TRUE(contains(message, "source0: " + std::to_string(loader.limit(0)))) << message;
    EXPECT_EQ(loader.counts(), counts);
  }
  for (size_t i = 0; i < 3; ++i) EXPECT_LE(counts[i], loader.limit(i));
  EXPECT_EQ(loader.next_source() < 0, counts[0] + counts[1] + counts[2] == capacity);
}

TEST(Mixture, RefusesBadMixtures) {
  TempDir dir;
  const std::string a = source_data(dir, 0, 1000), b = source_data(dir, 1, 1000);
  auto make = [&](std::vector<MixtureSource> sources) {
    MixtureOptions o;
    o.sources = std::move(sources);
    o.seq_len = 8;
    o.val_fraction = 0.1;
    return MixtureLoader(o);
  };
  std::string m = error_message([&] { make({{.path = a}, {.path = b, .weight = 0}}); });
  EXPECT_TRUE(contains(m, "[data.sources[1] (" + b + ")]") && contains(m, "weight")) << m;
  m = error_message([&] { make({{.path = a}, {.path = b, .weight = NAN}}); });
  EXPECT_TRUE(contains(m, "weight must be > 0")) << m;
  m = error_message([&] { make({{.path = a, .epochs = -1}}); });
  EXPECT_TRUE(contains(m, "epochs must be >= 0")) << m;
  m = error_message([&] { make({{.path = a, .epochs = 1e-6}}); });
  EXPECT_TRUE(contains(m, "less than one sequence")) << m;
  m = error_message([&] { make({}); });
  EXPECT_TRUE(contains(m, "at least one source")) << m;
  m = error_message([&] { make({{.path = a, .name = "x"}, {.path = b, .name = "x"}}); });
  EXPECT_TRUE(contains(m, "the name 'x'")) << m;
  m = error_message([&] { make({{.path = a}, {.path = dir / "missing"}}); });
  EXPECT_TRUE(contains(m, "data.sources[1]") && contains(m, "not found")) << m;
  // Another tokenizer, another vocabulary: refused, naming both sources.
  const std::string other = source_data(dir, 2, 1000, "other");
  m = error_message([&] { make({{.path = a}, {.path = other}}); });
  EXPECT_TRUE(contains(m, "data.sources[1]") && contains(m, "'other'") &&
              contains(m, "share one tokenizer"))
      << m;
  const std::string wider = source_data(dir, 3, 1000, "positions", 200000000);
  m = error_message([&] { make({{.path = a}, {.path = wider}}); });
  EXPECT_TRUE(contains(m, "vocab_size 200000000") && contains(m, "share one tokenizer")) << m;
  // Names default to the directory's last component.
  EXPECT_EQ(default_source_name("data/web/"), "web");
  EXPECT_EQ(default_source_name("data/web/shard_00000.h5"), "shard_00000");
  MixtureLoader ok = make({{.path = a}, {.path = b, .name = "code"}});
  EXPECT_EQ(ok.name(0), "source0");
  EXPECT_EQ(ok.name(1), "code");
}

// FNV-1a over every input and target of 40 batches of the single-path loader (2 ranks, several
// shards, epochs crossed): data.path reads what it read before mixtures existed. The constant
// was computed with the loader as it was before data/mixture.* was added.
TEST(Mixture, SinglePathBatchesArePinned) {
  TempDir dir;
  const std::string data = dir / "single";
  uint64_t state = 12345;
  for (int s = 0; s < 3; ++s) {
    test::RawShard shard;
    shard.dtype = H5T_STD_U32LE;
    shard.vocab_size = 50000;
    shard.eos_id = 0;
    shard.tokenizer = "pinned";
    for (int64_t p = 0; p < 500 + 311 * s; ++p) {
      state = state * 6364136223846793005ull + 1442695040888963407ull;
      shard.tokens.push_back(static_cast<uint32_t>((state >> 33) % 50000));
    }
    test::write_raw_shard(data + "/shard_" + std::to_string(s) + ".h5", shard);
  }
  uint64_t hash = 1469598103934665603ull;
  auto mix = [&hash](const std::vector<int32_t>& v) {
    for (int32_t x : v)
      for (int byte = 0; byte < 4; ++byte) {
        hash ^= (static_cast<uint32_t>(x) >> (8 * byte)) & 0xff;
        hash *= 1099511628211ull;
      }
  };
  const int64_t T = 16, N = 3;
  for (int rank = 0; rank < 2; ++rank) {
    TokenLoader loader(LoaderOptions{data, T, 0.1, 7, rank, 2}, Split::train);
    std::vector<int32_t> inputs(N * T), targets(N * T);
    for (int b = 0; b < 40; ++b) {
      loader.next_batch(N, inputs.data(), targets.data());
      mix(inputs);
      mix(targets);
    }
  }
  TokenLoader val(LoaderOptions{data, T, 0.1, 7, 1, 2}, Split::validation);
  std::vector<int32_t> inputs(N * T), targets(N * T);
  for (int b = 0; b < 5; ++b) {
    val.next_batch(N, inputs.data(), targets.data());
    mix(inputs);
  }
  EXPECT_EQ(hash, 0x8903cad931250940ull) << std::hex << "0x" << hash;
}

}  // namespace
}  // namespace rrt
