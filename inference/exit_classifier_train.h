// Training the exit classifier (inference/exit_classifier.h) from a model's own states, as CALM
// (Schuster et al. 2022) trains its early-exit classifier on the consistency oracle:
//   1. collect: the engine runs held-out token sequences at full depth (teacher forcing, as a
//      prefill does); at every loop end k < K and position, the features the scheduler will see
//      (the state through the final norm, the saturation cosine, from run_stage_saturation) and
//      the label "the argmax of exit k equals the argmax of exit K";
//   2. train: per loop, the probe by Adam on mean binary cross-entropy (+ L2) over minibatches
//      of standardised features, the sequences split into a training part and a held-out part;
//      the epoch with the lowest held-out loss is kept and the standardisation folded into it;
//   3. report: per loop, held-out accuracy against the majority class, log loss against the
//      base rate's, Brier score, expected calibration error, AUC, and per threshold the tokens
//      that would exit there and how many of those agree with the full depth.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "inference/engine.h"
#include "inference/exit_classifier.h"

namespace rrt::inference {

struct ExitExamples {
  int64_t loops = 0, features = 0;  // K; D + 1
  int64_t sequences = 0, seq_len = 0;
  // Per loop k = 1..K-1 (index k - 1): features [n, F] and labels [n] (1: agrees with the full
  // depth), n = sequences x seq_len, sequence by sequence.
  std::vector<std::vector<float>> x, y;
  int64_t rows() const { return sequences * seq_len; }
};

// The engine needs slots >= 1, max_rows >= and max_seq >= the sequences' length (all equal), and
// exits before the last loop (cycle sharing, K >= 2). Slot 0's KV cache is overwritten.
ExitExamples collect_exit_examples(Engine& engine,
                                   const std::vector<std::vector<int32_t>>& sequences);

struct ExitTrainOptions {
  int64_t hidden = 32;  // 0: a linear probe (logistic regression)
  int epochs = 30;
  int64_t batch = 256;
  double lr = 1e-3;       // Adam
  double l2 = 1e-4;       // on the weights
  double held_out = 0.2;  // the last sequences' fraction, never trained on
  uint64_t seed = 1;
};

struct ThresholdStats {
  double threshold = 0;
  double exit_fraction = 0;   // held-out tokens whose probability reaches it
  double exit_agreement = 0;  // of those, the fraction that agree with the full depth
};

struct LoopReport {
  int64_t loop = 0;
  int64_t train = 0, held_out = 0;  // examples
  double base_rate = 0;             // held-out fraction that agrees
  double accuracy = 0, majority_accuracy = 0;
  double log_loss = 0, base_log_loss = 0;  // base: the training base rate as a constant
  double brier = 0, ece = 0, auc = 0;
  int best_epoch = 0;
  std::vector<ThresholdStats> thresholds;
};

struct ExitTrainReport {
  std::vector<LoopReport> loops;
  ExitTrainOptions options;
  int64_t sequences = 0, seq_len = 0;
  std::string json() const;
  std::string markdown() const;
};

// Trains one probe per loop 1..K-1; the classifier carries `model` and the report (JSON).
ExitClassifier train_exit_classifier(const ExitExamples& examples, const ModelIdentity& model,
                                     const ExitTrainOptions& options,
                                     ExitTrainReport* report = nullptr);

// Held-out metrics of probabilities p against labels y (exposed for tests).
LoopReport score_probabilities(const std::vector<double>& p, const std::vector<float>& y,
                               double train_base_rate);

}  // namespace rrt::inference
