// Evaluation of a checkpoint on the validation split of token data.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace rrt {

struct EvalResult {
  double loss = 0;        // mean cross-entropy (nats per token)
  double perplexity = 0;
  int64_t tokens = 0;     // tokens scored
  int64_t step = 0;       // the checkpoint's training step
};

// data_path: "" uses the checkpoint's data.path. batches <= 0 uses its train.eval_batches.
EvalResult evaluate_checkpoint(const std::string& checkpoint, const std::string& data_path,
                               int64_t batches);

// Unigram entropy (nats) of a token stream given its counts: the loss of the best model that
// ignores context, the demo's yardstick.
double unigram_entropy(const std::vector<int64_t>& counts);

}  // namespace rrt
