// The terms of a training step's loss for the log (docs/distillation.md, "Metrics"): means over
// the step's micro-batches and over ranks of what RecursiveModel::last_losses reports.
// metrics.jsonl keys, present only when the loss has more than a plain CE term:
//   loss_ce, loss_kd, loss_sd     sum over exits of w_k CE_k, w_k KD_k, w_k SD_k
//   exit<k>_ce, exit<k>_kd, exit<k>_sd   each exit's own mean term, k its loop number (1..K)
// (kd only with a teacher, sd only with self-distillation; loss stays the weighted total).
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "distributed/communicator.h"
#include "model/recursive_model.h"

namespace rrt {

class LossTerms {
 public:
  explicit LossTerms(const TrainingLoss& loss);

  bool active() const { return active_; }
  void clear();
  void add(const LossBreakdown& terms, double weight);
  void mean_over_ranks(Communicator& comm);  // one small all-reduce; every rank calls it
  void write(nlohmann::json& line) const;
  std::string brief() const;  // " | ce 3.2104 kd 0.4187 sd 0.0311" for the progress line

 private:
  TrainingLoss loss_;
  bool active_;
  // [ce, kd, sd, then per exit ce, kd, sd]
  std::vector<double> values_;
};

}  // namespace rrt
