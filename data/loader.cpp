#include "data/loader.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <system_error>
#include <utility>

#include "core/error.h"
#include "core/rng.h"
#include "data/shard_set.h"

namespace rrt {

namespace fs = std::filesystem;

namespace {

// Every *.h5 of a directory in file-name order, or the one file given.
std::vector<std::string> list_shards(const std::string& path) {
  std::error_code error;
  const fs::file_status status = fs::status(path, error);
  RRT_CHECK(fs::exists(status), path,
            "token data not found; give a directory of shards or a shard written by "
            "`rrt prepare`");
  if (!fs::is_directory(status)) return {path};
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(path, error)) {
    const fs::path& file = entry.path();
    if (file.extension() == ".h5" && entry.is_regular_file()) names.push_back(file.filename());
  }
  RRT_CHECK(!error, path, "cannot list the directory: ", error.message());
  RRT_CHECK(!names.empty(), path,
            "holds no token shards (*.h5); write them with `rrt prepare --out ", path, "`");
  std::sort(names.begin(), names.end());
  // A set that `rrt prepare` did not finish, or whose shards are not its manifest's, is refused.
  if (!check_shard_set(path, names)) {
    static bool warned = false;
    if (!std::exchange(warned, true))
      std::fprintf(stderr,
                   "warning: [%s] has no %s (shards written by an older rrt or another tool): "
                   "cannot tell whether the set is complete\n",
                   path.c_str(), kShardSetManifest);
  }
  std::vector<std::string> paths;
  paths.reserve(names.size());
  for (const std::string& name : names) paths.push_back((fs::path(path) / name).string());
  return paths;
}

}  // namespace

TokenLoader::TokenLoader(const LoaderOptions& options, Split split)
    : where_(options.path),
      split_(split),
      seq_len_(options.seq_len),
      seed_(options.seed),
      rank_(options.rank),
      world_(options.world) {
  RRT_CHECK(options.seq_len >= 1, where_, "seq_len must be positive, got ", options.seq_len);
  RRT_CHECK(options.val_fraction >= 0.0 && options.val_fraction < 1.0, where_,
            "val_fraction must be in [0, 1), got ", options.val_fraction);
  RRT_CHECK(options.world >= 1 && options.rank >= 0 && options.rank < options.world, where_,
            "rank ", options.rank, " is not in [0, world = ", options.world, ")");

  for (const std::string& path : list_shards(options.path)) {
    ShardReader reader(path);
    const ShardInfo& info = reader.info();
    if (infos_.empty()) {
      tokenizer_ = info.tokenizer;
      vocab_size_ = info.vocab_size;
      eos_id_ = static_cast<int32_t>(info.eos_id);
    } else {
      const ShardInfo& first = infos_.front();
      RRT_CHECK(
          info.tokenizer == tokenizer_ && info.vocab_size == vocab_size_ && info.eos_id == eos_id_,
          path, "was written with tokenizer ", info.tokenizer, " (vocab_size ", info.vocab_size,
          ", eos_id ", info.eos_id, ") but ", first.path, " with ", tokenizer_, " (vocab_size ",
          vocab_size_, ", eos_id ", eos_id_,
          "); all shards of a data set must share one tokenizer");
    }
    infos_.push_back(info);
    if (info.tokens == 0) continue;
    starts_.push_back(total_tokens_);
    total_tokens_ += info.tokens;
    readers_.push_back(std::move(reader));
  }

  const int64_t T = seq_len_;
  if (fs::is_directory(options.path)) check_shard_set_tokens(options.path, infos_);
  RRT_CHECK(total_tokens_ >= T + 1, where_, "seq_len ", T, " needs at least ", T + 1,
            " tokens but the data holds ", total_tokens_, "; lower seq_len or add data");
  const int64_t S = (total_tokens_ - 1) / T;
  int64_t validation = 0;
  if (options.val_fraction > 0.0) {
    // The small tolerance keeps e.g. 0.05 * 100 from rounding up to 6.
    validation =
        static_cast<int64_t>(std::ceil(options.val_fraction * static_cast<double>(S) - 1e-9));
    validation = std::clamp<int64_t>(validation, 1, S);
  }
  const int64_t train = S - validation;
  RRT_CHECK(train >= 1, where_, "the train split would be empty: ", S, " sequences of ", T,
            " tokens, ", validation,
            " of them for validation; lower val_fraction or seq_len, "
            "or add data");
  if (split_ == Split::train) {
    first_ = 0;
    count_ = train;
  } else {
    RRT_CHECK(validation >= 1, where_,
              "there is no validation split (val_fraction is 0); set val_fraction > 0");
    first_ = train;
    count_ = validation;
  }
  window_.resize(static_cast<size_t>(T + 1));
}

void TokenLoader::build_permutation(int64_t epoch) {
  // Fisher-Yates: for i = n-1 .. 1, swap(order[i], order[j]) with j = floor(u_i * (i + 1)),
  // u_i = CounterRng(seed, epoch).uniform(i). Each draw depends only on (seed, epoch, i).
  const CounterRng rng(seed_, static_cast<uint64_t>(epoch));
  auto shuffle = [&](auto& order) {
    order.resize(static_cast<size_t>(count_));
    for (int64_t i = 0; i < count_; ++i)
      order[i] = static_cast<std::decay_t<decltype(order[0])>>(i);
    for (int64_t i = count_ - 1; i > 0; --i) {
      const int64_t j = std::min<int64_t>(
          static_cast<int64_t>(rng.uniform(static_cast<uint64_t>(i)) * static_cast<double>(i + 1)),
          i);
      std::swap(order[i], order[j]);
    }
  };
  if (count_ <= static_cast<int64_t>(UINT32_MAX)) {
    shuffle(permutation32_);
  } else {
    shuffle(permutation64_);
  }
  permutation_epoch_ = epoch;
}

int64_t TokenLoader::sequence_at(int64_t entry) {
  if (split_ == Split::validation) return first_ + entry % count_;
  if (permutation_epoch_ != cursor_.epoch) build_permutation(cursor_.epoch);
  const int64_t order = permutation64_.empty() ? permutation32_[entry] : permutation64_[entry];
  return first_ + order;
}

void TokenLoader::read_tokens(int64_t offset, int64_t n, int32_t* out) const {
  // The shard holding `offset`: the last one starting at or before it.
  size_t s = static_cast<size_t>(std::upper_bound(starts_.begin(), starts_.end(), offset) -
                                 starts_.begin() - 1);
  while (n > 0) {
    RRT_CHECK(s < readers_.size(), where_, "read past the end of the data");
    const int64_t local = offset - starts_[s];
    const int64_t take = std::min(n, readers_[s].info().tokens - local);
    readers_[s].read(local, take, out);
    out += take;
    offset += take;
    n -= take;
    ++s;
  }
}

void TokenLoader::next_batch(int64_t N, int32_t* inputs, int32_t* targets) {
  RRT_CHECK(N >= 1, where_, "batch size N must be positive, got ", N);
  const int64_t T = seq_len_, global = static_cast<int64_t>(world_) * N;
  if (split_ == Split::train) {
    RRT_CHECK(global <= count_, where_, "a global batch of ", global, " sequences (world ", world_,
              " x N ", N, ") exceeds the ", count_,
              " train sequences; lower the batch size or seq_len, or add data");
    if (cursor_.index + global > count_) cursor_ = {cursor_.epoch + 1, 0};
  }
  for (int64_t row = 0; row < N; ++row) {
    const int64_t entry = cursor_.index + static_cast<int64_t>(rank_) * N + row;
    const int64_t sequence = sequence_at(entry);
    read_tokens(sequence * T, T + 1, window_.data());
    std::memcpy(inputs + row * T, window_.data(), sizeof(int32_t) * static_cast<size_t>(T));
    std::memcpy(targets + row * T, window_.data() + 1, sizeof(int32_t) * static_cast<size_t>(T));
  }
  cursor_.index += global;
  if (split_ == Split::train) {
    // Roll over now, so that cursor().epoch names the epoch the next batch comes from.
    if (cursor_.index + global > count_) cursor_ = {cursor_.epoch + 1, 0};
  } else {
    cursor_.epoch += cursor_.index / count_;
    cursor_.index %= count_;
  }
}

void TokenLoader::restore(const LoaderCursor& cursor) {
  const int64_t limit = split_ == Split::train ? count_ : count_ - 1;
  RRT_CHECK(cursor.epoch >= 0 && cursor.index >= 0 && cursor.index <= limit, where_,
            "cursor (epoch ", cursor.epoch, ", index ", cursor.index, ") is outside this split of ",
            count_, " sequences; was it saved for other data, seq_len or val_fraction?");
  cursor_ = cursor;
}

}  // namespace rrt
