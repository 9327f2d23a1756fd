// Evaluation of a checkpoint on the validation split of token data.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "config/run_config.h"
#include "data/loader.h"

namespace rrt {

struct EvalResult {
  double loss = 0;  // mean cross-entropy (nats per token)
  double perplexity = 0;
  int64_t tokens = 0;  // tokens scored
  int64_t step = 0;    // the checkpoint's training step
};

// Mean loss over the first `batches` validation micro-batches of N x T tokens (the loader is
// rewound first, so every call scores the same tokens). inputs/targets: caller scratch [N*T].
// Model: anything with loss(tokens, targets, N, T) (RecursiveModel, CpuBf16Model, DeviceModel).
template <class Model>
double mean_validation_loss(Model& model, TokenLoader& validation, int64_t N, int64_t T,
                            int64_t batches, int32_t* inputs, int32_t* targets) {
  validation.restore({0, 0});
  double sum = 0;
  for (int64_t b = 0; b < batches; ++b) {
    validation.next_batch(N, inputs, targets);
    sum += model.loss(inputs, targets, N, T);
  }
  return sum / static_cast<double>(batches > 1 ? batches : 1);
}

// data_path: "" uses the checkpoint's data.path. batches == 0 uses its train.eval_batches,
// kAllBatches every whole micro-batch of the validation split once. overrides (key=value, as for
// rrt train) adjust the checkpoint's run config first: train.seq_len, train.micro_batch,
// data.val_fraction, ...
constexpr int64_t kAllBatches = -1;
EvalResult evaluate_checkpoint(const std::string& checkpoint, const std::string& data_path,
                               int64_t batches, const std::vector<std::string>& overrides = {});

// The data `rrt eval` scores when no --data is given: data.path, or on a run of data.sources the
// validation split of its first source (said on stderr; the trainer logs every source's
// validation loss, val_loss/<name>, and --data picks another).
std::string default_evaluation_data(const RunConfig& config);

// Unigram entropy (nats) of a token stream given its counts: the loss of the best model that
// ignores context, the demo's yardstick.
double unigram_entropy(const std::vector<int64_t>& counts);

}  // namespace rrt
