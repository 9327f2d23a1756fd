// The trainer's side of a run on data.sources (data/mixture.h, docs/data.md "Mixtures"): the
// mixture and each source's validation split opened and checked against the run, the cursor
// taken from a checkpoint, and the validation loss of the mixture.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "checkpoint/checkpoint.h"
#include "config/run_config.h"
#include "data/loader.h"
#include "data/mixture.h"

namespace rrt {

struct MixtureData {
  std::unique_ptr<MixtureLoader> train;
  // Source i's validation split, this rank's slice (empty when data.val_fraction is 0).
  std::vector<std::unique_ptr<TokenLoader>> validation;
};

// Opens config.data.sources for this rank; checks the shards' tokenizer and vocabulary against
// the run (config/resume_check.h) and that the epoch caps hold train.steps of global batches
// (a run never meets a mixture whose every source is exhausted). Rank 0 (`announce`) prints
// one line per source.
MixtureData open_mixture(const RunConfig& config, int rank, int world, bool announce);

// The counts to resume the mixture from: the checkpoint's, or zeros (with a warning on stderr)
// when it holds none for this mixture (written by a run on data.path, or before a change of
// data.sources that checkpoint.allow_config_change allowed).
std::vector<int64_t> resumed_mixture_counts(const MixtureLoader& mixture,
                                            const CheckpointContents& checkpoint,
                                            const std::string& path);

// The validation loss of the mixture: the sources' losses weighted as the mixture weighs them.
double mixture_validation_loss(const MixtureLoader& mixture, const std::vector<double>& losses);

}  // namespace rrt
