#include "data/mixture.h"

#include <cmath>
#include <cstring>
#include <filesystem>

#include "core/error.h"
#include "core/rng.h"

namespace rrt {

namespace fs = std::filesystem;

LoaderOptions source_loader_options(const MixtureOptions& options, size_t i) {
  return LoaderOptions{.path = options.sources[i].path,
                       .seq_len = options.seq_len,
                       .val_fraction = options.val_fraction,
                       .seed = options.seed + static_cast<uint64_t>(i),
                       .rank = 0,
                       .world = 1};
}

MixtureLoader::MixtureLoader(const MixtureOptions& options)
    : sources_(options.sources),
      seq_len_(options.seq_len),
      rank_(options.rank),
      world_(options.world) {
  const std::string key = "data.sources";
  RRT_CHECK(!sources_.empty(), key, "a mixture needs at least one source");
  RRT_CHECK(options.world >= 1 && options.rank >= 0 && options.rank < options.world, key, "rank ",
            options.rank, " is not in [0, world = ", options.world, ")");
  const CounterRng stagger(options.seed, kMixtureStream);
  for (size_t i = 0; i < sources_.size(); ++i) {
    const MixtureSource& s = sources_[i];
    const std::string where = key + "[" + std::to_string(i) + "] (" + s.path + ")";
    RRT_CHECK(std::isfinite(s.weight) && s.weight > 0, where, "weight must be > 0, got ", s.weight);
    RRT_CHECK(std::isfinite(s.epochs) && s.epochs >= 0, where,
              "epochs must be >= 0 (0: no cap), got ", s.epochs);
    names_.push_back(source_name(s));
    for (size_t j = 0; j < i; ++j)
      RRT_CHECK(names_[j] != names_[i], where, "has the name '", names_[i], "' as data.sources[", j,
                "] (", sources_[j].path,
                "); give each source its own name: {path: ..., name: ...}");
    try {
      train_.push_back(
          std::make_unique<TokenLoader>(source_loader_options(options, i), Split::train));
    } catch (const Error& e) {
      RRT_FAIL(where, e.what());
    }
    const TokenLoader& got = *train_.back();
    const TokenLoader& first = *train_.front();
    RRT_CHECK(got.tokenizer() == first.tokenizer() && got.vocab_size() == first.vocab_size() &&
                  got.eos_id() == first.eos_id(),
              where, "was prepared with tokenizer '", got.tokenizer(), "' (vocab_size ",
              got.vocab_size(), ", eos_id ", got.eos_id(), ") but data.sources[0] (",
              sources_[0].path, ") with '", first.tokenizer(), "' (vocab_size ", first.vocab_size(),
              ", eos_id ", first.eos_id(),
              "); every source of a mixture must share one tokenizer: prepare it again with "
              "`rrt prepare --tokenizer <the run's data.tokenizer>`");
    int64_t limit = -1;
    if (s.epochs > 0) {
      limit = static_cast<int64_t>(std::floor(s.epochs * static_cast<double>(got.sequences())));
      RRT_CHECK(limit >= 1, where, "epochs ", s.epochs, " of ", got.sequences(),
                " train sequences is less than one sequence; raise epochs or leave it 0 (no cap)");
    }
    limits_.push_back(limit);
    weights_.push_back(s.weight);
    offsets_.push_back(stagger.uniform(i));
  }
  counts_.assign(sources_.size(), 0);
  scratch_.resize(static_cast<size_t>(2 * seq_len_));
}

int64_t MixtureLoader::capacity() const {
  int64_t total = 0;
  for (int64_t limit : limits_) {
    if (limit < 0) return -1;
    total += limit;
  }
  return total;
}

int MixtureLoader::next_source() const {
  int best = -1;
  double best_pass = 0;
  for (size_t i = 0; i < counts_.size(); ++i) {
    if (limits_[i] >= 0 && counts_[i] >= limits_[i]) continue;  // exhausted
    const double pass = (static_cast<double>(counts_[i]) + offsets_[i]) / weights_[i];
    if (best < 0 || pass < best_pass) best = static_cast<int>(i), best_pass = pass;
  }
  return best;
}

void MixtureLoader::next_batch(int64_t N, int32_t* inputs, int32_t* targets) {
  RRT_CHECK(N >= 1, "data.sources", "batch size N must be positive, got ", N);
  const int64_t T = seq_len_, global = static_cast<int64_t>(world_) * N;
  const int64_t mine = static_cast<int64_t>(rank_) * N;
  // Every rank draws the whole global batch's sources (cheap) and reads only its rows. A batch
  // that cannot be completed leaves the cursor where it was.
  const std::vector<int64_t> before = counts_;
  last_sources_.assign(static_cast<size_t>(N), -1);
  for (int64_t entry = 0; entry < global; ++entry) {
    const int s = next_source();
    if (s < 0) {
      counts_ = before;
      std::string caps;
      for (size_t i = 0; i < sources_.size(); ++i)
        caps += (i ? ", " : "") + names_[i] + ": " + std::to_string(limits_[i]) + " sequences";
      RRT_FAIL("data.sources", "every source of the mixture is exhausted (epoch caps: ", caps,
               "); raise an epochs cap, leave one source without a cap, or lower train.steps");
    }
    const int64_t c = counts_[s]++;
    if (entry < mine || entry >= mine + N) continue;
    const int64_t row = entry - mine;
    TokenLoader& loader = *train_[s];
    const int64_t S = loader.sequences();
    loader.restore({c / S, c % S});
    loader.next_batch(1, scratch_.data(), scratch_.data() + T);
    std::memcpy(inputs + row * T, scratch_.data(), sizeof(int32_t) * static_cast<size_t>(T));
    std::memcpy(targets + row * T, scratch_.data() + T, sizeof(int32_t) * static_cast<size_t>(T));
    last_sources_[static_cast<size_t>(row)] = s;
  }
}

void MixtureLoader::restore(const std::vector<int64_t>& counts) {
  RRT_CHECK(counts.size() == sources_.size(), "data.sources", "the cursor holds ", counts.size(),
            " source counts but the mixture has ", sources_.size(),
            " sources; was it saved for another data.sources?");
  for (size_t i = 0; i < counts.size(); ++i)
    RRT_CHECK(counts[i] >= 0 && (limits_[i] < 0 || counts[i] <= limits_[i]), "data.sources",
              "the cursor's count ", counts[i], " for source ", names_[i],
              " is outside its epoch cap of ", limits_[i],
              " sequences; was it saved for another data.sources?");
  counts_ = counts;
}

}  // namespace rrt
