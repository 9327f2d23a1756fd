#include "evaluation/exit_eval.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "model/recursive_model.h"

namespace rrt {

namespace {
constexpr int32_t kIgnoreTarget = RecursiveModel::kIgnoreIndex;
}  // namespace

std::vector<int64_t> exit_loops_of(const RecursiveModel& model) {
  return exit_loops_of(model.spec());
}

std::vector<int64_t> exit_loops_of(const ModelSpec& spec) {
  const RecursionConfig& r = spec.recursion;
  if (r.sharing != Sharing::cycle) return {r.loops};
  std::vector<int64_t> loops;
  for (int64_t k = 1; k <= r.loops; ++k) loops.push_back(k);
  return loops;
}

ExitEvaluator::ExitEvaluator(RecursiveModel& model, std::vector<double> thresholds, int64_t chunk)
    : ExitEvaluator(exit_model_of(model), nullptr, std::move(thresholds), chunk) {}

ExitEvaluator::ExitEvaluator(ExitModel& model, std::vector<double> thresholds, int64_t chunk)
    : ExitEvaluator(nullptr, &model, std::move(thresholds), chunk) {}

ExitEvaluator::ExitEvaluator(std::unique_ptr<ExitModel> owned, ExitModel* model,
                             std::vector<double> thresholds, int64_t chunk)
    : owned_(std::move(owned)),
      model_(model != nullptr ? *model : *owned_),
      loops_(exit_loops_of(model_.spec())),
      thresholds_(std::move(thresholds)),
      chunk_(std::clamp<int64_t>(chunk, 1, std::max<int64_t>(model_.chunk(), 1))) {
  const ModelConfig& m = model_.spec().model;
  const size_t E = loops_.size(), C = thresholds_.size();
  for (double t : thresholds_)
    RRT_CHECK(std::isfinite(t), "rrt eval", "confidence thresholds must be numbers, got ", t);
  rows_.resize(static_cast<size_t>(chunk_));
  logits_.resize(static_cast<size_t>(chunk_ * m.vocab));
  argmax_.resize(static_cast<size_t>(chunk_) * E);
  max_prob_.resize(static_cast<size_t>(chunk_) * E);
  ce_.resize(static_cast<size_t>(chunk_) * E);
  loss_sum_.assign(E, 0.0);
  agree_.assign(E, 0);
  oracle_count_.assign(E, 0);
  conf_loss_sum_.assign(C, 0.0);
  conf_agree_.assign(C, 0);
  conf_count_.assign(C * E, 0);
}

void ExitEvaluator::add_batch(const int32_t* tokens, const int32_t* targets, int64_t N, int64_t T) {
  const int64_t V = model_.spec().model.vocab;
  for (int64_t i = 0; i < N * T; ++i)
    RRT_CHECK(targets[i] == kIgnoreTarget || (targets[i] >= 0 && targets[i] < V), "rrt eval",
              "target ", targets[i], " at row ", i, " is outside the vocabulary of ", V);
  model_.forward_loop_ends(tokens, N, T);
  for (int64_t r0 = 0; r0 < N * T; r0 += chunk_)
    score_chunk(targets + r0, r0, std::min(chunk_, N * T - r0));
}

// Every exit's logits of the chunk in turn, reduced at once to three numbers per row and exit;
// then the exit rules, which need every exit of a row, read only those.
void ExitEvaluator::score_chunk(const int32_t* targets, int64_t row0, int64_t rows) {
  const ModelConfig& m = model_.spec().model;
  const int64_t V = m.vocab, E = static_cast<int64_t>(loops_.size());
  for (int64_t r = 0; r < rows; ++r) rows_[static_cast<size_t>(r)] = static_cast<int32_t>(row0 + r);
  for (int64_t e = 0; e < E; ++e) {
    model_.exit_logits(loops_[e], rows_.data(), rows, logits_.data());
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
      if (targets[r] == kIgnoreTarget) continue;
      const float* z = logits_.data() + r * V;
      const int64_t best = std::max_element(z, z + V) - z;  // the first maximum
      const float zmax = z[best];
      double sum = 0;
      for (int64_t j = 0; j < V; ++j) sum += std::exp(static_cast<double>(z[j] - zmax));
      const size_t at = static_cast<size_t>(r * E + e);
      argmax_[at] = static_cast<int32_t>(best);
      max_prob_[at] = 1.0 / sum;  // exp(zmax - lse)
      ce_[at] = static_cast<double>(zmax) + std::log(sum) - static_cast<double>(z[targets[r]]);
    }
  }
  const size_t C = thresholds_.size();
  for (int64_t r = 0; r < rows; ++r) {
    if (targets[r] == kIgnoreTarget) continue;
    ++counted_;
    const int32_t* argmax = argmax_.data() + r * E;
    const double* max_prob = max_prob_.data() + r * E;
    const double* ce = ce_.data() + r * E;
    const int32_t final_argmax = argmax[E - 1];
    int64_t oracle = E - 1;  // walking down, this ends at the earliest agreeing exit
    for (int64_t e = E - 1; e >= 0; --e) {
      loss_sum_[e] += ce[e];
      if (argmax[e] == final_argmax) {
        ++agree_[e];
        oracle = e;
      }
    }
    ++oracle_count_[oracle];
    oracle_loss_sum_ += ce[oracle];
    for (size_t c = 0; c < C; ++c) {
      int64_t exit = E - 1;
      for (int64_t e = 0; e + 1 < E; ++e)
        if (max_prob[e] >= thresholds_[c]) {
          exit = e;
          break;
        }
      conf_loss_sum_[c] += ce[exit];
      conf_agree_[c] += argmax[exit] == final_argmax ? 1 : 0;
      ++conf_count_[c * static_cast<size_t>(E) + static_cast<size_t>(exit)];
    }
  }
}

ExitEvaluation ExitEvaluator::result() const {
  const size_t E = loops_.size();
  const double n = static_cast<double>(std::max<int64_t>(counted_, 1));
  ExitEvaluation out;
  out.tokens = counted_;
  for (size_t e = 0; e < E; ++e) {
    ExitScore s;
    s.loop = loops_[e];
    s.loss = loss_sum_[e] / n;
    s.perplexity = std::exp(s.loss);
    s.agreement = static_cast<double>(agree_[e]) / n;
    out.exits.push_back(s);
  }
  for (size_t e = 0; e < E; ++e) {
    const double f = static_cast<double>(oracle_count_[e]) / n;
    out.oracle.fractions.push_back(f);
    out.oracle.mean_loops += f * static_cast<double>(loops_[e]);
  }
  out.oracle.loss = oracle_loss_sum_ / n;
  out.oracle.perplexity = std::exp(out.oracle.loss);
  for (size_t c = 0; c < thresholds_.size(); ++c) {
    ConfidenceExit x;
    x.threshold = thresholds_[c];
    for (size_t e = 0; e < E; ++e) {
      const double f = static_cast<double>(conf_count_[c * E + e]) / n;
      x.fractions.push_back(f);
      x.mean_loops += f * static_cast<double>(loops_[e]);
    }
    x.agreement = static_cast<double>(conf_agree_[c]) / n;
    x.loss = conf_loss_sum_[c] / n;
    x.perplexity = std::exp(x.loss);
    out.confidence.push_back(x);
  }
  return out;
}

}  // namespace rrt
