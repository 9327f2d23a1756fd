#include "evaluation/evaluate.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <vector>

#include "checkpoint/checkpoint.h"
#include "checkpoint/checkpoint_config.h"
#include "checkpoint/model_source.h"
#include "config/config_io.h"
#include "data/loader.h"
#include "model/recursive_model.h"

namespace rrt {

EvalResult evaluate_checkpoint(const std::string& checkpoint, const std::string& data_path,
                               int64_t batches, const std::vector<std::string>& overrides) {
  const CheckpointContents header = read_model_source_header(checkpoint);
  RunConfig cfg = checkpoint_run_config(header, checkpoint + ":/config", overrides);
  cfg.data.path = data_path.empty() ? default_evaluation_data(cfg) : data_path;
  cfg.data.sources.clear();  // one data set is scored
  if (batches == 0) batches = cfg.train.eval_batches;
  const int64_t N = cfg.train.micro_batch, T = cfg.train.seq_len;
  // The data first: its errors are cheaper to meet than building the model.
  TokenLoader val(LoaderOptions{cfg.data.path, T, cfg.data.val_fraction, cfg.data.seed, 0, 1},
                  Split::validation);
  RRT_CHECK(val.vocab_size() <= cfg.model.model.vocab, "eval", "the data at ", cfg.data.path,
            " has a vocabulary of ", val.vocab_size(), " but the model only ",
            cfg.model.model.vocab);
  if (batches == kAllBatches) batches = val.sequences() / N;
  RRT_CHECK(batches > 0, "eval", "the validation split of ", cfg.data.path, " holds ",
            val.sequences(), " sequences of ", T, " tokens, fewer than one micro-batch of ", N,
            "; lower train.micro_batch or train.seq_len, or raise data.val_fraction");
  RecursiveModel model(cfg.model, ModelCapacity{N, T});
  load_model_source_params(checkpoint, model.params());
  // The held-out loss as the run computed it: with its documents kept apart when it did.
  model.set_document_eos(cfg.data.document_mask ? val.eos_id() : -1);
  std::vector<int32_t> inputs(N * T), targets(N * T);
  EvalResult r;
  r.loss = mean_validation_loss(model, val, N, T, batches, inputs.data(), targets.data());
  r.perplexity = std::exp(r.loss);
  r.tokens = batches * N * T;
  r.step = header.state.step;
  return r;
}

std::string default_evaluation_data(const RunConfig& config) {
  if (config.data.sources.empty()) return config.data.path;
  const MixtureSource& first = config.data.sources.front();
  std::fprintf(stderr,
               "note: the run trained on a mixture of %zu sources (data.sources); scoring the "
               "validation split of the first, %s (%s); --data scores another\n",
               config.data.sources.size(), source_name(first).c_str(), first.path.c_str());
  return first.path;
}

double unigram_entropy(const std::vector<int64_t>& counts) {
  double total = 0, h = 0;
  for (int64_t c : counts) total += static_cast<double>(c);
  for (int64_t c : counts)
    if (c > 0) h -= static_cast<double>(c) / total * std::log(static_cast<double>(c) / total);
  return h;
}

}  // namespace rrt
