#include "trainer/loss_terms.h"

#include <cstdio>

namespace rrt {

LossTerms::LossTerms(const TrainingLoss& loss)
    : loss_(loss), active_(!loss.plain()), values_(3 + 3 * loss.exit_loops.size(), 0.0) {}

void LossTerms::clear() { std::fill(values_.begin(), values_.end(), 0.0); }

void LossTerms::add(const LossBreakdown& t, double weight) {
  if (!active_) return;
  values_[0] += weight * t.ce;
  values_[1] += weight * t.kd;
  values_[2] += weight * t.sd;
  for (size_t e = 0; e < t.exit_ce.size() && 3 + 3 * e + 2 < values_.size(); ++e) {
    values_[3 + 3 * e] += weight * t.exit_ce[e];
    values_[3 + 3 * e + 1] += weight * t.exit_kd[e];
    values_[3 + 3 * e + 2] += weight * t.exit_sd[e];
  }
}

void LossTerms::mean_over_ranks(Communicator& comm) {
  if (!active_ || comm.world_size() == 1) return;
  comm.all_reduce_sum(values_.data(), static_cast<int64_t>(values_.size()));
  for (double& v : values_) v /= static_cast<double>(comm.world_size());
}

void LossTerms::write(nlohmann::json& line) const {
  if (!active_) return;
  line["loss_ce"] = values_[0];
  if (loss_.teacher) line["loss_kd"] = values_[1];
  if (loss_.self_distill) line["loss_sd"] = values_[2];
  for (size_t e = 0; e < loss_.exit_loops.size(); ++e) {
    const std::string k = "exit" + std::to_string(loss_.exit_loops[e]);
    line[k + "_ce"] = values_[3 + 3 * e];
    if (loss_.teacher) line[k + "_kd"] = values_[3 + 3 * e + 1];
    if (loss_.self_distill && e + 1 < loss_.exit_loops.size())
      line[k + "_sd"] = values_[3 + 3 * e + 2];
  }
}

std::string LossTerms::brief() const {
  if (!active_) return "";
  char buf[96];
  std::snprintf(buf, sizeof(buf), " | ce %.4f", values_[0]);
  std::string s = buf;
  if (loss_.teacher) {
    std::snprintf(buf, sizeof(buf), " kd %.4f", values_[1]);
    s += buf;
  }
  if (loss_.self_distill) {
    std::snprintf(buf, sizeof(buf), " sd %.4f", values_[2]);
    s += buf;
  }
  return s;
}

}  // namespace rrt
