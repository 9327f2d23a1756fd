#include "trainer/mixture_data.h"

#include <cstdio>

#include "config/resume_check.h"
#include "core/error.h"

namespace rrt {

MixtureData open_mixture(const RunConfig& c, int rank, int world, bool announce) {
  const int64_t N = c.train.micro_batch, T = c.train.seq_len;
  const MixtureOptions options{.sources = c.data.sources,
                               .seq_len = T,
                               .val_fraction = c.data.val_fraction,
                               .seed = c.data.seed,
                               .rank = rank,
                               .world = world};
  MixtureData data;
  data.train = std::make_unique<MixtureLoader>(options);
  const MixtureLoader& mix = *data.train;
  check_data_tokenizer(c, mix.tokenizer());
  check_data_vocabulary(c, mix.tokenizer(), mix.vocab_size(), "train");
  if (c.data.val_fraction > 0)
    for (size_t i = 0; i < mix.size(); ++i) {
      LoaderOptions lo = source_loader_options(options, i);
      lo.rank = rank;
      lo.world = world;
      data.validation.push_back(std::make_unique<TokenLoader>(lo, Split::validation));
    }
  const int64_t per_step = c.train.grad_accum * N * world, capacity = mix.capacity();
  RRT_CHECK(capacity < 0 || c.train.steps * per_step <= capacity, "data.sources",
            "the epoch caps of every source give ", capacity, " sequences of ", T,
            " tokens in all, but train.steps ", c.train.steps, " x grad_accum ", c.train.grad_accum,
            " x micro_batch ", N, " x ranks ", world, " need ", c.train.steps * per_step,
            "; raise an epochs cap, leave one source without a cap (epochs: 0), or lower "
            "train.steps to ",
            capacity / per_step);
  if (announce) {
    double total = 0;
    for (size_t i = 0; i < mix.size(); ++i) total += mix.source(i).weight;
    for (size_t i = 0; i < mix.size(); ++i) {
      const int64_t limit = mix.limit(i);
      std::printf("mixture: %-12s %5.1f%% of sequences, %ld train sequences, %s (%s)\n",
                  mix.name(i).c_str(), 100.0 * mix.source(i).weight / total,
                  static_cast<long>(mix.train_sequences(i)),
                  limit < 0 ? "no epoch cap"
                            : ("capped at " + std::to_string(limit) + " sequences").c_str(),
                  mix.source(i).path.c_str());
    }
  }
  return data;
}

std::vector<int64_t> resumed_mixture_counts(const MixtureLoader& mixture,
                                            const CheckpointContents& checkpoint,
                                            const std::string& path) {
  if (checkpoint.mixture_counts.size() == mixture.size()) return checkpoint.mixture_counts;
  std::fprintf(stderr,
               "warning: %s holds %s; the mixture of data.sources starts from its beginning\n",
               path.c_str(),
               checkpoint.mixture_counts.empty()
                   ? "no mixture cursor (a run on data.path wrote it)"
                   : ("the cursor of a mixture of " +
                      std::to_string(checkpoint.mixture_counts.size()) + " sources")
                         .c_str());
  return std::vector<int64_t>(mixture.size(), 0);
}

double mixture_validation_loss(const MixtureLoader& mixture, const std::vector<double>& losses) {
  double sum = 0, weights = 0;
  for (size_t i = 0; i < losses.size(); ++i) {
    sum += mixture.source(i).weight * losses[i];
    weights += mixture.source(i).weight;
  }
  return sum / weights;
}

}  // namespace rrt
