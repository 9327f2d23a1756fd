// What `rrt eval` reports for a checkpoint (docs/evaluation.md): every exit's validation loss,
// the oracle and confidence exits (evaluation/exit_eval.h), and optionally multiple-choice accuracy
// per exit (evaluation/multiple_choice.h); as text, as one JSON object, and as PNG plots.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "evaluation/evaluate.h"
#include "evaluation/exit_eval.h"
#include "evaluation/multiple_choice.h"

namespace rrt {

struct EvalOptions {
  std::string data_path;  // "": the checkpoint's data.path
  // Validation micro-batches: 0 the run's train.eval_batches, kAllBatches every whole one.
  int64_t batches = 0;
  std::vector<std::string> overrides;  // key=value changes to the checkpoint's run config
  std::vector<double> thresholds = kDefaultThresholds;
  bool validation = true;  // false: multiple choice only (no token data needed)
  std::string choices;     // a JSONL task file (multiple_choice.h), "": none
  int64_t chunk = 256;     // rows per block of logits
};

struct EvalReport {
  std::string checkpoint;
  int64_t step = 0;    // the checkpoint's training step
  int64_t loops = 0;   // K
  std::string device;  // where the model ran: the run's train.device (after the overrides)
  bool has_validation = false;
  ExitEvaluation validation;
  bool has_choices = false;
  std::string choices_path;
  ChoiceEvaluation choices;
};

EvalReport evaluate_checkpoint_exits(const std::string& checkpoint, const EvalOptions& options);

// One object: checkpoint, step, loops; with validation also loss, perplexity and tokens (the
// final exit's, as before per-exit evaluation), exits, oracle and confidence; with a task,
// choices. Keys in docs/evaluation.md. In this order: the first "perplexity" of the text is the
// final exit's, which scripts that grep for it rely on.
nlohmann::ordered_json eval_report_json(const EvalReport& report);
// The inverse, for reports written by `rrt eval --json` (rrt plot-exits reads them back): every
// key eval_report_json writes; a report that is not one (a missing key, a wrong type) is an
// error naming what, not a figure of zeros.
EvalReport eval_report_from_json(const nlohmann::json& j);
std::string eval_report_text(const EvalReport& report);
// Writes exits.png (perplexity per exit, the oracle-exit distribution, multiple-choice accuracy
// per exit) and, with validation, confidence.png (the trade-off curves, every point labelled
// with its threshold) into dir; returns the files written. The figures: evaluation/eval_plots.h.
std::vector<std::string> write_eval_plots(const EvalReport& report, const std::string& dir);

}  // namespace rrt
