// Per-exit evaluation of a looped model (docs/method.md §4 and §5, docs/evaluation.md). Every
// loop end k = 1..K is scored as an exit: logits_k = head_k(final_norm(residual after loop k)),
// the shared final norm and head plus exit k's head adapter where the model has one. Whether or
// not the model was trained with exits, on the tokens whose target is not ignored:
//   - per exit: mean cross-entropy (and perplexity), and agreement = the fraction of tokens whose
//     argmax equals the final exit's argmax;
//   - oracle exit: the earliest loop whose argmax equals the final argmax; the fraction of tokens
//     per loop, the mean loops used and the loss of the exited distributions;
//   - confidence exit, per threshold t: the first loop whose max softmax probability is >= t,
//     else K; mean loops used, agreement with the final exit, the loss of the exited
//     distributions, and the fraction of tokens per exit.
// Rows go `chunk` at a time: the only logits that exist are one [chunk, V] block.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "evaluation/exit_model.h"

namespace rrt {

class RecursiveModel;

// The default confidence thresholds of rrt eval.
inline const std::vector<double> kDefaultThresholds = {0.1, 0.2, 0.3, 0.4,  0.5, 0.6,
                                                       0.7, 0.8, 0.9, 0.95, 0.99};

struct ExitScore {
  int64_t loop = 0;       // k, 1-based
  double loss = 0;        // mean CE (nats per token)
  double perplexity = 0;  // exp(loss)
  double agreement = 0;   // fraction of tokens whose argmax equals the final exit's
};

struct OracleExit {
  std::vector<double> fractions;  // per exit (ExitEvaluation::exits order): sums to 1
  double mean_loops = 0, loss = 0, perplexity = 0;
};

struct ConfidenceExit {
  double threshold = 0;
  double mean_loops = 0;            // mean of the loop each token exits at
  double agreement = 0;             // its argmax equals the final exit's
  double loss = 0, perplexity = 0;  // CE of the distribution it exits with
  std::vector<double> fractions;    // per exit: tokens exiting there
};

struct ExitEvaluation {
  int64_t tokens = 0;            // tokens scored (targets not ignored)
  std::vector<ExitScore> exits;  // loops 1..K (K alone for sequence sharing); last = final
  OracleExit oracle;
  std::vector<ConfidenceExit> confidence;  // one per threshold, in the given order
};

// The loops whose ends can be exits: 1..K with cycle sharing, K alone with sequence sharing.
std::vector<int64_t> exit_loops_of(const ModelSpec& spec);
std::vector<int64_t> exit_loops_of(const RecursiveModel& model);

// Accumulates the statistics over batches; result() may be called at any time.
class ExitEvaluator {
 public:
  // The model must be planned for the batches given (not forward only); rows go in chunks of
  // at most min(chunk, model.chunk()).
  ExitEvaluator(ExitModel& model, std::vector<double> thresholds, int64_t chunk = 256);
  // A host model, through exit_model_of.
  ExitEvaluator(RecursiveModel& model, std::vector<double> thresholds, int64_t chunk = 256);

  // tokens, targets: [N, T]; targets == RecursiveModel::kIgnoreIndex are not scored.
  void add_batch(const int32_t* tokens, const int32_t* targets, int64_t N, int64_t T);
  ExitEvaluation result() const;

 private:
  ExitEvaluator(std::unique_ptr<ExitModel> owned, ExitModel* model, std::vector<double> thresholds,
                int64_t chunk);
  void score_chunk(const int32_t* targets, int64_t row0, int64_t rows);

  std::unique_ptr<ExitModel> owned_;  // the view of a host model, where given one
  ExitModel& model_;
  std::vector<int64_t> loops_;
  std::vector<double> thresholds_;
  int64_t chunk_;
  std::vector<int32_t> rows_;  // [chunk] row indices
  std::vector<float> logits_;  // [chunk, V]
  // Per row of a chunk and exit: argmax, max softmax probability and CE.
  std::vector<int32_t> argmax_;
  std::vector<double> max_prob_, ce_;

  int64_t counted_ = 0;
  std::vector<double> loss_sum_;       // [E]
  std::vector<int64_t> agree_;         // [E]
  std::vector<int64_t> oracle_count_;  // [E]
  double oracle_loss_sum_ = 0;
  std::vector<double> conf_loss_sum_;  // [thresholds]
  std::vector<int64_t> conf_agree_;    // [thresholds]
  std::vector<int64_t> conf_count_;    // [thresholds x E]
};

}  // namespace rrt
